"""The flow docs/api.md walks through, end to end: a token lists deals, creates one,
moves it (refused with 422, then overridden by a manager), and a subscriber receives the
signed webhooks, verified with the Standard Webhooks reference library."""

from __future__ import annotations

import json

import pytest
from standardwebhooks.webhooks import Webhook

from deals.models import StageChange
from stages.models import CriterionKind
from tests.factories import CriterionFactory
from tests.webhooks.receiver import Receiver
from webhooks import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    started = Receiver().start()
    yield started
    started.stop()


def test_token_create_move_refused_override_and_signed_webhooks(
    rep, manager, stages, api_for, receiver, eager, django_capture_on_commit_callbacks
):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )
    hook = services.create_endpoint(by=manager, url=receiver.url, events=["deal.*"])
    reps_api, managers_api = api_for(rep), api_for(manager)

    with django_capture_on_commit_callbacks(execute=True):
        assert reps_api.get("/api/v1/deals/").json()["results"] == []
        created = reps_api.post(
            "/api/v1/deals/",
            {"title": "Globex pilot", "stage": stages["lead"].pk, "amount": "4800.00"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="globex-1",
        )
    assert created.status_code == 201
    deal = created.json()

    with django_capture_on_commit_callbacks(execute=True):
        refused = reps_api.post(
            f"/api/v1/deals/{deal['id']}/move/",
            {"stage": stages["qualified"].pk},
            format="json",
            HTTP_IF_MATCH=created["ETag"],
        )
    assert refused.status_code == 422
    assert [f["kind"] for f in refused.json()["failures"]] == ["field_required"]

    with django_capture_on_commit_callbacks(execute=True):
        moved = managers_api.post(
            f"/api/v1/deals/{deal['id']}/move/",
            {"stage": stages["qualified"].pk, "override_reason": "Verbal yes from the CFO"},
            format="json",
            HTTP_IF_MATCH=created["ETag"],
        )
    assert moved.status_code == 200, moved.json()
    change = StageChange.objects.filter(deal_id=deal["id"]).order_by("-seq").first()
    assert (change.source, change.override_reason) == ("api", "Verbal yes from the CFO")

    verifier = Webhook(hook.secret)
    received = [verifier.verify(call.body, call.headers) for call in receiver.calls]
    assert [m["type"] for m in received] == ["deal.created", "deal.moved"]
    assert all(m["data"]["deal"]["id"] == deal["id"] for m in received)
    assert received[1]["data"]["to_stage_id"] == stages["qualified"].pk
    assert json.loads(receiver.calls[1].body)["data"]["source"] == "api"
