"""Each trigger kind starts its rule for the events it names, and not for others."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from automations import services as automations
from automations.models import RuleRun
from deals import activities, events, services
from deals.models import Deal
from tests.factories import DealFactory

pytestmark = pytest.mark.django_db

NOTE = [{"kind": "notify", "roles": ["owner"], "users": [], "text": "hi", "email": False}]


def runs(rule) -> int:
    return RuleRun.objects.filter(rule=rule).count()


def test_deal_created(rep, stages, make_rule, committed):
    rule = make_rule({"kind": "deal_created"}, NOTE)
    with committed():
        services.create_deal(by=rep, title="New", stage=stages["lead"])
    assert runs(rule) == 1


def test_stage_entered_only_for_its_stage(rep, stages, make_rule, committed):
    demo = make_rule({"kind": "stage_entered", "stage": stages["demo"].pk}, NOTE)
    other = make_rule({"kind": "stage_entered", "stage": stages["proposal"].pk}, NOTE)
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    assert (runs(demo), runs(other)) == (1, 0)


def test_stage_entered_from_a_given_stage(rep, stages, make_rule, committed):
    rule = make_rule(
        {"kind": "stage_entered", "stage": stages["demo"].pk, "from_stage": stages["lead"].pk},
        NOTE,
    )
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    assert runs(rule) == 0
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    assert runs(rule) == 1


def test_stage_left(rep, stages, make_rule, committed):
    rule = make_rule({"kind": "stage_left", "stage": stages["qualified"].pk}, NOTE)
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    assert runs(rule) == 1


def test_won_and_lost(rep, stages, make_rule, committed):
    won = make_rule({"kind": "deal_won"}, NOTE)
    lost = make_rule({"kind": "deal_lost"}, NOTE)
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=Decimal("5"))
    with committed():
        services.move_deal(deal, stages["won"], by=rep, expected_version=deal.version)
    assert (runs(won), runs(lost)) == (1, 0)
    other = DealFactory(owner=rep, stage=stages["proposal"], lost_reason="Price")
    with committed():
        services.move_deal(other, stages["lost"], by=rep, expected_version=other.version)
    assert (runs(won), runs(lost)) == (1, 1)


def test_stalled_by_rule(rep, stages, make_rule):
    any_flag = make_rule({"kind": "deal_stalled"}, NOTE)
    by_rule = make_rule({"kind": "deal_stalled", "stalled_rule": "no_next_step"}, NOTE)
    deal = DealFactory(owner=rep, stage=stages["demo"])
    stalled = events.event(
        "deal.stalled", by=None, source="job", deal=deal, rules=["in_stage_too_long"]
    )
    automations.runs_for_events(events.publish(stalled))
    assert (runs(any_flag), runs(by_rule)) == (1, 0)


@pytest.mark.parametrize(
    ("field", "change"),
    [("amount", {"amount": Decimal("7")}), ("expected_close_date", {"expected_close_date": None})],
)
def test_field_changed(rep, stages, make_rule, committed, field, change):
    rule = make_rule({"kind": "field_changed", "field": field}, NOTE)
    other = make_rule({"kind": "field_changed", "field": "owner"}, NOTE)
    deal = DealFactory(owner=rep, stage=stages["demo"], expected_close_date=timezone.localdate())
    with committed():
        services.update_deal(deal, change, by=rep, expected_version=deal.version)
    assert (runs(rule), runs(other)) == (1, 0)


def test_owner_changed(rep, teammate, manager, stages, make_rule, committed):
    rule = make_rule({"kind": "field_changed", "field": "owner"}, NOTE)
    deal = DealFactory(owner=rep, stage=stages["demo"])
    with committed():
        services.reassign_deal(deal, new_owner=teammate, by=manager, expected_version=deal.version)
    assert runs(rule) == 1


def test_imported_deals_fire_only_when_the_importer_asked(rep, stages, make_rule):
    rule = make_rule({"kind": "deal_created"}, NOTE)
    quiet, asked = (
        DealFactory(owner=rep, stage=stages["lead"]),
        DealFactory(owner=rep, stage=stages["lead"]),
    )
    published = events.publish(
        events.event("deal.created", by=rep, source="import", deal=quiet, automations=False),
        events.event("deal.created", by=rep, source="import", deal=asked, automations=True),
    )
    automations.runs_for_events(published)
    assert list(RuleRun.objects.filter(rule=rule).values_list("deal_id", flat=True)) == [asked.pk]


def test_a_managers_rule_ignores_other_teams_deals(manager, outsider, rep, stages, make_rule):
    rule = make_rule({"kind": "deal_created"}, NOTE, owner=manager)
    mine, theirs = (
        DealFactory(owner=rep, stage=stages["lead"]),
        DealFactory(owner=outsider, stage=stages["lead"]),
    )
    automations.runs_for_events(
        events.publish(
            *(events.event("deal.created", by=rep, source="form", deal=d) for d in (mine, theirs))
        )
    )
    assert list(RuleRun.objects.filter(rule=rule).values_list("deal_id", flat=True)) == [mine.pk]


def test_a_paused_rule_does_not_start(rep, stages, make_rule, committed):
    rule = make_rule({"kind": "deal_created"}, NOTE)
    rule.is_active = False
    rule.save()
    with committed():
        services.create_deal(by=rep, title="New", stage=stages["lead"])
    assert runs(rule) == 0


# --- time-based ------------------------------------------------------------------------------


def test_days_before_the_close_date_fires_once_per_due_date(rep, stages, make_rule, committed):
    today = timezone.localdate()
    rule = make_rule({"kind": "close_date", "days": -7}, NOTE)
    due = DealFactory(
        owner=rep, stage=stages["demo"], expected_close_date=today + timedelta(days=7)
    )
    DealFactory(owner=rep, stage=stages["demo"], expected_close_date=today + timedelta(days=8))
    with committed():
        assert automations.scan_time_based() == 1
    assert automations.scan_time_based() == 0  # the same (deal, rule, due date) once
    run = RuleRun.objects.get(rule=rule)
    assert (run.deal_id, run.due_on, run.status) == (due.pk, today, "done")


def test_days_after_the_close_date(rep, stages, make_rule):
    today = timezone.localdate()
    rule = make_rule({"kind": "close_date", "days": 2}, NOTE)
    rule.created_at -= timedelta(days=5)
    rule.save()
    deal = DealFactory(
        owner=rep, stage=stages["demo"], expected_close_date=today - timedelta(days=3)
    )
    automations.scan_time_based()
    assert RuleRun.objects.get(rule=rule).deal_id == deal.pk  # due yesterday, caught up


def test_days_in_stage(rep, stages, make_rule):
    rule = make_rule({"kind": "days_in_stage", "days": 3}, NOTE)
    rule.created_at -= timedelta(days=2)  # due yesterday counts too, whatever the hour
    rule.save()
    now = timezone.now()
    old = DealFactory(
        owner=rep, stage=stages["demo"], stage_entered_at=now - timedelta(days=3, hours=1)
    )
    DealFactory(owner=rep, stage=stages["demo"], stage_entered_at=now - timedelta(days=2))
    automations.scan_time_based()
    assert list(RuleRun.objects.filter(rule=rule).values_list("deal_id", flat=True)) == [old.pk]


def noon_today():
    """A scan's "now" at a fixed hour: due times a few minutes earlier stay on its day."""
    return timezone.make_aware(datetime.combine(timezone.localdate(), time(12)))


