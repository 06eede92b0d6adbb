"""Deals through the API: the same visibility, actions, gate and history as the web."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api.models import TokenScope
from deals.models import Deal, StageChange, StalledFlag
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def deal(rep, stages):
    return DealFactory(title="Acme renewal", owner=rep, stage=stages["lead"])


@pytest.fixture
def gated(stages):
    return [
        CriterionFactory(
            stage=stages["qualified"],
            kind=CriterionKind.FIELD_REQUIRED,
            field_name="next_step",
            position=0,
        ),
        CriterionFactory(
            stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget", position=1
        ),
    ]


def state(deal):
    return Deal.objects.filter(pk=deal.pk).values().get()


def test_list_shows_only_visible_deals(rep, outsider, stages, deal, api_for):
    DealFactory(title="Theirs", owner=outsider, stage=stages["lead"])
    response = api_for(rep).get("/api/v1/deals/")
    assert response.status_code == 200
    assert [d["title"] for d in response.json()["results"]] == ["Acme renewal"]


def test_list_filters_by_stage_status_and_close_date(rep, stages, api_for):
    DealFactory(
        title="Early", owner=rep, stage=stages["lead"], expected_close_date=date(2030, 1, 5)
    )
    DealFactory(
        title="Late", owner=rep, stage=stages["lead"], expected_close_date=date(2030, 6, 1)
    )
    DealFactory(title="Won one", owner=rep, stage=stages["won"])
    client = api_for(rep)
    titles = lambda q: [d["title"] for d in client.get(f"/api/v1/deals/?{q}").json()["results"]]  # noqa: E731
    assert titles("status=won") == ["Won one"]
    assert titles("close_before=2030-02-01") == ["Early"]
    assert titles(f"stage={stages['lead'].pk}&close_after=2030-02-01") == ["Late"]
    assert titles("search=earl") == ["Early"]


def test_list_filters_stalled(rep, stages, deal, api_for):
    other = DealFactory(title="Fresh", owner=rep, stage=stages["lead"])
    StalledFlag.objects.create(deal=deal, rule="no_next_step")
    results = api_for(rep).get("/api/v1/deals/?stalled=true").json()["results"]
    assert [(d["id"], d["stalled"]) for d in results] == [(deal.pk, ["no_next_step"])]
    fresh = api_for(rep).get("/api/v1/deals/?stalled=false").json()["results"]
    assert [d["id"] for d in fresh] == [other.pk]


def test_malformed_filter_is_a_400(rep, api_for):
    response = api_for(rep).get("/api/v1/deals/?pipeline=abc&close_after=soon")
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"pipeline", "close_after"}


def test_list_pages_with_a_cursor(rep, stages, api_for):
    for n in range(5):
        DealFactory(title=f"D{n}", owner=rep, stage=stages["lead"])
    client = api_for(rep)
    first = client.get("/api/v1/deals/?page_size=3").json()
    second = client.get(first["next"]).json()
    seen = [d["title"] for d in first["results"] + second["results"]]
    assert sorted(seen) == [f"D{n}" for n in range(5)]
    assert second["next"] is None


def test_list_query_count_does_not_grow_with_deals(rep, stages, api_for):
    client = api_for(rep)
    client.get("/api/v1/deals/")  # last_used_at is written at most once a minute

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/deals/").status_code == 200
        return len(queries)

    DealFactory(owner=rep, stage=stages["lead"])
    few = count()
    for _ in range(30):
        DealFactory(owner=rep, stage=stages["qualified"])
    assert count() == few == 3


def test_read_answers_etag_with_the_version(rep, deal, api_for):
    response = api_for(rep).get(f"/api/v1/deals/{deal.pk}/")
    assert response.status_code == 200
    assert response["ETag"] == f'"{deal.version}"'


def test_invisible_deal_is_404(outsider, deal, api_for):
    response = api_for(outsider).get(f"/api/v1/deals/{deal.pk}/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_create_records_history_with_source_api(rep, stages, api_for):
    response = api_for(rep).post(
        "/api/v1/deals/",
        {"title": "New lead", "stage": stages["lead"].pk, "amount": "1200.50"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["amount"] == "1200.50" and body["owner"] == rep.pk
    assert StageChange.objects.get(deal_id=body["id"]).source == "api"


def test_create_refuses_unknown_fields_and_forged_source(rep, stages, api_for):
    response = api_for(rep).post(
        "/api/v1/deals/",
        {"title": "X", "stage": stages["lead"].pk, "source": "automation", "version": 9},
        format="json",
    )
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"source", "version"}
    assert not Deal.objects.exists()


def test_create_refuses_another_teams_organization(rep, outsider, stages, api_for):
    theirs = OrganizationFactory(name="Hidden Co", created_by=outsider)
    DealFactory(owner=outsider, stage=stages["lead"], organization=theirs)
    response = api_for(rep).post(
        "/api/v1/deals/",
        {"title": "X", "stage": stages["lead"].pk, "organization": theirs.pk},
        format="json",
    )
    assert response.status_code == 400
    assert not Deal.objects.filter(title="X").exists()


def test_create_refuses_wrong_types_and_huge_values(rep, stages, api_for):
    client = api_for(rep)
    for body in (
        {"title": ["x"], "stage": stages["lead"].pk},
        {"title": "X", "stage": "lead"},
        {"title": "X" * 201, "stage": stages["lead"].pk},
        {"title": "X", "stage": stages["lead"].pk, "amount": "-5"},
        {"title": "X", "stage": stages["lead"].pk, "amount": "1e20"},
        [1, 2, 3],
    ):
        assert client.post("/api/v1/deals/", body, format="json").status_code == 400, body
    assert not Deal.objects.exists()


def test_malformed_json_is_a_400(rep, api_for):
    response = api_for(rep).post("/api/v1/deals/", "{not json", content_type="application/json")
    assert response.status_code == 400


def test_huge_body_is_refused(rep, stages, api_for):
    body = '{"title": "' + "x" * 3_000_000 + '"}'
    response = api_for(rep).post("/api/v1/deals/", body, content_type="application/json")
    assert response.status_code in (400, 413)
    assert not Deal.objects.exists()


def test_move_without_version_is_428(rep, deal, stages, api_for):
    response = api_for(rep).post(
        f"/api/v1/deals/{deal.pk}/move/", {"stage": stages["qualified"].pk}, format="json"
    )
    assert response.status_code == 428


def test_move_with_if_match_records_source_api(rep, deal, stages, api_for):
    response = api_for(rep).post(
        f"/api/v1/deals/{deal.pk}/move/",
        {"stage": stages["qualified"].pk},
        format="json",
        HTTP_IF_MATCH=f'"{deal.version}"',
    )
    assert response.status_code == 200, response.json()
    assert response.json()["stage"] == stages["qualified"].pk
    assert response["ETag"] == f'"{deal.version + 1}"'
    assert StageChange.objects.filter(deal=deal).order_by("-seq").first().source == "api"


def test_stale_move_is_409_and_changes_nothing(rep, deal, stages, api_for):
    before = state(deal)
    response = api_for(rep).post(
        f"/api/v1/deals/{deal.pk}/move/",
        {"stage": stages["qualified"].pk, "version": deal.version + 5},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["current_version"] == deal.version
    assert state(deal) == before


def test_gate_failure_is_422_listing_each_criterion(rep, deal, stages, gated, api_for):
    before = state(deal)
    response = api_for(rep).post(
        f"/api/v1/deals/{deal.pk}/move/",
        {"stage": stages["qualified"].pk, "version": deal.version},
        format="json",
    )
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "urn:pipeline-crm:problem:gate-blocked"
    assert [(f["criterion_id"], f["kind"]) for f in body["failures"]] == [
        (gated[0].pk, CriterionKind.FIELD_REQUIRED),
        (gated[1].pk, CriterionKind.CHECKLIST),
    ]
    assert body["override_allowed"] is False
    assert state(deal) == before


def test_rep_cannot_override(rep, deal, stages, gated, api_for):
    before = state(deal)
    response = api_for(rep).post(
        f"/api/v1/deals/{deal.pk}/move/",
        {"stage": stages["qualified"].pk, "version": deal.version, "override_reason": "Trust me"},
        format="json",
    )
    assert response.status_code in (400, 403)
    assert state(deal) == before


def test_manager_overrides_with_a_reason(manager, deal, stages, gated, api_for):
    response = api_for(manager).post(
        f"/api/v1/deals/{deal.pk}/move/",
        {"stage": stages["qualified"].pk, "version": deal.version, "override_reason": "CFO yes"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    change = StageChange.objects.filter(deal=deal).order_by("-seq").first()
    assert (change.source, change.override_reason) == ("api", "CFO yes")


def test_teammate_sees_but_may_not_move_403(teammate, deal, stages, api_for):
    before = state(deal)
    response = api_for(teammate).post(
        f"/api/v1/deals/{deal.pk}/move/",
        {"stage": stages["qualified"].pk, "version": deal.version},
        format="json",
    )
    assert response.status_code == 403
    assert state(deal) == before


def test_outsider_move_is_404(outsider, deal, stages, api_for):
    response = api_for(outsider).post(
        f"/api/v1/deals/{deal.pk}/move/",
        {"stage": stages["qualified"].pk, "version": deal.version},
        format="json",
    )
    assert response.status_code == 404


def test_move_query_count_is_pinned(rep, stages, api_for):
    client = api_for(rep)
    client.get("/api/v1/deals/")
    deals = [DealFactory(owner=rep, stage=stages["lead"]) for _ in range(2)]
    for _ in range(20):
        DealFactory(owner=rep, stage=stages["qualified"])

    def count(deal):
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                f"/api/v1/deals/{deal.pk}/move/",
                {"stage": stages["qualified"].pk, "version": deal.version},
                format="json",
            )
            assert response.status_code == 200
        return len(queries)

    # The same 12 statements with 2 or 22 deals in the pipeline.
    assert count(deals[0]) == count(deals[1]) == 12


def test_update_with_if_match(rep, deal, api_for):
    response = api_for(rep).patch(
        f"/api/v1/deals/{deal.pk}/",
        {"next_step": "Send proposal", "amount": "5000.00"},
        format="json",
        HTTP_IF_MATCH=f'"{deal.version}"',
    )
    assert response.status_code == 200, response.json()
    deal.refresh_from_db()
    assert (deal.next_step, str(deal.amount), deal.version) == ("Send proposal", "5000.00", 2)


def test_update_refuses_owner_and_stage_fields(rep, deal, outsider, api_for):
    response = api_for(rep).patch(
        f"/api/v1/deals/{deal.pk}/",
        {"owner": outsider.pk, "version": deal.version},
        format="json",
    )
    assert response.status_code == 400
    assert Deal.objects.get(pk=deal.pk).owner == deal.owner


def test_close_won_needs_an_amount(rep, stages, api_for):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=None)
    client = api_for(rep)
    refused = client.post(
        f"/api/v1/deals/{deal.pk}/close/",
        {"outcome": "won", "version": deal.version},
        format="json",
    )
    assert refused.status_code == 422
    won = client.post(
        f"/api/v1/deals/{deal.pk}/close/",
        {"outcome": "won", "amount": "900.00", "version": deal.version},
        format="json",
    )
    assert won.status_code == 200, won.json()
    assert won.json()["status"] == "won"


def test_reassign_by_manager_and_not_by_rep(rep, teammate, manager, deal, api_for):
    body = {"owner": teammate.pk, "version": deal.version}
    assert (
        api_for(rep).post(f"/api/v1/deals/{deal.pk}/reassign/", body, format="json").status_code
        == 403
    )
    response = api_for(manager).post(f"/api/v1/deals/{deal.pk}/reassign/", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["owner"] == teammate.pk


def test_history_lists_stage_changes(rep, deal, api_for):
    rows = api_for(rep).get(f"/api/v1/deals/{deal.pk}/history/").json()
    assert [r["seq"] for r in rows] == [1]


def test_idempotent_retry_answers_the_same_without_a_second_deal(rep, stages, api_for):
    client = api_for(rep)
    body = {"title": "Once", "stage": stages["lead"].pk}
    first = client.post("/api/v1/deals/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/v1/deals/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Deal.objects.filter(title="Once").count() == 1


def test_idempotency_key_reused_with_another_body_is_refused(rep, stages, api_for):
    client = api_for(rep)
    client.post(
        "/api/v1/deals/",
        {"title": "A", "stage": stages["lead"].pk},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-2",
    )
    response = client.post(
        "/api/v1/deals/",
        {"title": "B", "stage": stages["lead"].pk},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-2",
    )
    assert response.status_code == 422
    assert not Deal.objects.filter(title="B").exists()


def test_idempotency_window_is_24_hours(rep, stages, api_for):
    from api.models import IdempotentAnswer

    client = api_for(rep)
    body = {"title": "Daily", "stage": stages["lead"].pk}
    client.post("/api/v1/deals/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    IdempotentAnswer.objects.update(created_at=timezone.now() - timedelta(hours=25))
    client.post("/api/v1/deals/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert Deal.objects.filter(title="Daily").count() == 2


def test_rate_limit_answers_429_with_retry_after(rep, api_for, settings, monkeypatch):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (2, 60)}
    monkeypatch.setattr("common.ratelimit.time.time", lambda: 1_800_000_030.0)  # mid-window
    client = api_for(rep)
    assert client.get("/api/v1/deals/").status_code == 200
    assert client.get("/api/v1/deals/").status_code == 200
    response = client.get("/api/v1/deals/")
    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    assert response["Content-Type"] == "application/problem+json"


def test_rate_limit_is_per_token(rep, api_for, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (1, 60)}
    assert api_for(rep).get("/api/v1/deals/").status_code == 200
    assert api_for(rep).get("/api/v1/deals/").status_code == 200


def test_rate_limit_lets_requests_through_when_the_cache_is_down(rep, api_for, monkeypatch):
    client = api_for(rep)

    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "add", broken)
    monkeypatch.setattr(cache, "incr", broken)
    assert client.get("/api/v1/deals/").status_code == 200


def test_read_only_scope_may_still_read(rep, deal, api_for):
    assert api_for(rep, TokenScope.READ).get(f"/api/v1/deals/{deal.pk}/").status_code == 200


def test_updated_since_filter(rep, stages, deal, api_for):
    since = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert api_for(rep).get("/api/v1/deals/", {"updated_since": since}).json()["results"] == []


# --- DELETE --------------------------------------------------------------------------------


def test_manager_deletes_with_if_match(manager, deal, api_for):
    response = api_for(manager).delete(
        f"/api/v1/deals/{deal.pk}/", HTTP_IF_MATCH=f'"{deal.version}"'
    )
    assert response.status_code == 204
    assert not Deal.objects.filter(pk=deal.pk).exists()
    from deals.models import Event

    assert Event.objects.get(name="deal.deleted").source == "api"


def test_delete_without_version_is_428(manager, deal, api_for):
    response = api_for(manager).delete(f"/api/v1/deals/{deal.pk}/")
    assert response.status_code == 428
    assert Deal.objects.filter(pk=deal.pk).exists()


def test_stale_delete_is_409_problem_and_keeps_the_deal(manager, deal, api_for):
    response = api_for(manager).delete(
        f"/api/v1/deals/{deal.pk}/", HTTP_IF_MATCH=f'"{deal.version + 1}"'
    )
    assert response.status_code == 409
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["current_version"] == deal.version
    assert Deal.objects.filter(pk=deal.pk).exists()


@pytest.mark.parametrize(("who", "status"), [("rep", 403), ("teammate", 403), ("outsider", 404)])
def test_reps_may_not_delete(deal, api_for, request, who, status):
    response = api_for(request.getfixturevalue(who)).delete(
        f"/api/v1/deals/{deal.pk}/", HTTP_IF_MATCH=f'"{deal.version}"'
    )
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/problem+json")
    assert Deal.objects.filter(pk=deal.pk).exists()


def test_read_only_token_may_not_delete(manager, deal, api_for):
    response = api_for(manager, scope=TokenScope.READ).delete(
        f"/api/v1/deals/{deal.pk}/", HTTP_IF_MATCH=f'"{deal.version}"'
    )
    assert response.status_code == 403
    assert Deal.objects.filter(pk=deal.pk).exists()


def test_delete_query_count_does_not_grow_with_what_hangs_on_the_deal(
    manager, rep, stages, api_for
):
    from tests.factories import ActivityFactory

    client = api_for(manager)
    client.get("/api/v1/deals/")
    warm = DealFactory(owner=rep, stage=stages["lead"])
    client.delete(f"/api/v1/deals/{warm.pk}/", HTTP_IF_MATCH=f'"{warm.version}"')
    bare = DealFactory(owner=rep, stage=stages["lead"])
    busy = DealFactory(owner=rep, stage=stages["lead"])
    for _ in range(5):
        ActivityFactory(deal=busy, owner=rep)

    def count(deal):
        with CaptureQueriesContext(connection) as queries:
            response = client.delete(
                f"/api/v1/deals/{deal.pk}/", HTTP_IF_MATCH=f'"{deal.version}"'
            )
            assert response.status_code == 204
        return len(queries)

    # 21: the lock reuses the owner the view already read (deals.services.SEEN_RELATIONS),
    # and the policy's change rule, judged on the locked row, asks once which teams the
    # manager manages.
    assert count(bare) == count(busy) == 21


def test_schema_documents_delete(api_for, rep):
    schema = api_for(rep).get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/deals/{id}/"]["delete"]
    assert {"204", "403", "404", "409", "428"} <= set(operation["responses"])
