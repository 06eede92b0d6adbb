"""The Django admin is one more entry point: it must use the move service and the gate."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from deals.models import Deal, StageChange
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory


@pytest.fixture
def admin_client_(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def _post(client, deal, stage):
    return client.post(
        reverse("admin:deals_deal_change", args=[deal.pk]),
        {
            "title": deal.title,
            "owner": deal.owner_id,
            "stage": stage.pk,
            "amount": "100",
            "currency": "USD",
        },
    )


def test_admin_stage_change_is_blocked_by_the_gate(admin_client_, rep, stages):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = _post(admin_client_, deal, stages["qualified"])
    assert response.status_code == 200
    assert "Confirm: Budget" in response.content.decode()
    assert Deal.objects.get(pk=deal.pk).stage == stages["lead"]


def test_admin_stage_change_is_recorded_as_a_move(admin_client_, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = _post(admin_client_, deal, stages["qualified"])
    assert response.status_code == 302
    last = StageChange.objects.filter(deal=deal).order_by("-seq").first()
    assert (last.to_stage, last.source) == (stages["qualified"], "admin")


def test_stage_history_cannot_be_changed_or_deleted_in_admin(admin_client_, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    change = StageChange.objects.get(deal=deal)
    url = reverse("admin:deals_stagechange_delete", args=[change.pk])
    assert admin_client_.post(url, {"post": "yes"}).status_code == 403
    assert StageChange.objects.filter(pk=change.pk).exists()
