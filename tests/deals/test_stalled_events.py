"""The stalled job publishes deal.stalled and deal.unstalled: one event per deal and kind,
written set-based in the job's own transaction, handed over after commit, ids and rule
keys only; a second run publishes nothing, a rolled-back run nothing at all."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.db import transaction

from deals import live, stalled
from deals.models import Deal, Event, StalledRule
from tests.deals.test_stalled import NOW, DealFactory, quiet_deal

pytestmark = pytest.mark.django_db

SLIPPING = StalledRule.CLOSE_DATE_SLIPPING
NO_NEXT_STEP = StalledRule.NO_NEXT_STEP


def published(name: str) -> list[Event]:
    return list(Event.objects.filter(name=name).order_by("deal_id"))


def test_a_run_publishes_one_deal_stalled_per_newly_flagged_deal(rep, teammate, stages):
    first = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3, title="Secret")
    second = DealFactory(owner=teammate, stage=stages["lead"], close_date_pushes=3)
    quiet_deal(owner=rep, stage=stages["lead"])

    stalled.refresh_flags(now=NOW)

    events = published("deal.stalled")
    assert [e.deal_id for e in events] == [first.pk, second.pk]
    assert events[0].payload == {
        "deal_id": first.pk,
        "owner_id": rep.pk,
        "rules": sorted([NO_NEXT_STEP, SLIPPING]),
    }
    assert events[1].payload["owner_id"] == teammate.pk
    for event in events:
        assert (event.source, event.actor_id, event.at) == ("job", None, NOW)
        assert uuid.UUID(str(event.pk)).version == 7
        assert "Secret" not in json.dumps(event.payload)
    assert not published("deal.unstalled")


def test_a_second_run_publishes_nothing(rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    stalled.refresh_flags(now=NOW)
    before = Event.objects.count()
    stalled.refresh_flags(now=NOW)
    assert Event.objects.count() == before == 1


def test_a_rule_that_starts_firing_later_is_published_alone(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(expected_close_date=NOW.date() - timedelta(days=1))
    stalled.refresh_flags(now=NOW)
    assert [e.payload["rules"] for e in published("deal.stalled")] == [
        sorted([NO_NEXT_STEP, SLIPPING]),
        [StalledRule.CLOSE_DATE_PASSED],
    ]


def test_rules_that_stop_firing_publish_deal_unstalled(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    calm = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(close_date_pushes=0)

    stalled.refresh_flags(now=NOW)

    (event,) = published("deal.unstalled")
    assert event.payload == {"deal_id": deal.pk, "owner_id": rep.pk, "rules": [SLIPPING]}
    assert event.source == "job"
    assert calm.pk not in [e.deal_id for e in published("deal.unstalled")]
    stalled.refresh_flags(now=NOW)
    assert len(published("deal.unstalled")) == 1  # and not again


def test_a_narrowed_refresh_publishes_only_for_its_deals(rep, stages):
    mine = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    stalled.refresh_flags(now=NOW, deal_ids=[mine.pk])
    assert [e.deal_id for e in published("deal.stalled")] == [mine.pk]


def test_a_rolled_back_run_publishes_nothing(rep, stages, django_capture_on_commit_callbacks):
    DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        stalled.refresh_flags(now=NOW)
        assert published("deal.stalled")
        raise RuntimeError("the job's transaction fails")
    assert callbacks == []
    assert not Event.objects.exists()


def test_events_are_handed_to_consumers_after_commit(
    rep, stages, eager, django_capture_on_commit_callbacks
):
    DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        stalled.refresh_flags(now=NOW)
    assert Event.objects.get().handled_at is None  # nothing before commit
    for callback in callbacks:
        callback()
    assert Event.objects.get().handled_at is not None


@pytest.mark.django_db(transaction=True)
def test_open_boards_hear_the_flagged_deal(rep, stages):
    backend = live.LocalBackend(live.hub, size=5)
    live.reset(backend)
    subscription = live.Subscription()
    subscription.open()
    try:
        deal = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
        stalled.refresh_flags(now=NOW)
        heard = [json.loads(m.data) for m in subscription.pending()]
    finally:
        subscription.close()
        live.reset()
    assert heard == [
        {"deal": deal.pk, "version": deal.version, "event": "deal.stalled", "by": None}
    ]
