"""Each action kind, run by a rule as its owner with source "automation"."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Role
from automations.actions import business_days_after
from automations.models import RuleRun
from deals import services
from deals.models import Activity, Deal, Event, GateEvent, Notification, StageChange
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory, UserFactory
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def fire(rep, stages, committed):
    """Create a deal in Lead in and move it to Qualified: the rules' trigger."""

    def move(**fields):
        deal = DealFactory(owner=rep, stage=stages["lead"], **fields)
        with committed():
            services.move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
        deal.refresh_from_db()
        return deal

    return move


@pytest.fixture
def on_qualified(stages, make_rule):
    return lambda actions, **kw: make_rule(
        {"kind": "stage_entered", "stage": stages["qualified"].pk}, actions, **kw
    )


def outcomes(rule):
    return [o["outcome"] for o in RuleRun.objects.get(rule=rule).outcomes]


def test_business_days_skip_weekends():
    friday = date(2026, 12, 4)
    assert business_days_after(friday, 1) == date(2026, 12, 7)
    assert business_days_after(date(2026, 12, 5), 0) == date(2026, 12, 7)


@pytest.mark.parametrize("assignee", ["owner", "team_manager", "user"])
def test_create_activity_for_each_assignee(rep, manager, admin_user, on_qualified, fire, assignee):
    rule = on_qualified(
        [
            {
                "kind": "create_activity",
                "type": "call",
                "subject": "Call",
                "due_days": 2,
                "assignee": assignee,
                "user": admin_user.pk,
                "note": "",
            }
        ]
    )
    deal = fire()
    activity = Activity.objects.get(deal=deal)
    expected = {"owner": rep, "team_manager": manager, "user": admin_user}[assignee]
    assert activity.owner == expected
    assert timezone.localdate(activity.due_at) == business_days_after(timezone.localdate(), 2)
    assert activity.subject == "Call" and rule.name in activity.note
    event = Event.objects.get(name="activity.created")
    assert event.source == "automation" and event.actor == rule.owner


def test_notify_in_app_and_by_email(rep, manager, on_qualified, fire):
    rule = on_qualified(
        [
            {
                "kind": "notify",
                "roles": ["owner", "team_manager"],
                "users": [],
                "text": "Look at {deal}",
                "email": True,
            }
        ]
    )
    deal = fire()
    notices = Notification.objects.filter(kind="automation").order_by("user_id")
    assert {n.user for n in notices} == {rep, manager}
    assert all(n.text == f"Automation “{rule.name}”: Look at {deal.title}" for n in notices)
    assert sorted(m.to[0] for m in mail.outbox) == sorted([rep.email, manager.email])
    assert all(n.emailed_at for n in notices.all())


def test_assign_a_named_owner(rep, teammate, on_qualified, fire, manager):
    on_qualified([{"kind": "assign_owner", "mode": "user", "user": teammate.pk}], owner=manager)
    deal = fire()
    assert deal.owner == teammate
    assert Event.objects.get(name="deal.reassigned").source == "automation"


def test_round_robin_skips_deactivated_members(rep, stages, team, make_rule, committed, manager):
    a = UserFactory(team=team, username="a_member")
    gone = UserFactory(team=team, username="gone", is_active=False)
    make_rule(
        {"kind": "deal_created"},
        [{"kind": "assign_owner", "mode": "round_robin", "team": team.pk}],
    )
    owners = []
    for n in range(4):
        with committed():
            deal = services.create_deal(
                by=manager, owner=manager, title=f"D{n}", stage=stages["lead"]
            )
        owners.append(Deal.objects.get(pk=deal.pk).owner)
    members = sorted([manager, rep, a], key=lambda u: u.pk)
    assert gone.pk > a.pk  # the deactivated member would have had the fourth turn
    assert owners == [*members, members[0]]


