"""Runs: once per (event, rule), after commit; chains bounded; failures told and paused."""

from __future__ import annotations

import pytest

from automations import services as automations
from automations.models import Rule, RuleRun
from deals import events, services
from deals.models import Activity, Event, EventReceipt, Notification
from tests.factories import DealFactory

pytestmark = pytest.mark.django_db

TASK = [
    {"kind": "create_activity", "type": "task", "subject": "T", "due_days": 0, "assignee": "owner"}
]


def test_a_second_delivery_of_the_event_runs_nothing_again(rep, stages, make_rule, committed):
    rule = make_rule({"kind": "stage_entered", "stage": stages["demo"].pk}, TASK)
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    event = Event.objects.get(name="deal.moved")
    Event.objects.update(handled_at=None)
    with committed():
        events.process([str(event.pk)])
        automations.runs_for_events([event])  # even handed to the consumer itself again
    run = RuleRun.objects.get(rule=rule)
    assert automations.execute_run(run.pk) is None  # a finished run never runs again
    assert Activity.objects.filter(deal=deal).count() == 1
    assert EventReceipt.objects.filter(event=event, consumer="automations").count() == 1


def test_runs_start_only_after_the_action_commits(
    rep, stages, make_rule, django_capture_on_commit_callbacks
):
    make_rule({"kind": "stage_entered", "stage": stages["demo"].pk}, TASK)
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with django_capture_on_commit_callbacks(execute=False):
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
        assert not RuleRun.objects.exists()


def test_chains_stop_at_depth_three(rep, stages, make_rule, committed):
    def mover(frm, to, name):
        return make_rule(
            {"kind": "stage_entered", "stage": stages[frm].pk},
            [{"kind": "move_stage", "stage": stages[to].pk}],
            name=name,
        )

    mover("qualified", "demo", "A")
    mover("demo", "proposal", "B")
    mover("proposal", "won", "C")
    last = make_rule({"kind": "deal_won"}, TASK, name="D")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with committed():
        services.move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    deal.refresh_from_db()
    assert deal.stage == stages["won"]  # A, B, C ran at depths 1, 2, 3
    run = RuleRun.objects.get(rule=last)
    assert (run.status, run.depth) == ("skipped", 4)
    assert "depth 3" in run.reason
    assert not Activity.objects.filter(deal=deal).exists()


def test_a_rule_never_retriggers_itself_on_the_deal_in_one_chain(
    rep, stages, make_rule, committed
):
    rule = make_rule(
        {"kind": "field_changed", "field": "amount"},
        [{"kind": "update_field", "field": "amount", "value": "1"}],
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with committed():
        services.update_deal(deal, {"amount": 50}, by=rep, expected_version=deal.version)
    statuses = list(
        RuleRun.objects.filter(rule=rule).order_by("id").values_list("status", "reason")
    )
    assert statuses[0] == ("done", "")
    assert statuses[1][0] == "skipped" and "already ran" in statuses[1][1]
    assert len(statuses) == 2


def test_the_automation_is_the_actor_of_its_events(rep, stages, make_rule, committed):
    rule = make_rule(
        {"kind": "stage_entered", "stage": stages["demo"].pk},
        [{"kind": "move_stage", "stage": stages["proposal"].pk}],
    )
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    moved = Event.objects.filter(name="deal.moved", source="automation").get()
    assert moved.actor == rule.owner
    assert moved.payload["automation"]["rule_id"] == rule.pk


def failing_rule(make_rule, stages, manager, outsider):
    # A manager's rule handing deals to another team's rep: the reassignment is refused.
    return make_rule(
        {"kind": "stage_entered", "stage": stages["demo"].pk},
        [{"kind": "assign_owner", "mode": "user", "user": outsider.pk}, *TASK],
        owner=manager,
        name="Bad",
    )


def test_a_failed_action_is_logged_later_ones_skipped_and_the_owner_told(
    rep, manager, outsider, stages, make_rule, committed
):
    rule = failing_rule(make_rule, stages, manager, outsider)
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    run = RuleRun.objects.get(rule=rule)
    assert run.status == "failed"
    assert [o["outcome"] for o in run.outcomes] == ["failed", "skipped"]
    assert "teams you manage" in run.outcomes[0]["detail"]
    assert Notification.objects.filter(user=manager, kind="automation_failed").count() == 1
    assert not Activity.objects.exists()


def test_a_rule_failing_repeatedly_pauses_itself_and_says_why(
    rep, manager, outsider, stages, make_rule, committed
):
    rule = failing_rule(make_rule, stages, manager, outsider)
    for _ in range(automations.AUTOPAUSE_AFTER + 1):
        deal = DealFactory(owner=rep, stage=stages["qualified"])
        with committed():
            services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    rule.refresh_from_db()
    assert not rule.is_active
    assert "3 failed runs in a row" in rule.paused_reason
    assert RuleRun.objects.filter(rule=rule).count() == automations.AUTOPAUSE_AFTER
    assert Notification.objects.filter(user=manager, kind="automation_paused").count() == 1


def test_a_success_clears_the_failure_streak(rep, stages, make_rule, committed):
    rule = make_rule({"kind": "stage_entered", "stage": stages["demo"].pk}, TASK)
    Rule.objects.filter(pk=rule.pk).update(failure_streak=2)
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    rule.refresh_from_db()
    assert rule.failure_streak == 0


def test_a_run_for_a_deleted_deal_is_skipped(rep, stages, make_rule):
    rule = make_rule({"kind": "deal_created"}, TASK)
    run = RuleRun.objects.create(rule=rule, deal_id=987654)
    assert automations.execute_run(run.pk) == "skipped"
    run.refresh_from_db()
    assert "deleted" in run.reason


def test_a_rule_naming_a_removed_field_skips_with_a_clear_entry(rep, stages, make_rule):
    rule = make_rule(
        {"kind": "deal_created"}, [{"kind": "update_field", "field": "budget", "value": "1"}]
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    run = RuleRun.objects.create(rule=rule, deal_id=deal.pk)
    assert automations.execute_run(run.pk) == "skipped"
    run.refresh_from_db()
    assert "unknown field “budget”" in run.reason
