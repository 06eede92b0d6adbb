"""Automation rules: who may keep them, saving them, and running them exactly once.

Rules:
- admins keep rules for any pipeline, managers for their teams' deals (a rule acts as
  its owner, so it never reaches further than its owner may); reps keep none;
- each (event, rule) and each (deal, time-based rule, due date) runs once: the run row
  is unique for it, and its actions commit in the transaction that completes it;
- a rule's actions may trigger other rules, MAX_DEPTH runs deep at most, and a rule
  never runs again on the same deal within one chain;
- a run whose action failed tells the rule's owner; AUTOPAUSE_AFTER failed runs in a
  row pause the rule, with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts import policy
from automations import actions, conditions, labels, spec
from automations.models import Rule, RuleRun, RunStatus
from common import formats, outbox
from common.errors import BadInput, NotAllowed, NotVisible
from deals import events
from deals.models import Activity, Deal, Event, Notification
from stages.models import Pipeline, Stage
from webhooks import services as webhooks

if TYPE_CHECKING:
    from accounts.models import User

log = logging.getLogger(__name__)

EXECUTE_TASK = "automations.execute"
MAX_DEPTH = 3
AUTOPAUSE_AFTER = 3
MAX_RULES_PER_USER = 100
BATCH = 200


# --- who may keep rules --------------------------------------------------------------------


def may_manage(user: User) -> bool:
    return policy.can_manage_automations(user)


def rules_for(user: User) -> QuerySet[Rule]:
    """Rules `user` may see and change (the policy: admins all, managers their own)."""
    return policy.automation_rules(user, Rule.objects.all())


def rule_for(rule_id: int, user: User, *, lock: bool = False) -> Rule:
    if not may_manage(user):
        raise NotVisible("Automation not found.")
    rules = rules_for(user).select_related("owner", "pipeline")
    if lock:
        rules = rules.select_for_update(of=("self",), no_key=True)
    rule = rules.filter(pk=rule_id).first()
    if rule is None:
        raise NotVisible("Automation not found.")
    return rule


# --- saving --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    name: str
    trigger: Any
    conditions: Any
    actions: Any
    pipeline_id: int | None = None
    is_active: bool = True


def save_rule(data: RuleInput, *, by: User, rule_id: int | None = None, recipe: str = "") -> Rule:
    """Create a rule (owned by `by`) or change one `by` may change.

    Refused with a message, changing nothing: a malformed or oversized part
    (`spec.clean`), a record it names that is gone, archived or out of the owner's reach,
    or a loop with other active rules that can be seen from their triggers and actions.
    """
    if not may_manage(by):
        raise NotAllowed("Only managers and admins can keep automations.")
    name = data.name.strip()
    if not name:
        raise BadInput("Name: a rule needs a name.")
    if len(name) > 100:
        raise BadInput(f"Name: too long ({len(name)} characters, at most 100).")
    trigger, conds, acts, refs = spec.clean(data.trigger, data.conditions, data.actions)
    with transaction.atomic():
        rule = rule_for(rule_id, by, lock=True) if rule_id else Rule(owner=by, recipe=recipe)
        if rule_id is None and Rule.objects.filter(owner=by).count() >= MAX_RULES_PER_USER:
            raise BadInput(f"At most {MAX_RULES_PER_USER} automations each; delete one first.")
        pipeline = _pipeline(data.pipeline_id)
        _check_references(refs, owner=rule.owner, conds=conds, acts=acts)
        if data.is_active:
            _refuse_loops(rule, name, trigger, acts)
        rule.name, rule.pipeline = name, pipeline
        rule.trigger, rule.conditions, rule.actions = trigger, conds, acts
        rule.is_active = data.is_active
        if data.is_active:
            rule.paused_reason, rule.failure_streak = "", 0
        rule.save()
    return rule


def _pipeline(pipeline_id: int | None) -> Pipeline | None:
    if not pipeline_id:
        return None
    pipeline = Pipeline.objects.filter(pk=pipeline_id, is_archived=False).first()
    if pipeline is None:
        raise BadInput("Pipeline: choose an existing pipeline.")
    return pipeline


def _check_references(
    refs: spec.References, *, owner: User, conds: dict[str, Any], acts: list[dict]
) -> None:
    names = labels.Names.load(refs)
    problems = names.problems(refs)
    if problems:
        raise BadInput(f"This rule refers to what is gone: {'; '.join(problems)}.")
    if policy.acts_on_every_team(owner):
        users = teams = None
    else:
        teams = set(owner.managed_teams.values_list("pk", flat=True))
        users = {u.pk for u in names.users.values() if u.team_id in teams} | {owner.pk}
    endpoints = set(
        webhooks.endpoints_for(owner).filter(pk__in=refs.endpoints).values_list("pk", flat=True)
    )
    if (
        (users is not None and refs.users - users)
        or (teams is not None and refs.teams - teams)
        or refs.endpoints - endpoints
    ):
        raise _out_of_reach(conds, acts, users=users, teams=teams, endpoints=endpoints)


# Where an id out of the owner's reach can sit: (part, kind, key) -> (which ids, message).
_REACH = {
    ("Condition", "owner", "ids"): ("users", "Owner: choose people of the teams you manage."),
    ("Condition", "team", "ids"): ("teams", "Owner's team: choose teams you manage."),
    ("Action", "create_activity", "user"): (
        "users",
        "Named user: choose someone of the teams you manage.",
    ),
    ("Action", "notify", "users"): ("users", "Users: choose people of the teams you manage."),
    ("Action", "assign_owner", "user"): (
        "users",
        "Named user: choose someone of the teams you manage.",
    ),
    ("Action", "assign_owner", "team"): (
        "teams",
        "Round-robin: choose one of the teams you manage.",
    ),
    ("Action", "send_webhook", "endpoint"): (
        "endpoints",
        "Webhook endpoint: choose one of your webhook endpoints.",
    ),
}


def _out_of_reach(
    conds: dict[str, Any], acts: list[dict], **allowed: set[int] | None
) -> spec.SpecError:
    """The refusal for the first id out of the owner's reach, naming its row and field
    (so the editor shows it beside that field)."""
    rows = [("Condition", n, c) for n, c in enumerate(conds.get("items", []), 1)]
    rows += [("Action", n, a) for n, a in enumerate(acts, 1)]
    for part, n, item in rows:
        for (where, kind, key), (which, message) in _REACH.items():
            if (where, kind) != (part, item["kind"]) or item.get(key) is None:
                continue
            ids = item[key] if isinstance(item[key], list) else [item[key]]
            permitted = allowed[which]
            if permitted is not None and set(ids) - permitted:
                return spec.SpecError(f"{part} {n}: {message}", where=f"{part} {n}", key=key)
    return spec.SpecError("This rule names what is out of its owner's reach.")


def _refuse_loops(rule: Rule, name: str, trigger: dict[str, Any], acts: list[dict]) -> None:
    """Refuse a rule that would start itself through other active rules (or alone)."""
    others = list(Rule.objects.filter(is_active=True).exclude(pk=rule.pk))
    stage_ids = {
        a["stage"]
        for r in [*others, None]
        for a in (r.actions if r else acts)
        if a["kind"] == "move_stage"
    }
    kinds = dict(Stage.objects.filter(pk__in=stage_ids).values_list("pk", "kind"))
    loop = spec.find_loop(
        (name, spec.listens_to(trigger), spec.causes(acts, kinds)),
        [(o.name, spec.listens_to(o.trigger), spec.causes(o.actions, kinds)) for o in others],
    )
    if loop:
        around = " → ".join([*loop, loop[0]])
        raise BadInput(f"These rules would start each other in a loop: {around}.")


def set_active(rule_id: int, *, by: User, active: bool) -> Rule:
    """Pause or resume a rule; resuming clears its failure streak (and is loop-checked)."""
    with transaction.atomic():
        rule = rule_for(rule_id, by, lock=True)
        if active and not rule.is_active:
            _refuse_loops(rule, rule.name, rule.trigger, rule.actions)
            rule.paused_reason, rule.failure_streak = "", 0
        elif not active and rule.is_active:
            rule.paused_reason = f"Paused by {by.display_name}."
        rule.is_active = active
        rule.save(update_fields=["is_active", "paused_reason", "failure_streak", "updated_at"])
    return rule


def delete_rule(rule_id: int, *, by: User) -> None:
    """Delete a rule and its run log."""
    with transaction.atomic():
        rule_for(rule_id, by, lock=True).delete()


# --- from events to runs -------------------------------------------------------------------

TRIGGER_EVENTS = {
    "deal_created": {"deal.created"},
    "stage_entered": {"deal.moved", "deal.created"},
    "stage_left": {"deal.moved"},
    "deal_won": {"deal.won"},
    "deal_lost": {"deal.lost"},
    "deal_stalled": {"deal.stalled"},
    "field_changed": {"deal.updated", "deal.reassigned"},
}


def triggered_by(trigger: dict[str, Any], name: str, payload: dict[str, Any]) -> bool:
    """Whether an event (`name`, `payload`) starts a rule with this trigger."""
    kind = trigger.get("kind", "")
    if name not in TRIGGER_EVENTS.get(kind, ()):
        return False
    if kind == "stage_entered":
        if name == "deal.created":
            return not trigger.get("from_stage") and payload.get("stage_id") == trigger["stage"]
        came_from = trigger.get("from_stage")
        return payload.get("to_stage_id") == trigger["stage"] and (
            not came_from or payload.get("from_stage_id") == came_from
        )
    if kind == "stage_left":
        return payload.get("from_stage_id") == trigger["stage"]
    if kind == "deal_stalled" and trigger.get("stalled_rule"):
        fired = payload.get("rules") or [payload.get("rule")]
        return trigger["stalled_rule"] in fired
    if kind == "field_changed":
        if trigger["field"] == "owner":
            return name == "deal.reassigned" or "owner" in payload.get("fields", [])
        return name == "deal.updated" and trigger["field"] in payload.get("fields", [])
    return True


def _in_reach(rules: list[Rule], deal_ids: set[int]) -> dict[int, set[int]]:
    """For each rule, the deals of `deal_ids` it may act on (its pipeline, its owner's
    editable deals): one query per distinct owner, whatever the number of events."""
    reach: dict[int, set[int]] = {}
    by_owner: dict[int, set[int]] = {}
    pipelines = dict(Deal.objects.filter(pk__in=deal_ids).values_list("pk", "pipeline_id"))
    for rule in rules:
        if rule.owner_id not in by_owner:
            by_owner[rule.owner_id] = set(
                policy.changeable_deals(rule.owner)
                .filter(pk__in=deal_ids)
                .values_list("pk", flat=True)
            )
        reach[rule.pk] = {
            pk
            for pk in by_owner[rule.owner_id]
            if rule.pipeline_id is None or pipelines.get(pk) == rule.pipeline_id
        }
    return reach


def runs_for_events(batch: list[Event]) -> list[int]:
    """Write a pending run per (event, active rule it triggers, deal in the rule's reach),
    in the consumer's transaction, and hand them to a worker after commit.

    Import events count only when the importer asked for automations. A run that a chain
    would make too deep, or that would re-run a rule already in the chain on the deal, is
    written as skipped, saying so, and runs nothing.
    """
    wanted = [e for e in batch if e.deal_id and _counts(e)]
    if not wanted:
        return []
    rules = [
        r
        for r in Rule.objects.filter(is_active=True).select_related("owner")
        if r.trigger.get("kind") not in spec.TIME_BASED and r.owner.is_active
    ]
    matches = [(e, r) for e in wanted for r in rules if triggered_by(r.trigger, e.name, e.payload)]
    if not matches:
        return []
    reach = _in_reach(
        list({r.pk: r for _, r in matches}.values()), {e.deal_id for e, _ in matches}
    )
    now = timezone.now()
    rows = []
    for event, rule in matches:
        if event.deal_id not in reach[rule.pk]:
            continue
        tag = event.payload.get("automation") or {}
        chain = [int(pk) for pk in tag.get("chain", [])]
        depth = int(tag.get("depth", 0)) + 1
        status, reason = RunStatus.PENDING, ""
        if rule.pk in chain:
            status, reason = (
                RunStatus.SKIPPED,
                "Not run: this rule already ran on this deal in this chain.",
            )
        elif depth > MAX_DEPTH:
            status, reason = RunStatus.SKIPPED, f"Not run: chains stop at depth {MAX_DEPTH}."
        rows.append(
            RuleRun(
                rule=rule,
                deal_id=event.deal_id,
                event_id=event.pk,
                event_name=event.name,
                depth=depth,
                chain=chain,
                status=status,
                reason=reason,
                created_at=now,
                finished_at=None if status == RunStatus.PENDING else now,
            )
        )
    RuleRun.objects.bulk_create(rows, ignore_conflicts=True)
    return _hand_over(
        RuleRun.objects.filter(
            event_id__in=[e.pk for e in wanted], status=RunStatus.PENDING
        ).values_list("pk", flat=True)
    )


def _counts(event: Event) -> bool:
    """Imports fire automations only when the importer asked for them (in the preview)."""
    return event.source != "import" or bool(event.payload.get("automations"))


def _hand_over(run_ids: Any) -> list[int]:
    ids = sorted(run_ids)
    for start in range(0, len(ids), BATCH):
        outbox.enqueue(EXECUTE_TASK, run_ids=ids[start : start + BATCH])
    return ids


# --- running -------------------------------------------------------------------------------


def execute_run(run_id: int, *, now: datetime | None = None) -> str | None:
    """Run a pending run: check the rule and its conditions, do its actions in order,
    record each outcome, all in one transaction, so a worker killed half-way leaves the
    run pending (to run again, whole) and a finished run never runs again.

    An action that fails is rolled back alone and the later ones are skipped; a move the
    gate refuses is recorded as blocked, with what is missing, and the others go on.
    """
    now = now or timezone.now()
    with transaction.atomic():
        run = (
            RuleRun.objects.select_for_update(skip_locked=True)
            .filter(pk=run_id, status=RunStatus.PENDING)
            .first()
        )
        if run is None:
            return None
        # NO KEY UPDATE: new runs of the rule (whose foreign key takes KEY SHARE on it)
        # are written meanwhile; two runs of one rule still take turns (round-robin).
        rule = (
            Rule.objects.select_for_update(no_key=True).select_related("owner").get(pk=run.rule_id)
        )
        deal = Deal.objects.select_related("stage", "owner__team").filter(pk=run.deal_id).first()
        reason = _why_not(rule, deal)
        if reason:
            return _finish(run, RunStatus.SKIPPED, reason, now)
        results = conditions.evaluate(rule.conditions, [deal.pk]).get(deal.pk, [])
        names = labels.Names.load(labels.references(rule))
        run.conditions = [
            {"label": labels.condition(item, names), "passed": passed}
            for item, passed in zip(rule.conditions.get("items", []), results, strict=False)
        ]
        if not conditions.passes(rule.conditions, results):
            return _finish(run, RunStatus.SKIPPED, "Conditions not met.", now)
        ctx = actions.Context(rule=rule, run=run, deal=deal, dry=False, now=now)
        tag = {
            "rule_id": rule.pk,
            "run_id": run.pk,
            "depth": run.depth,
            "chain": [*run.chain, rule.pk],
        }
        with events.tagged(automation=tag):
            run.outcomes = [o.as_json() for o in perform(ctx, rule.actions, names)]
        failed = [o for o in run.outcomes if o["outcome"] == "failed"]
        status = _finish(
            run,
            RunStatus.FAILED if failed else RunStatus.DONE,
            failed[0]["detail"] if failed else "",
            now,
        )
        _count_failure(rule, run, bool(failed))
    return status


def _why_not(rule: Rule, deal: Deal | None) -> str:
    if not rule.is_active:
        return "Not run: the rule is paused."
    if why := labels.unreadable(rule):
        return f"Not run: the rule refers to what no longer exists ({why})"
    if deal is None:
        return "Not run: the deal was deleted."
    if not rule.owner.is_active:
        return f"Not run: the rule's owner {rule.owner.display_name} is deactivated."
    if rule.pipeline_id and deal.pipeline_id != rule.pipeline_id:
        return "Not run: the deal is in another pipeline now."
    if not policy.changeable_deals(rule.owner).filter(pk=deal.pk).exists():
        return "Not run: the deal is out of the rule owner's reach now."
    return ""


def perform(ctx: actions.Context, items: list[dict], names: labels.Names) -> list[actions.Outcome]:
    """Each action in order, each in its own savepoint (a dry run writes nothing)."""
    outcomes = []
    failed = False
    for item in items:
        label = labels.action(item, names)
        if failed:
            outcomes.append(
                actions.Outcome(item["kind"], "skipped", f"{label}: an earlier action failed.")
            )
            continue
        try:
            with transaction.atomic():
                try:
                    detail = actions.KINDS[item["kind"]](ctx, item)
                    outcome = "would" if ctx.dry else "done"
                except actions.Blocked as blocked:
                    # Caught inside the savepoint: the gate's record of the refusal stays.
                    outcome, detail = "blocked", blocked.detail
        except actions.Skip as skip:
            outcome, detail = "skipped", f"{label}: {skip}"
        except Exception as error:
            log.warning("automation %s action %s failed", ctx.rule.pk, item["kind"], exc_info=True)
            outcome, detail = "failed", f"{label}: {getattr(error, 'message', None) or error}"
            failed = True
        outcomes.append(actions.Outcome(item["kind"], outcome, str(detail)[:500]))
    return outcomes


def _finish(run: RuleRun, status: str, reason: str, now: datetime) -> str:
    run.status, run.reason, run.finished_at = status, reason[:300], now
    run.save(update_fields=["status", "reason", "conditions", "outcomes", "finished_at"])
    return status


def _count_failure(rule: Rule, run: RuleRun, failed: bool) -> None:
    """A success clears the streak; a failure tells the owner (once a day per rule) and,
    the AUTOPAUSE_AFTER-th in a row, pauses the rule saying why."""
    if not failed:
        if rule.failure_streak:
            Rule.objects.filter(pk=rule.pk).update(failure_streak=0)
        return
    rule.failure_streak += 1
    today = timezone.localdate()
    notices = [
        Notification(
            user=rule.owner,
            deal_id=run.deal_id,
            kind="automation_failed",
            text=f"Automation “{rule.name}” failed: {run.reason}"[:300],
            dedupe_key=f"automation_failed:{rule.pk}:{today}",
        )
    ]
    if rule.failure_streak >= AUTOPAUSE_AFTER:
        rule.is_active = False
        rule.paused_reason = (
            f"Paused itself after {rule.failure_streak} failed runs in a row; last: {run.reason}"
        )[:300]
        notices.append(
            Notification(
                user=rule.owner,
                kind="automation_paused",
                text=f"Automation “{rule.name}” paused itself: {rule.failure_streak} "
                f"failed runs in a row."[:300],
                dedupe_key=f"automation_paused:{rule.pk}:{run.pk}",
            )
        )
    rule.save(update_fields=["failure_streak", "is_active", "paused_reason"])
    Notification.objects.bulk_create(notices, ignore_conflicts=True)


# --- time-based triggers -------------------------------------------------------------------

CATCH_UP_DAYS = 7  # a scan missed (beat down) for less than this still fires


def _due_days(
    rule: Rule, today: Any, days: int = CATCH_UP_DAYS, *, since_created: bool = True
) -> list[Any]:
    """Due dates the dry run looks at: the last `days` days, never before the rule existed
    (a new rule does not fire for every deal whose date passed long ago)."""
    first = today - timedelta(days=days)
    if since_created:
        first = max(first, timezone.localdate(rule.created_at))
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]


# Rows written this long before a pass's mark are read again by the next pass: a write
# stamped before the mark but committed after it (a slow transaction) is still seen.
CHANGE_MARGIN = timedelta(minutes=5)


def _scan_window(rule: Rule, now: datetime) -> tuple[datetime, datetime]:
    """(floor, since) of a scan of `rule`. The floor: CATCH_UP_DAYS back, never before
    the day the rule was made (a new rule does not fire for every deal whose date passed
    long ago). Since: the rule's last scan within that window, else the floor. What fell
    due in [since, now] is read by due time; what fell due in [floor, since) only on deals
    written since the last scan (a date set in the past after its pass)."""
    floor = max(
        _day_start(timezone.localdate(now) - timedelta(days=CATCH_UP_DAYS)),
        _day_start(timezone.localdate(rule.created_at)),
    )
    if rule.scanned_at and floor < rule.scanned_at <= now:
        return floor, rule.scanned_at
    return floor, floor


def _reach(
    rule: Rule,
    open_stage_ids: list[int] | None = None,
    changed_from: datetime | None = None,
) -> QuerySet[Deal]:
    """Open deals of the rule's reach that meet its conditions. With the open stages'
    ids given, the stage is filtered by id, so PostgreSQL reads the (stage, pipeline,
    entered) index per stage instead of joining every deal to its stage. With
    `changed_from`, only deals written since (their activities too: every activity
    write stamps its deal)."""
    deals = policy.changeable_deals(rule.owner).filter(conditions.rule_q(rule.conditions))
    deals = deals.filter(stage_id__in=open_stage_ids) if open_stage_ids else deals.open()
    if rule.pipeline_id:
        deals = deals.filter(pipeline_id=rule.pipeline_id)
    if changed_from is not None:
        deals = deals.filter(updated_at__gte=changed_from)
    return deals


def _overdue(rule: Rule, start: datetime, end: datetime, **reach: Any) -> QuerySet[Activity]:
    """Open activities due in [start, end) on deals of the rule's reach."""
    return Activity.objects.filter(
        done=False, due_at__gte=start, due_at__lt=end, deal__in=_reach(rule, **reach).values("pk")
    )


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def due_deals(rule: Rule, day: Any, *, now: datetime, **reach: Any) -> QuerySet[Deal]:
    """Deals of the rule's reach due on `day` for its time-based trigger; one query,
    whatever the number of deals."""
    trigger = rule.trigger
    if trigger["kind"] == "activity_overdue":
        start = _day_start(day)
        activities = _overdue(rule, start, min(start + timedelta(days=1), now), **reach)
        return Deal.objects.filter(pk__in=activities.values("deal_id"))
    deals = _reach(rule, **reach)
    if trigger["kind"] == "close_date":
        return deals.filter(expected_close_date=day - timedelta(days=trigger["days"]))
    start = _day_start(day - timedelta(days=trigger["days"]))
    return deals.filter(
        stage_entered_at__gte=start,
        stage_entered_at__lt=min(start + timedelta(days=1), now - timedelta(days=trigger["days"])),
    )


def scan_time_based(*, now: datetime | None = None) -> int:
    """Write a pending run for each (deal, time-based rule, due date) not written yet,
    set-based, and hand them to workers: one INSERT … SELECT per rule and due day since
    the rule's last scan (an index lookup each: close date, or stage and entry time), or
    one per rule for activities that fell due since (due date: the activity's day). What
    fell due before the last pass (back to CATCH_UP_DAYS) is read again only on deals
    written since it (`Deal.updated_at`, indexed; every activity write stamps its deal):
    an activity logged overdue, a close date edited into the past, an imported stage
    entry. So a pass every few minutes reads minutes' worth of due points and of writes
    at any size. Safe to run twice and concurrently: the run's unique (rule, deal, due
    date) keeps one."""
    from django.db.models import F as Col
    from django.db.models import JSONField, Value
    from django.db.models.functions import TruncDate

    from common.sql import insert_select
    from stages.models import Stage

    now = now or timezone.now()
    today = timezone.localdate(now)
    opened = list(Stage.objects.open().values_list("pk", flat=True))
    created = 0

    def insert(source: QuerySet[Any], deal: Any, due_on: Any) -> int:
        return insert_select(
            RuleRun,
            source,
            {
                "rule": Value(rule.pk),
                "deal_id": deal,
                "event_name": Value(""),
                "due_on": due_on,
                "depth": Value(1),
                "chain": Value([], output_field=JSONField()),
                "status": Value(RunStatus.PENDING),
                "reason": Value(""),
                "conditions": Value([], output_field=JSONField()),
                "outcomes": Value([], output_field=JSONField()),
                "created_at": Value(now),
            },
            ignore_conflicts=True,
        )

    rules = [
        rule
        for rule in Rule.objects.filter(is_active=True, owner__is_active=True).select_related(
            "owner"
        )
        if rule.trigger.get("kind") in spec.TIME_BASED
    ]
    windows = {rule.pk: _scan_window(rule, now) for rule in rules}
    # Deals written since the earliest mark (index range read): none, and no rule reads
    # behind its mark this pass.
    behind = [since for floor, since in windows.values() if since > floor]
    changed = (
        bool(behind) and Deal.objects.filter(updated_at__gte=min(behind) - CHANGE_MARGIN).exists()
    )
    for rule in rules:
        kind = rule.trigger["kind"]
        floor, since = windows[rule.pk]
        changed_from = since - CHANGE_MARGIN
        if kind == "activity_overdue":
            parts = [_overdue(rule, since, now, open_stage_ids=opened)]
            if changed and since > floor:
                parts.append(
                    _overdue(rule, floor, since, open_stage_ids=opened, changed_from=changed_from)
                )
            for activities in parts:
                created += insert(activities, Col("deal_id"), TruncDate("due_at"))
            continue
        first, start = timezone.localdate(since), timezone.localdate(floor)
        for day in (start + timedelta(days=n) for n in range((today - start).days + 1)):
            if day >= first:
                source = due_deals(rule, day, now=now, open_stage_ids=opened)
            elif changed:
                source = due_deals(
                    rule, day, now=now, open_stage_ids=opened, changed_from=changed_from
                )
            else:
                continue
            created += insert(source, Col("pk"), Value(day))
    scanned = [rule.pk for rule in rules]
    # After the runs are written: a scan that dies half-way is repeated, never skipped.
    Rule.objects.filter(pk__in=scanned).filter(
        Q(scanned_at__isnull=True) | Q(scanned_at__lt=now)
    ).update(scanned_at=now)
    if created:
        _hand_over(
            RuleRun.objects.filter(
                status=RunStatus.PENDING, due_on__isnull=False, created_at=now
            ).values_list("pk", flat=True)
        )
    return created


# --- old runs ------------------------------------------------------------------------------

PRUNE_BATCH = 5000


def prune_runs(*, now: datetime | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete finished runs older than AUTOMATION_RUN_RETENTION_DAYS, except each rule's
    latest AUTOMATION_FAILED_RUNS_KEPT failed runs (why a rule failed, or paused itself,
    stays readable however long ago). Pending runs are never deleted.

    Set-based: one DELETE of at most `batch` rows per statement (each a short
    transaction), whatever the number of rules; running it again deletes nothing. The
    retention never drops below the time-based scan's catch-up window, since a run inside
    it is what keeps a (deal, rule, due date) from running twice.
    """
    from django.conf import settings
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    days = max(settings.AUTOMATION_RUN_RETENTION_DAYS, CATCH_UP_DAYS + 1)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    latest_failed = (
        RuleRun.objects.filter(status=RunStatus.FAILED)
        .annotate(
            newest=Window(
                RowNumber(),
                partition_by=[F("rule_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(newest__lte=settings.AUTOMATION_FAILED_RUNS_KEPT)
        .values("pk")
    )
    old = (
        RuleRun.objects.filter(created_at__lt=cutoff)
        .exclude(status=RunStatus.PENDING)
        .exclude(pk__in=latest_failed)
    )
    deleted = 0
    while True:
        count, _ = RuleRun.objects.filter(pk__in=old.values("pk")[:batch]).delete()
        deleted += count
        if count < batch:
            return deleted


# --- dry run -------------------------------------------------------------------------------


@dataclass
class DryRow:
    deal: Deal
    when: str
    conditions: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = False
    outcomes: list[actions.Outcome] = field(default_factory=list)


DRY_LIMIT = 50


def dry_run(rule_id: int, *, by: User, deal_id: int | None = None, days: int = 30) -> list[DryRow]:
    """What the rule would do, written nowhere: for one deal (each action checked, the
    move against the gate), or for the events of the last `days` days (time-based: the
    deals due then), at most DRY_LIMIT, each with its conditions and planned actions."""
    rule = rule_for(rule_id, by)
    if why := labels.unreadable(rule):
        raise BadInput(f"This rule no longer reads ({why}); edit it first.")
    now = timezone.now()
    names = labels.Names.load(labels.references(rule))
    deals = policy.changeable_deals(rule.owner).select_related("stage", "owner__team")
    if rule.pipeline_id:
        deals = deals.filter(pipeline_id=rule.pipeline_id)
    if deal_id is not None:
        deal = policy.deals(by).filter(pk=deal_id).first()
        if deal is None:
            raise NotVisible("Deal not found.")
        deal = deals.filter(pk=deal_id).first()
        if deal is None:
            raise BadInput(
                "This deal is outside the rule's reach (its pipeline or its owner's teams)."
            )
        found = [(deal, "now")]
    elif rule.trigger.get("kind") in spec.TIME_BASED:
        found = []
        today = timezone.localdate(now)
        for day in reversed(_due_days(rule, today, days=days, since_created=False)):
            ids = list(due_deals(rule, day, now=now).values_list("pk", flat=True)[:DRY_LIMIT])
            found += [(pk, f"due {formats.day(day)}") for pk in ids]
            if len(found) >= DRY_LIMIT:
                break
        by_pk = deals.in_bulk([pk for pk, _ in found])
        found = [(by_pk[pk], when) for pk, when in found if pk in by_pk][:DRY_LIMIT]
    else:
        recent = Event.objects.filter(
            at__gte=now - timedelta(days=days),
            name__in=TRIGGER_EVENTS.get(rule.trigger.get("kind"), ()),
            deal_id__in=deals.values("pk"),
        ).order_by("-at")
        hits = [
            e
            for e in recent[: DRY_LIMIT * 4]
            if triggered_by(rule.trigger, e.name, e.payload) and _counts(e)
        ]
        hits = hits[:DRY_LIMIT]
        by_pk = deals.in_bulk({e.deal_id for e in hits})
        found = [
            (by_pk[e.deal_id], f"{e.name} at {formats.moment(e.at)}")
            for e in hits
            if e.deal_id in by_pk
        ]
    results = conditions.evaluate(rule.conditions, [d.pk for d, _ in found])
    items = rule.conditions.get("items", [])
    rows = []
    for deal, when in found:
        passed = results.get(deal.pk, [])
        row = DryRow(
            deal=deal,
            when=when,
            conditions=[
                {"label": labels.condition(i, names), "passed": p}
                for i, p in zip(items, passed, strict=False)
            ],
            passed=conditions.passes(rule.conditions, passed),
        )
        if row.passed:
            if deal_id is not None:
                ctx = actions.Context(rule=rule, run=None, deal=deal, dry=True, now=now)
                row.outcomes = perform(ctx, rule.actions, names)
            else:
                row.outcomes = [
                    actions.Outcome(a["kind"], "would", labels.action(a, names))
                    for a in rule.actions
                ]
        rows.append(row)
    return rows
