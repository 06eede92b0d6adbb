"""Deleting a deal: managers (their teams' deals) and admins only; one action that locks,
checks the version, keeps an audit row, removes the deal with what hangs on it and
publishes deal.deleted after commit; the consumers (forecasts, webhooks, live board) cope
with a deal that no longer exists; the deal page's confirm step and the API's DELETE."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, AuditKind
from common.errors import NotAllowed, NotVisible
from deals import live, services
from deals.models import (
    Activity,
    Deal,
    Event,
    Notification,
    StageChange,
    StalledFlag,
    StalledRule,
)
from tests.factories import ActivityFactory, DealFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def deal(rep, stages):
    made = DealFactory(
        owner=rep,
        stage=stages["qualified"],
        title="Acme renewal",
        amount=Decimal("1200"),
        expected_close_date=timezone.localdate(),
    )
    ActivityFactory(deal=made, owner=rep)
    StalledFlag.objects.create(deal=made, rule=StalledRule.NO_NEXT_STEP)
    Notification.objects.create(user=rep, deal=made, kind="stalled", text="Stalled")
    return made


# --- the action ------------------------------------------------------------------------


def test_manager_deletes_a_team_deal_with_everything_that_hangs_on_it(deal, manager):
    services.delete_deal(deal, by=manager, expected_version=deal.version)
    assert not Deal.objects.filter(pk=deal.pk).exists()
    for model in (StageChange, Activity, StalledFlag, Notification):
        assert not model.objects.filter(deal_id=deal.pk).exists(), model


def test_admin_deletes_any_deal(deal, admin_user):
    services.delete_deal(deal, by=admin_user, expected_version=deal.version)
    assert not Deal.objects.filter(pk=deal.pk).exists()


def test_audit_entry_keeps_title_owner_and_amount(deal, manager, rep):
    services.delete_deal(deal, by=manager, expected_version=deal.version)
    entry = AuditEvent.objects.get(kind=AuditKind.DEAL_DELETED)
    assert entry.user == manager
    assert "Acme renewal" in entry.detail
    assert rep.username in entry.detail
    assert "USD 1200" in entry.detail


def test_publishes_deal_deleted_with_ids_only(deal, manager, rep, stages):
    services.delete_deal(deal, by=manager, expected_version=deal.version, source="api")
    event = Event.objects.get()
    assert (event.name, event.source, event.actor, event.deal_id) == (
        "deal.deleted",
        "api",
        manager,
        deal.pk,
    )
    assert event.payload == {
        "deal_id": deal.pk,
        "owner_id": rep.pk,
        "stage_id": stages["qualified"].pk,
        "pipeline_id": stages["qualified"].pipeline_id,
    }
    assert "Acme" not in json.dumps(event.payload)


def test_rep_may_not_delete_even_their_own_deal(deal, rep):
    with pytest.raises(NotAllowed):
        services.delete_deal(deal, by=rep, expected_version=deal.version)
    assert Deal.objects.filter(pk=deal.pk).exists()
    assert not Event.objects.exists() and not AuditEvent.objects.exists()


def test_rep_of_another_team_is_told_not_found(deal, outsider):
    with pytest.raises(NotVisible):
        services.delete_deal(deal, by=outsider, expected_version=deal.version)


def test_manager_of_another_team_is_told_not_found(deal, other_manager):
    with pytest.raises(NotVisible):
        services.delete_deal(deal, by=other_manager, expected_version=deal.version)
    assert Deal.objects.filter(pk=deal.pk).exists()


def test_stale_version_deletes_nothing(deal, manager):
    with pytest.raises(services.VersionConflict):
        services.delete_deal(deal, by=manager, expected_version=deal.version + 1)
    assert Deal.objects.filter(pk=deal.pk).exists()
    assert not Event.objects.exists() and not AuditEvent.objects.exists()


def test_rolled_back_delete_publishes_nothing(deal, manager, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.delete_deal(deal, by=manager, expected_version=deal.version)
        raise RuntimeError("the caller's transaction fails")
    assert callbacks == []
    assert Deal.objects.filter(pk=deal.pk).exists()
    assert not Event.objects.exists()


# --- the consumers cope with a deal that is gone ----------------------------------------


def test_owner_forecast_drops_the_deleted_deal(
    deal, manager, rep, eager, django_capture_on_commit_callbacks
):
    from reports import forecasts
    from reports.models import Forecast

    forecasts.recompute(owner_id=rep.pk)
    assert Forecast.objects.filter(owner=rep, open_deals__gt=0).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_deal(deal, by=manager, expected_version=deal.version)
    assert not Forecast.objects.filter(owner=rep, open_deals__gt=0).exists()
    assert Event.objects.get().handled_at is not None


@pytest.mark.django_db(transaction=True)
def test_live_board_hears_the_deletion_at_version_zero(rep, manager, stages):
    backend = live.LocalBackend(live.hub, size=3)
    live.reset(backend)
    subscription = live.Subscription()
    subscription.open()
    try:
        gone = DealFactory(owner=rep, stage=stages["lead"])
        services.delete_deal(gone, by=manager, expected_version=gone.version)
        heard = [json.loads(m.data) for m in subscription.pending()]
    finally:
        subscription.close()
        live.reset()
    assert heard == [{"deal": gone.pk, "version": 0, "event": "deal.deleted", "by": manager.pk}]


def test_live_script_removes_a_deleted_card_without_fetching_it():
    """The board asks for a card only when the announced version is newer than the one it
    shows; a deleted deal is announced at version 0, so the script must handle it first."""
    from pathlib import Path

    script = Path("static/js/live.js").read_text()
    board = script[script.index("function onBoardEvent") : script.index("function resyncBoard")]
    assert board.index('"deal.deleted"') < board.index("version > data.version")
    page = script[script.index("function onDealEvent") : script.index("// --- the stream")]
    assert page.index('"deal.deleted"') < page.index("> data.version")


# --- the deal page's door ----------------------------------------------------------------


def test_deal_page_offers_delete_to_managers_only(deal, client_for, manager, rep):
    url = reverse("deal_delete", args=[deal.pk])
    assert url in client_for(manager).get(reverse("deal_detail", args=[deal.pk])).text
    assert url not in client_for(rep).get(reverse("deal_detail", args=[deal.pk])).text


def test_confirm_step_names_the_deal_and_deletes_nothing(
    deal, client_for, manager, django_assert_num_queries
):
    client = client_for(manager)
    client.get(reverse("board"))  # session warm
    # session, user, the deal, the managed teams (may change it?), the bell
    with django_assert_num_queries(5):
        response = client.get(reverse("deal_delete", args=[deal.pk]))
    assert response.status_code == 200
    assert "Delete “Acme renewal”?" in response.text
    assert f'name="version" value="{deal.version}"' in response.text
    assert Deal.objects.filter(pk=deal.pk).exists()


@pytest.mark.parametrize(("who", "status"), [("rep", 403), ("outsider", 404)])
def test_confirm_step_refuses_reps(deal, client_for, request, who, status):
    response = client_for(request.getfixturevalue(who)).get(reverse("deal_delete", args=[deal.pk]))
    assert response.status_code == status


def test_confirmed_delete_goes_back_to_the_board_with_a_notice(deal, client_for, manager):
    client = client_for(manager)
    response = client.post(
        reverse("deal_delete", args=[deal.pk]), {"version": deal.version}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"{reverse('board')}?pipeline={deal.pipeline_id}"
    assert "Deleted “Acme renewal”." in response.text
    assert not Deal.objects.filter(pk=deal.pk).exists()


def test_htmx_delete_redirects_the_page(deal, client_for, manager):
    response = client_for(manager).post(
        reverse("deal_delete", args=[deal.pk]),
        {"version": deal.version},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('board')}?pipeline={deal.pipeline_id}"


def test_stale_confirm_answers_409_and_keeps_the_deal(deal, client_for, manager):
    response = client_for(manager).post(
        reverse("deal_delete", args=[deal.pk]), {"version": deal.version + 1}
    )
    assert response.status_code == 409
    assert Deal.objects.filter(pk=deal.pk).exists()


@pytest.mark.parametrize("version", ["", "x", "²"])
def test_malformed_version_is_400(deal, client_for, manager, version):
    response = client_for(manager).post(
        reverse("deal_delete", args=[deal.pk]), {"version": version}
    )
    assert response.status_code == 400
    assert Deal.objects.filter(pk=deal.pk).exists()
