"""A move carries an idempotency key: its retry (after a 503 whose commit went through)
answers with the move that happened, never a second move or a 409 (issue 14)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from deals import services
from deals.models import Event, StageChange
from tests.factories import DealFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
KEY = "3f2c9a1e-7b5d-4c11-9e0a-2b6f8d4c7a10"


def post_move(client, deal, stage, *, version=1, key=KEY, source="board"):
    data = {"stage": stage.pk, "version": version, "source": source, "key": key}
    return client.post(reverse("deal_move", args=[deal.pk]), data, **HTMX)


def test_a_retried_move_answers_with_the_move_that_happened(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)
    assert post_move(client, deal, stages["qualified"]).status_code == 200

    retry = post_move(client, deal, stages["qualified"])  # the same request, sent again

    assert retry.status_code == 200
    assert f'id="deal-{deal.pk}"' in retry.content.decode()
    assert StageChange.objects.filter(deal=deal).count() == 2  # created + one move
    assert Event.objects.filter(name="deal.moved").count() == 1
    deal.refresh_from_db()
    assert (deal.stage, deal.version) == (stages["qualified"], 2)


def test_a_stale_move_with_a_new_key_is_still_a_conflict(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)
    post_move(client, deal, stages["qualified"])
    other = "9d1e7c3a-0b4f-4e2a-8c6d-5f3b2a1e0d9c"
    assert post_move(client, deal, stages["demo"], key=other).status_code == 409


def test_a_key_only_replays_the_same_target(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)
    post_move(client, deal, stages["qualified"])
    assert post_move(client, deal, stages["demo"]).status_code == 409


def test_anothers_key_replays_nothing(client_for, rep, manager, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    post_move(client_for(rep), deal, stages["qualified"])
    assert post_move(client_for(manager), deal, stages["qualified"]).status_code == 409


def test_without_a_key_a_replay_is_a_conflict(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)
    post_move(client, deal, stages["qualified"], key="")
    assert post_move(client, deal, stages["qualified"], key="").status_code == 409


@pytest.mark.parametrize("key", ["short", "x" * 41, "bad key!", "<script>"])
def test_a_malformed_key_is_bad_input(client_for, rep, stages, key):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert post_move(client_for(rep), deal, stages["qualified"], key=key).status_code == 400
    deal.refresh_from_db()
    assert deal.stage == stages["lead"]


def test_the_service_returns_the_recorded_move_for_its_key(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    first = services.move_deal(
        deal, stages["qualified"], by=rep, expected_version=1, request_key=KEY
    )
    again = services.move_deal(
        deal, stages["qualified"], by=rep, expected_version=1, request_key=KEY
    )
    assert again.change == first.change
    assert again.from_stage == stages["lead"]


def test_the_board_form_carries_a_key_field(client_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"])
    html = client_for(rep).get(reverse("board")).content.decode()
    assert '<input type="hidden" name="key">' in html