def test_activity_overdue(rep, stages, make_rule):
    from tests.factories import ActivityFactory

    rule = make_rule({"kind": "activity_overdue"}, NOTE)
    now = noon_today()
    late = ActivityFactory(
        deal=DealFactory(owner=rep, stage=stages["demo"]), due_at=now - timedelta(minutes=5)
    )
    ActivityFactory(
        deal=DealFactory(owner=rep, stage=stages["demo"]), due_at=now + timedelta(hours=1)
    )
    automations.scan_time_based(now=now)
    assert list(RuleRun.objects.filter(rule=rule).values_list("deal_id", flat=True)) == [
        late.deal_id
    ]


def test_time_based_rules_skip_closed_deals(rep, stages, make_rule):
    make_rule({"kind": "close_date", "days": 0}, NOTE)
    DealFactory(owner=rep, stage=stages["won"], expected_close_date=timezone.localdate())
    assert automations.scan_time_based() == 0


def test_two_overdue_activities_of_a_deal_on_one_day_make_one_run(rep, stages, make_rule):
    from tests.factories import ActivityFactory

    rule = make_rule({"kind": "activity_overdue"}, NOTE)
    deal = DealFactory(owner=rep, stage=stages["demo"])
    now = noon_today()
    for minutes in (5, 10):
        ActivityFactory(deal=deal, due_at=now - timedelta(minutes=minutes))
    assert automations.scan_time_based(now=now) == 1
    assert RuleRun.objects.filter(rule=rule, deal_id=deal.pk).count() == 1


