"""The event log: each action publishes exactly its events, once, after commit; none on
rollback; every consumer processes each event once, a failed one is retried alone."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from deals import activities, events, services, stalled
from deals.models import Event, EventReceipt, StalledFlag, StalledRule
from stages.models import CriterionKind
from tests.factories import ActivityFactory, CriterionFactory, DealFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def recorder():
    """A consumer registered for the test only, recording what it is handed."""
    seen: list[tuple[str, str]] = []
    failures: list[Exception] = []

    def handle(batch):
        if failures:
            raise failures.pop()
        seen.extend((e.name, str(e.pk)) for e in batch)

    events.consumer("test_recorder", events=["deal.*", "activity.*"])(handle)
    yield seen, failures
    events._consumers.pop("test_recorder")


def names(**filters) -> list[str]:
    return list(Event.objects.filter(**filters).order_by("id").values_list("name", flat=True))


# --- each action publishes exactly its events -------------------------------------------------


def test_a_move_publishes_deal_moved_only(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    services.move_deal(deal, stages["qualified"], by=rep, expected_version=1, source="menu")
    event = Event.objects.get()
    assert (event.name, event.source, event.actor, event.deal_id) == (
        "deal.moved",
        "menu",
        rep,
        deal.pk,
    )


def test_winning_publishes_moved_and_won(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=Decimal("10"))
    services.move_deal(deal, stages["won"], by=rep, expected_version=deal.version)
    assert names() == ["deal.moved", "deal.won"]


def test_losing_publishes_moved_and_lost(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], lost_reason="Price")
    services.move_deal(deal, stages["lost"], by=rep, expected_version=deal.version)
    assert names() == ["deal.moved", "deal.lost"]


def test_reopening_a_lost_deal_publishes_reopened(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lost"], lost_reason="Price")
    services.move_deal(deal, stages["lead"], by=rep, expected_version=deal.version)
    assert names() == ["deal.moved", "deal.reopened"]


def test_a_reorder_publishes_nothing(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], position=10)
    other = DealFactory(owner=rep, stage=stages["lead"], position=20)
    services.reorder_deal(
        deal, by=rep, position=services.Placement(after_id=other.pk), expected_version=1
    )
    assert names() == []


def test_a_refused_move_publishes_nothing(rep, stages):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with pytest.raises(services.GateBlocked):
        services.move_deal(deal, stages["qualified"], by=rep, expected_version=1)
    with pytest.raises(services.VersionConflict):
        services.move_deal(deal, stages["demo"], by=rep, expected_version=9)
    assert names() == []


def test_an_edit_publishes_updated_with_changed_fields_old_and_new(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("100"), title="Old")
    services.update_deal(
        deal, {"amount": Decimal("250"), "title": "Old"}, by=rep, expected_version=1
    )
    event = Event.objects.get()
    assert event.name == "deal.updated"
    assert event.payload["fields"] == ["amount"]
    assert event.payload["changes"] == {"amount": ["100.00", "250"]}


def test_an_edit_that_changes_nothing_publishes_nothing(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Same")
    services.update_deal(deal, {"title": "Same"}, by=rep, expected_version=1)
    assert names() == []


def test_a_reassignment_names_both_owners(rep, teammate, manager, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    services.reassign_deal(deal, new_owner=teammate, by=manager, expected_version=1)
    event = Event.objects.get()
    assert event.name == "deal.reassigned"
    assert (event.payload["owner_id"], event.payload["previous_owner_id"]) == (
        teammate.pk,
        rep.pk,
    )


def test_creating_publishes_created(rep, stages):
    services.create_deal(by=rep, title="New", stage=stages["lead"])
    assert names() == ["deal.created"]


def test_fix_and_move_publishes_the_fixes_then_the_move(rep, stages):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.ACTIVITY_DONE, activity_type="call"
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    fixes = services.GateFixes(fields={"next_step": "Send offer"}, activities=(("call", "Rang"),))
    services.complete_and_move(deal, stages["qualified"], fixes, by=rep, expected_version=1)
    assert names() == ["deal.updated", "activity.created", "deal.moved"]


def test_activity_actions_publish_their_events(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    logged = activities.log_activity(deal, by=rep, type="call", subject="Call")
    activities.update_activity(
        logged.pk, by=rep, subject="Call back", type="call", due_at=None, note=""
    )
    activities.complete_activity(logged.pk, by=rep)
    activities.complete_activity(logged.pk, by=rep)  # already done: nothing new
    activities.delete_activity(logged.pk, by=rep)
    assert names() == [
        "activity.created",
        "activity.updated",
        "activity.completed",
        "activity.deleted",
    ]
    assert {e.payload["activity_id"] for e in Event.objects.all()} == {logged.pk}


def test_snoozing_and_unsnoozing_publish_their_events(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    until = timezone.localdate() + timedelta(days=3)
    stalled.snooze_deal(deal, by=rep, until=until, reason="Holiday")
    stalled.unsnooze_deal(deal, by=rep)
    assert names() == ["deal.snoozed", "deal.unsnoozed"]
    assert Event.objects.get(name="deal.snoozed").payload["until"] == until.isoformat()


def test_bulk_moves_are_published_as_bulk(rep, stages):
    deals = DealFactory.create_batch(2, owner=rep, stage=stages["lead"])
    services.bulk_move([d.pk for d in deals], stages["qualified"], by=rep)
    assert list(Event.objects.values_list("source", flat=True)) == ["bulk", "bulk"]


# --- after commit, never for a rollback -------------------------------------------------------


def test_nothing_is_published_for_a_rolled_back_transaction(
    rep, stages, django_capture_on_commit_callbacks
):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.move_deal(deal, stages["qualified"], by=rep, expected_version=1)
        raise RuntimeError("the request failed after the move")
    assert names() == []
    assert callbacks == []


def test_consumers_run_only_after_commit(
    rep, stages, eager, recorder, django_capture_on_commit_callbacks
):
    seen, _ = recorder
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.move_deal(deal, stages["qualified"], by=rep, expected_version=1)
    assert seen == []
    for callback in callbacks:
        callback()
    assert seen == [("deal.moved", str(Event.objects.get().pk))]


# --- consumers: each processes each event once ---------------------------------------------


def test_each_consumer_processes_each_event_once(rep, stages, eager, recorder):
    seen, _ = recorder
    deal = DealFactory(owner=rep, stage=stages["lead"])
    services.move_deal(deal, stages["qualified"], by=rep, expected_version=1)
    event_id = str(Event.objects.get().pk)
    events.process([event_id])
    events.process([event_id])  # a second delivery
    Event.objects.update(handled_at=None)
    events.process([event_id])  # even one that finds the event unhandled again
    assert seen == [("deal.moved", event_id)]
    assert set(EventReceipt.objects.values_list("consumer", flat=True)) >= {
        "test_recorder",
        "stalled_flags",
        "forecasts",
    }
    assert Event.objects.get().handled_at is not None


def test_a_failed_consumer_is_retried_alone_and_the_event_stays_unhandled(
    rep, stages, eager, recorder
):
    seen, failures = recorder
    stages["lead"].rotting_days = 1
    stages["lead"].save()
    deal = DealFactory(
        owner=rep, stage=stages["lead"], stage_entered_at=timezone.now() - timedelta(days=5)
    )
    ActivityFactory(deal=deal, due_at=timezone.now() + timedelta(days=1))
    StalledFlag.objects.create(deal=deal, rule=StalledRule.IN_STAGE_TOO_LONG)
    services.move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    event_id = str(Event.objects.get(name="deal.moved").pk)
    failures.append(RuntimeError("webhook endpoint down"))

    with pytest.raises(events.ConsumerFailed):
        events.process([event_id])

    assert seen == []
    assert Event.objects.get(pk=event_id).handled_at is None
    assert not StalledFlag.objects.filter(rule=StalledRule.IN_STAGE_TOO_LONG).exists()
    # The flags consumer's refresh published that the rule stopped firing, once.
    assert names(name__startswith="deal.un") == ["deal.unstalled"]
    receipts = set(EventReceipt.objects.values_list("consumer", flat=True))
    assert "test_recorder" not in receipts and "stalled_flags" in receipts

    flags_before = list(StalledFlag.objects.values_list("pk", flat=True))
    assert events.process([event_id]) == 1  # the retry
    assert seen == [("deal.moved", event_id)]
    assert list(StalledFlag.objects.values_list("pk", flat=True)) == flags_before
    assert Event.objects.get(pk=event_id).handled_at is not None
    assert names(name__startswith="deal.un") == ["deal.unstalled"]  # not again on the retry


def test_consumers_get_only_the_events_they_asked_for(rep, stages, eager):
    seen = []
    events.consumer("test_won_only", events=["deal.won"])(lambda batch: seen.extend(batch))
    try:
        deal = DealFactory(owner=rep, stage=stages["proposal"], amount=Decimal("5"))
        services.move_deal(deal, stages["won"], by=rep, expected_version=deal.version)
        events.process([str(pk) for pk in Event.objects.values_list("pk", flat=True)])
    finally:
        events._consumers.pop("test_won_only")
    assert [e.name for e in seen] == ["deal.won"]


def test_the_drain_dispatches_unhandled_events_again(rep, stages, eager, recorder):
    seen, _ = recorder
    deal = DealFactory(owner=rep, stage=stages["lead"])
    services.move_deal(deal, stages["qualified"], by=rep, expected_version=1)
    assert events.redispatch() == 0  # too fresh: its own hand-off is still on its way
    Event.objects.update(at=timezone.now() - events.REDISPATCH_AFTER - timedelta(seconds=1))
    assert events.redispatch() == 1
    assert len(seen) == 1
    assert events.redispatch() == 0  # handled now


def test_reassignment_recomputes_both_owners_forecasts_through_the_log(
    rep, teammate, manager, stages, eager, django_capture_on_commit_callbacks
):
    from reports.models import Forecast

    deal = DealFactory(
        owner=rep,
        stage=stages["qualified"],
        amount=Decimal("1000"),
        expected_close_date=timezone.localdate(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.update_deal(deal, {"amount": Decimal("1200")}, by=rep, expected_version=1)
    assert Forecast.objects.filter(owner=rep, open_deals__gt=0).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_deal(deal, new_owner=teammate, by=manager, expected_version=2)
    assert not Forecast.objects.filter(owner=rep, open_deals__gt=0).exists()
    assert Forecast.objects.filter(owner=teammate, open_deals__gt=0).exists()