def test_update_a_field(on_qualified, fire):
    on_qualified([{"kind": "update_field", "field": "expected_close_date", "value": "+10"}])
    deal = fire()
    assert deal.expected_close_date == timezone.localdate() + timedelta(days=10)
    assert Event.objects.get(name="deal.updated").source == "automation"


def test_move_goes_through_the_gate_and_is_recorded_as_blocked(stages, on_qualified, fire):
    CriterionFactory(
        stage=stages["demo"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )
    rule = on_qualified([{"kind": "move_stage", "stage": stages["demo"].pk}])
    deal = fire(next_step="")
    assert deal.stage == stages["qualified"]  # never forced
    run = RuleRun.objects.get(rule=rule)
    assert (
        run.outcomes[0]["outcome"] == "blocked"
        and "next step" in run.outcomes[0]["detail"].lower()
    )
    assert GateEvent.objects.filter(deal=deal, outcome="blocked", source="automation").exists()


def test_move_through_an_open_gate_is_history_with_source_automation(stages, on_qualified, fire):
    rule = on_qualified([{"kind": "move_stage", "stage": stages["demo"].pk}])
    deal = fire()
    change = StageChange.objects.filter(deal=deal).order_by("-seq").first()
    assert (deal.stage, change.source, change.by) == (stages["demo"], "automation", rule.owner)


def test_send_a_signed_webhook(admin_user, on_qualified, fire, monkeypatch):
    from webhooks import http

    sent = []
    monkeypatch.setattr(
        http,
        "post",
        lambda url, body, headers: (
            sent.append(headers) or http.Outcome(status_code=200, duration_ms=1, excerpt="")
        ),
    )
    endpoint = Endpoint.objects.create(
        owner=admin_user,
        url="https://example.com/hook",
        events=["deal.*"],
        secret="whsec_" + "A" * 44,
    )
    rule = on_qualified([{"kind": "send_webhook", "endpoint": endpoint.pk}])
    fire()
    delivery = Delivery.objects.get(endpoint=endpoint, event_name="automation.fired")
    assert delivery.data["rule_id"] == rule.pk and delivery.status == "succeeded"
    assert sent and sent[0]["webhook-signature"].startswith("v1,")


def test_an_archived_target_stage_is_skipped_with_a_clear_entry(stages, on_qualified, fire):
    rule = on_qualified([{"kind": "move_stage", "stage": stages["demo"].pk}])
    stages["demo"].is_archived = True
    stages["demo"].save()
    fire()
    run = RuleRun.objects.get(rule=rule)
    assert run.outcomes[0]["outcome"] == "skipped" and "archived" in run.outcomes[0]["detail"]


def test_a_deactivated_assignee_is_skipped(teammate, on_qualified, fire):
    rule = on_qualified([{"kind": "assign_owner", "mode": "user", "user": teammate.pk}])
    teammate.is_active = False
    teammate.save()
    fire()
    assert outcomes(rule) == ["skipped"]


def test_conditions_not_met_run_nothing(on_qualified, fire):
    rule = on_qualified(
        [{"kind": "update_field", "field": "next_step", "value": "x"}],
        conditions={"match": "all", "items": [{"kind": "amount", "op": "gt", "value": "999999"}]},
    )
    deal = fire()
    run = RuleRun.objects.get(rule=rule)
    assert (run.status, run.conditions[0]["passed"], deal.next_step) == ("skipped", False, "")


def test_admins_role_is_notified(admin_user, on_qualified, fire):
    other_admin = UserFactory(role=Role.ADMIN)
    on_qualified(
        [{"kind": "notify", "roles": ["admins"], "users": [], "text": "x", "email": False}]
    )
    fire()
    assert set(Notification.objects.values_list("user", flat=True)) == {
        admin_user.pk,
        other_admin.pk,
    }


def test_amounts_are_updated_as_decimals(on_qualified, fire):
    on_qualified([{"kind": "update_field", "field": "amount", "value": "12.50"}])
    assert fire().amount == Decimal("12.50")