def test_a_scan_reads_from_the_last_one_and_catches_up_the_days_it_missed(rep, stages, make_rule):
    today = timezone.localdate()
    now = timezone.now()
    rule = make_rule({"kind": "close_date", "days": 0}, NOTE)
    rule.created_at = now - timedelta(days=6)
    rule.scanned_at = now - timedelta(days=3)  # beat was down since
    rule.save()
    missed = DealFactory(owner=rep, stage=stages["demo"], expected_close_date=today - timedelta(2))
    seen = DealFactory(owner=rep, stage=stages["demo"], expected_close_date=today - timedelta(5))
    # Due before the last pass and not written since: that pass saw it (it did not match then).
    Deal.objects.filter(pk=seen.pk).update(updated_at=now - timedelta(days=4))
    assert automations.scan_time_based(now=now) == 1
    assert RuleRun.objects.get(rule=rule).deal_id == missed.pk
    rule.refresh_from_db()
    assert rule.scanned_at == now


def passed(rule, at):
    """The rule's last beat pass ran at `at`."""
    rule.created_at = at - timedelta(days=2)
    rule.scanned_at = at
    rule.save()


def test_an_activity_logged_already_overdue_after_the_pass_fires(rep, stages, make_rule):
    rule = make_rule({"kind": "activity_overdue"}, NOTE)
    now = timezone.now()  # the writes below are stamped with the real time
    passed(rule, now - timedelta(minutes=5))
    deal = DealFactory(owner=rep, stage=stages["demo"])
    activities.log_activity(
        deal, by=rep, type="call", subject="Call back", due_at=now - timedelta(hours=1)
    )
    assert automations.scan_time_based(now=now) == 1
    assert RuleRun.objects.get(rule=rule).deal_id == deal.pk
    assert automations.scan_time_based(now=now + timedelta(minutes=5)) == 0  # once


def test_an_activity_rescheduled_into_the_past_fires(rep, stages, make_rule):
    from tests.factories import ActivityFactory

    rule = make_rule({"kind": "activity_overdue"}, NOTE)
    now = timezone.now()  # the writes below are stamped with the real time
    deal = DealFactory(owner=rep, stage=stages["demo"])
    activity = ActivityFactory(deal=deal, owner=rep, due_at=now + timedelta(days=1))
    Deal.objects.filter(pk=deal.pk).update(updated_at=now - timedelta(hours=1))
    passed(rule, now - timedelta(minutes=5))
    assert automations.scan_time_based(now=now - timedelta(minutes=5)) == 0
    activities.update_activity(
        activity.pk, by=rep, subject="Call", type="call", due_at=now - timedelta(hours=2), note=""
    )
    assert automations.scan_time_based(now=now) == 1
    assert RuleRun.objects.get(rule=rule).deal_id == deal.pk


def test_a_close_date_edited_into_the_past_after_the_pass_fires(rep, stages, make_rule):
    now = timezone.now()
    today = timezone.localdate(now)
    rule = make_rule({"kind": "close_date", "days": 0}, NOTE)
    passed(rule, now - timedelta(minutes=5))
    deal = DealFactory(owner=rep, stage=stages["demo"], expected_close_date=today + timedelta(9))
    Deal.objects.filter(pk=deal.pk).update(updated_at=now - timedelta(hours=1))
    services.update_deal(
        deal,
        {"expected_close_date": today - timedelta(days=2)},
        by=rep,
        expected_version=deal.version,
    )
    assert automations.scan_time_based(now=now) == 1
    run = RuleRun.objects.get(rule=rule)
    assert (run.deal_id, run.due_on) == (deal.pk, today - timedelta(days=2))


def test_a_deal_written_with_a_past_stage_entry_fires_its_days_in_stage(rep, stages, make_rule):
    now = timezone.now()
    rule = make_rule({"kind": "days_in_stage", "days": 3}, NOTE)
    passed(rule, now - timedelta(minutes=5))
    deal = DealFactory(
        owner=rep, stage=stages["demo"], stage_entered_at=now - timedelta(days=4, hours=1)
    )
    assert automations.scan_time_based(now=now) == 1
    assert RuleRun.objects.get(rule=rule).deal_id == deal.pk
