"""The action layer's contract on the web: domain errors answered in one place, forms as
commands, and the defects of issue 13 that went through the old hand-written mappings."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from common.errors import (
    BadInput,
    NotAllowed,
    NotVisible,
    RuleFailed,
    StaleVersion,
    TooManyRequests,
    describe,
)
from deals import services
from deals.models import Deal, MoveSource, StageChange
from reports import forecasts
from reports.models import Forecast
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


# --- one mapping -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotVisible(), 404),
        (NotAllowed("no"), 403),
        (StaleVersion("changed"), 409),
        (RuleFailed("missing", failures=["x"]), 422),
        (BadInput("bad"), 400),
        (TooManyRequests(retry_after=7), 429),
    ],
)
def test_each_domain_error_maps_to_its_status(error, status):
    assert describe(error).status == status


def test_rule_failed_carries_each_missing_item():
    assert describe(RuleFailed("m", failures=["a", "b"])).details == {"failures": ["a", "b"]}


def test_too_many_requests_says_when_to_retry():
    assert describe(TooManyRequests(retry_after=7)).headers == {"Retry-After": "7"}


def test_deal_errors_are_the_domain_family():
    assert issubclass(services.VersionConflict, StaleVersion)
    assert issubclass(services.GateBlocked, RuleFailed)
    assert issubclass(services.InvalidMove, BadInput)
    assert services.NotFound is NotVisible


# --- NotFound answered 404, not 403 (issue 13) ----------------------------------------------


@pytest.mark.parametrize("url_name", ["deal_move", "deal_fix_move"])
@pytest.mark.parametrize("htmx", [True, False])
def test_board_views_answer_an_unseen_deal_404(client_for, rep, stages, url_name, htmx):
    # The deal disappears from the user's view between the page's read and the action's lock.
    deal = DealFactory(owner=rep, stage=stages["lead"])
    action = "move_deal" if url_name == "deal_move" else "complete_and_move"
    data = {"stage": stages["qualified"].pk, "version": 1, "source": "board"}
    with mock.patch.object(services, action, side_effect=services.NotFound("Deal not found.")):
        response = client_for(rep).post(
            reverse(url_name, args=[deal.pk]), data, **(HTMX if htmx else {})
        )
    assert response.status_code == 404


def test_moving_a_teammates_deal_answers_403(client_for, rep, teammate, stages):
    theirs = DealFactory(owner=teammate, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("deal_move", args=[theirs.pk]),
        {"stage": stages["qualified"].pk, "version": 1, "source": "board"},
        **HTMX,
    )
    assert response.status_code == 403
    theirs.refresh_from_db()
    assert theirs.stage == stages["lead"]


def test_the_service_tells_not_yours_from_not_there(rep, teammate, outsider, stages):
    theirs = DealFactory(owner=teammate, stage=stages["lead"])
    hidden = DealFactory(owner=outsider, stage=stages["lead"])
    with pytest.raises(NotAllowed):
        services.move_deal(theirs, stages["qualified"], by=rep, expected_version=1)
    with pytest.raises(NotVisible):
        services.move_deal(hidden, stages["qualified"], by=rep, expected_version=1)


def test_a_presented_refusal_keeps_the_mappings_status_and_headers(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    # The one mapping decides the status and the Retry-After header; the view only the look.
    with mock.patch(
        "deals.activities.complete_activity", side_effect=TooManyRequests(retry_after=9)
    ):
        activity = deal.activities.create(owner=rep, type="call", subject="Call")
        response = client_for(rep).post(reverse("activity_complete", args=[activity.pk]), **HTMX)
    assert response.status_code == 429
    assert response["Retry-After"] == "9"


# --- forged history: the gate form's source is a choice (issue 13) --------------------------


@pytest.fixture
def gated(stages):
    return CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )


def fix_and_move(client, deal, stage, **data):
    payload = {"stage": stage.pk, "version": deal.version, "next_step": "Call back", **data}
    return client.post(reverse("deal_fix_move", args=[deal.pk]), payload, **HTMX)


@pytest.mark.parametrize("source", ["automation", "api", "import", "x" * 500])
def test_gate_form_refuses_a_source_a_person_cannot_be(client_for, rep, stages, gated, source):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = fix_and_move(client_for(rep), deal, stages["qualified"], source=source)
    assert response.status_code == 400
    deal.refresh_from_db()
    assert deal.stage == stages["lead"]
    assert not StageChange.objects.filter(deal=deal, seq=2).exists()


def test_gate_form_records_the_source_it_was_opened_from(client_for, rep, stages, gated):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = fix_and_move(client_for(rep), deal, stages["qualified"], source="menu")
    assert response.status_code == 200
    assert StageChange.objects.get(deal=deal, seq=2).source == MoveSource.MENU


def test_move_service_refuses_an_unknown_source(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with pytest.raises(BadInput):
        services.move_deal(deal, stages["qualified"], by=rep, expected_version=1, source="x" * 50)


# --- forms are commands ----------------------------------------------------------------------


def test_move_into_an_archived_stage_is_bad_input(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stages["qualified"].is_archived = True
    stages["qualified"].save()
    response = client_for(rep).post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["qualified"].pk, "version": 1, "source": "board"},
        **HTMX,
    )
    assert response.status_code == 400
    assert "That stage does not exist." in response.content.decode()


def test_move_form_refuses_a_source_it_does_not_offer(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["qualified"].pk, "version": 1, "source": "automation"},
        **HTMX,
    )
    assert response.status_code == 400
    assert Deal.objects.get(pk=deal.pk).stage == stages["lead"]


def test_activity_type_must_be_one_of_the_types(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("activity_create", args=[deal.pk]), {"type": "lunch", "subject": "x"}
    )
    assert response.status_code == 422
    assert not deal.activities.exists()


# --- a stale version answers 409 on every path (issue 14) -----------------------------------


def test_a_stale_move_into_the_deals_own_stage_is_a_conflict(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], position=100)
    other = DealFactory(owner=rep, stage=stages["lead"], position=200)
    Deal.objects.filter(pk=deal.pk).update(version=2)  # changed by someone meanwhile
    response = client_for(rep).post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["lead"].pk, "version": 1, "source": "board", "after": other.pk},
        **HTMX,
    )
    assert response.status_code == 409
    assert Deal.objects.get(pk=deal.pk).position == 100


def test_a_current_move_into_the_deals_own_stage_reorders_it(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], position=100)
    other = DealFactory(owner=rep, stage=stages["lead"], position=200)
    response = client_for(rep).post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["lead"].pk, "version": 1, "source": "board", "after": other.pk},
        **HTMX,
    )
    assert response.status_code == 204
    assert Deal.objects.get(pk=deal.pk).position > 200


# --- reassigning refreshes both owners' forecasts (issue 13) --------------------------------


def test_reassigning_refreshes_the_previous_owners_forecast(
    rep, teammate, manager, stages, eager, django_capture_on_commit_callbacks
):
    deal = DealFactory(
        owner=rep,
        stage=stages["qualified"],
        amount=Decimal("1000"),
        expected_close_date=timezone.localdate(),
    )
    forecasts.recompute()
    assert Forecast.objects.filter(owner=rep).filter(open_deals__gt=0).exists()

    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_deal(deal, new_owner=teammate, by=manager, expected_version=1)

    assert not Forecast.objects.filter(owner=rep).filter(open_deals__gt=0).exists()
    assert Forecast.objects.filter(owner=teammate).filter(open_deals__gt=0).exists()
