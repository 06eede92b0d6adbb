"""What each action kind does to a deal, through the deals' own actions.

Every action acts as the rule's owner with source "automation", so the permission
matrix, the gate and the history apply as to a person: a manager's rule cannot touch
another team's deal, a move to a stage whose criteria fail is recorded as blocked and
never forced. Each kind is one function that works out its targets and then either does
the work or, in a dry run (`dry=True`), says what it would do and writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import Q
from django.utils import timezone

from accounts import policy
from accounts.models import Team, User
from common import formats, outbox
from deals import activities, services
from deals.models import Deal, EventSource, MoveSource, Notification
from stages import gate
from stages.models import Stage
from webhooks import services as webhooks

if TYPE_CHECKING:
    from automations.models import Rule, RuleRun

SOURCE = MoveSource.AUTOMATION
EMAIL_TASK = "automations.email_notices"
NOTICE_KIND = "automation"
DUE_HOUR = time(9, 0)


class Skip(Exception):
    """The action cannot apply (a stage archived, a user deactivated): logged, not failed."""


@dataclass
class Outcome:
    kind: str
    outcome: str  # done, skipped, blocked, failed; a dry run's "would"
    detail: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    rule: Rule
    run: RuleRun | None
    deal: Deal
    dry: bool
    now: datetime

    @property
    def by(self) -> User:
        return self.rule.owner

    def fresh(self) -> Deal:
        """The deal as it is now (an earlier action may have changed its version)."""
        return Deal.objects.select_related("stage", "owner__team").get(pk=self.deal.pk)

    def signed(self, text: str) -> str:
        return f"{text}\n\nCreated by automation “{self.rule.name}”."


def business_days_after(start: date, days: int) -> date:
    """`days` working days (Monday to Friday) after `start`; 0 is `start` itself, or the
    next working day when `start` falls on a weekend."""
    day = start
    while day.weekday() >= 5:
        day += timedelta(days=1)
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


def _active_user(user_id: int, what: str) -> User:
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise Skip(f"{what} no longer exists.")
    if not user.is_active:
        raise Skip(f"{what} {user.display_name} is deactivated.")
    return user


def _team_manager(deal: Deal) -> User:
    team = deal.owner.team
    if team is None or team.manager_id is None:
        raise Skip(f"{deal.owner.display_name} has no team manager.")
    return _active_user(team.manager_id, "The team manager")


def create_activity(ctx: Context, action: dict[str, Any]) -> str:
    deal = ctx.fresh()
    if action["assignee"] == "owner":
        assignee = deal.owner
    elif action["assignee"] == "team_manager":
        assignee = _team_manager(deal)
    else:
        assignee = _active_user(action["user"], "The assignee")
    due_day = business_days_after(timezone.localdate(ctx.now), action["due_days"])
    due_at = timezone.make_aware(datetime.combine(due_day, DUE_HOUR))
    what = (
        f"{action['type']} “{action['subject']}” for {assignee.display_name}, "
        f"due {formats.day(due_day)}"
    )
    if ctx.dry:
        return f"Would create {what}."
    activities.log_activity(
        deal,
        by=ctx.by,
        type=action["type"],
        subject=action["subject"],
        note=ctx.signed(action.get("note", "")).strip(),
        due_at=due_at,
        owner=assignee,
        source=SOURCE,
    )
    return f"Created {what}."


def notify(ctx: Context, action: dict[str, Any]) -> str:
    deal = ctx.fresh()
    wanted = Q(pk__in=action["users"])
    if "owner" in action["roles"]:
        wanted |= Q(pk=deal.owner_id)
    if "team_manager" in action["roles"] and deal.owner.team is not None:
        wanted |= Q(pk=deal.owner.team.manager_id)
    if "admins" in action["roles"]:
        wanted |= policy.admin_users()
    users = list(User.objects.filter(wanted, is_active=True).order_by("pk"))
    if not users:
        raise Skip("Nobody to notify: every recipient is gone or deactivated.")
    names = ", ".join(u.display_name for u in users)
    text = f"Automation “{ctx.rule.name}”: {action['text'].replace('{deal}', deal.title)}"
    if ctx.dry:
        return f"Would notify {names}{' (and e-mail them)' if action['email'] else ''}."
    notices = Notification.objects.bulk_create(
        Notification(user=user, deal=deal, kind=NOTICE_KIND, text=text[:300]) for user in users
    )
    if action["email"]:
        outbox.enqueue(EMAIL_TASK, notification_ids=[n.pk for n in notices])
    return f"Notified {names}{' by e-mail too' if action['email'] else ''}."


def assign_owner(ctx: Context, action: dict[str, Any]) -> str:
    deal = ctx.fresh()
    round_robin = action["mode"] == "round_robin"
    if round_robin:
        new_owner = _next_in_team(ctx, action["team"])
    else:
        new_owner = _active_user(action["user"], "The new owner")
    if new_owner.pk == deal.owner_id and not round_robin:
        raise Skip(f"{new_owner.display_name} already owns the deal.")
    if ctx.dry:
        return f"Would assign the deal to {new_owner.display_name}."
    if round_robin:
        # The turn is taken even when it falls to the deal's owner: the deal stays put.
        type(ctx.rule).objects.filter(pk=ctx.rule.pk).update(last_assignee=new_owner)
        ctx.rule.last_assignee = new_owner
    if new_owner.pk == deal.owner_id:
        return f"Kept the deal with {new_owner.display_name}, whose turn it was."
    services.reassign_deal(
        deal, new_owner=new_owner, by=ctx.by, expected_version=deal.version, source=SOURCE
    )
    return f"Assigned the deal to {new_owner.display_name}."


def _next_in_team(ctx: Context, team_id: int) -> User:
    """The active member after the one who got the last deal (by id, wrapping round);
    deactivated members are passed over. The rule row is locked by the run, so two runs
    never hand out the same turn."""
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        raise Skip("The round-robin team no longer exists.")
    members = list(User.objects.filter(team=team, is_active=True).order_by("pk"))
    if not members:
        raise Skip(f"Team {team.name} has no active member.")
    last = ctx.rule.last_assignee_id or 0
    return next((m for m in members if m.pk > last), members[0])


def update_field(ctx: Context, action: dict[str, Any]) -> str:
    deal = ctx.fresh()
    name, raw = action["field"], action["value"]
    value: Any = raw
    if name == "amount":
        value = Decimal(raw)
    elif name == "probability_override":
        value = int(raw)
    elif name == "expected_close_date":
        today = timezone.localdate(ctx.now)
        value = (
            today + timedelta(days=int(raw[1:]))
            if raw.startswith("+")
            else date.fromisoformat(raw)
        )
    if getattr(deal, name) == value:
        raise Skip(f"{name.replace('_', ' ')} is already {value}.")
    if ctx.dry:
        return f"Would set {name.replace('_', ' ')} to {value}."
    services.update_deal(
        deal, {name: value}, by=ctx.by, expected_version=deal.version, source=SOURCE
    )
    return f"Set {name.replace('_', ' ')} to {value}."


class Blocked(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def move_stage(ctx: Context, action: dict[str, Any]) -> str:
    deal = ctx.fresh()
    stage = Stage.objects.filter(pk=action["stage"]).first()
    if stage is None:
        raise Skip("The target stage no longer exists.")
    if stage.is_archived:
        raise Skip(f"Stage {stage.name} is archived.")
    if stage.pk == deal.stage_id:
        raise Skip(f"The deal is already in {stage.name}.")
    if ctx.dry:
        failures = gate.evaluate(deal, stage)
        if failures:
            missing = "; ".join(f.message for f in failures)
            return f"Would be blocked from {stage.name}: {missing}."
        return f"Would move the deal to {stage.name}."
    try:
        services.move_deal(deal, stage, by=ctx.by, expected_version=deal.version, source=SOURCE)
    except services.GateBlocked as blocked:
        missing = "; ".join(f.message for f in blocked.failures)
        raise Blocked(f"Blocked from {stage.name}: {missing}.") from None
    return f"Moved the deal to {stage.name}."


def send_webhook(ctx: Context, action: dict[str, Any]) -> str:
    endpoint = webhooks.endpoints_for(ctx.by).filter(pk=action["endpoint"]).first()
    if endpoint is None:
        raise Skip("The webhook endpoint no longer exists.")
    if not endpoint.is_active:
        raise Skip(f"The webhook {endpoint.url} is disabled.")
    if ctx.dry:
        return f"Would send a webhook to {endpoint.url}."
    run_id = ctx.run.pk if ctx.run is not None else 0
    webhooks.send_one(
        endpoint,
        message_id=f"automation_{run_id}_{ctx.deal.pk}_{endpoint.pk}",
        name="automation.fired",
        deal_id=ctx.deal.pk,
        data={
            "rule_id": ctx.rule.pk,
            "rule": ctx.rule.name,
            "run_id": run_id,
            "deal_id": ctx.deal.pk,
            "source": EventSource.AUTOMATION,
        },
    )
    return f"Queued a webhook to {endpoint.url}."


KINDS = {
    "create_activity": create_activity,
    "notify": notify,
    "assign_owner": assign_owner,
    "update_field": update_field,
    "move_stage": move_stage,
    "send_webhook": send_webhook,
}
