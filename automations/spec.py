"""The shape of a rule: its trigger, conditions and actions, checked here and only here.

Every save (the form, a recipe, the API later) goes through `clean`, which returns the
normalised JSON or raises BadInput naming the part that is wrong ("Action 2: …"), so a
refused rule changes nothing. Limits keep a rule small enough to run in one transaction
and to read in the log.

Trigger (`{"kind": …}`): deal_created; stage_entered (stage, optional from_stage);
stage_left (stage); deal_won; deal_lost; deal_stalled (optional stalled_rule);
field_changed (field: amount, owner, expected_close_date); activity_overdue; and the
time-based close_date (days: negative before, positive after the expected close date)
and days_in_stage (days after entering the current stage).

Conditions (`{"match": "all"|"any", "items": [...]}`): pipeline, stage, owner, team
(op in/not_in, ids); amount (op, value, optional currency); currency (op, values);
organization (field, op, value); contact_role (op has/lacks, role); open_activity (op
has/lacks); days_in_stage (op gte/lte, days).

Actions (a list, run in order): create_activity (type, subject, note, due_days in
business days, assignee owner/team_manager/user, user); notify (roles owner/team_manager
/admins, users, text, email); assign_owner (mode user/round_robin, user or team);
update_field (field, value); move_stage (stage, through the gate); send_webhook
(endpoint).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from common.errors import BadInput
from stages.models import ActivityType, ContactRole

TIME_BASED = {"close_date", "days_in_stage", "activity_overdue"}
TRIGGERS = {
    "deal_created": "A deal is created",
    "stage_entered": "A deal enters a stage",
    "stage_left": "A deal leaves a stage",
    "deal_won": "A deal is won",
    "deal_lost": "A deal is lost",
    "deal_stalled": "A deal is flagged stalled",
    "field_changed": "A field changes",
    "activity_overdue": "An activity becomes overdue",
    "close_date": "Days before/after the expected close date",
    "days_in_stage": "Days after entering the current stage",
}
TRIGGER_FIELDS = {"amount", "owner", "expected_close_date"}
STALLED_RULES = {
    "in_stage_too_long",
    "no_recent_activity",
    "no_next_step",
    "close_date_passed",
    "close_date_slipping",
}

CONDITIONS = {
    "pipeline": "Pipeline",
    "stage": "Stage",
    "owner": "Owner",
    "team": "Owner's team",
    "amount": "Amount",
    "currency": "Currency",
    "organization": "Organization",
    "contact_role": "Contact with role",
    "open_activity": "Open next activity",
    "days_in_stage": "Days in stage",
}
ID_CONDITIONS = {"pipeline", "stage", "owner", "team"}
COMPARISONS = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "="}
ORGANIZATION_FIELDS = {
    "name": "text",
    "sector": "text",
    "website": "text",
    "employees": "number",
    "annual_revenue": "number",
}
TEXT_OPS = {"eq": "is", "contains": "contains", "empty": "is empty", "not_empty": "is filled"}

ACTIONS = {
    "create_activity": "Create an activity",
    "notify": "Notify",
    "assign_owner": "Assign the owner",
    "update_field": "Update a field",
    "move_stage": "Move to a stage",
    "send_webhook": "Send a webhook",
}
NOTIFY_ROLES = {"owner": "the owner", "team_manager": "the team's manager", "admins": "admins"}
ASSIGNEES = {"owner", "team_manager", "user"}
UPDATABLE_FIELDS = {
    "amount": "number",
    "currency": "currency",
    "expected_close_date": "date",
    "next_step": "text",
    "product": "text",
    "probability_override": "percent",
}

MAX_ITEMS = 10
MAX_IDS = 50
MAX_DAYS = 365
MAX_DUE_DAYS = 60
MAX_SUBJECT = 200
MAX_NOTE = 1000
MAX_TEXT = 250
MAX_AMOUNT = Decimal("999999999999.99")
CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass
class References:
    """Every record a rule names, by kind: checked for existence when saved and flagged
    when one goes (an archived stage, a deactivated user) on the rules page."""

    stages: set[int] = field(default_factory=set)
    pipelines: set[int] = field(default_factory=set)
    users: set[int] = field(default_factory=set)
    teams: set[int] = field(default_factory=set)
    endpoints: set[int] = field(default_factory=set)


class SpecError(BadInput):
    """A refused part of a rule: `where` ("Trigger", "Condition 2", "Action 1") and, when
    known, `key`, the value that is wrong ("due_days"), so a form can show the message
    beside the field that caused it."""

    def __init__(self, message: str, *, where: str = "", key: str = "") -> None:
        super().__init__(message)
        self.where, self.key = where, key


def _fail(where: str, message: str) -> SpecError:
    return SpecError(f"{where}: {message}", where=where)


@contextmanager
def _at(key: str) -> Iterator[None]:
    """Name the value being checked on any refusal raised inside."""
    try:
        yield
    except SpecError as error:
        error.key = error.key or key
        raise


def _int(value: Any, where: str, what: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise _fail(where, f"{what} must be a whole number.") from None
    if not low <= number <= high:
        raise _fail(where, f"{what} must be between {low} and {high}.")
    return number


def _id(value: Any, where: str, what: str) -> int:
    return _int(value, where, what, 1, 2**62)


def _ids(value: Any, where: str, what: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _fail(where, f"choose at least one {what}.")
    if len(value) > MAX_IDS:
        raise _fail(where, f"at most {MAX_IDS} {what}s.")
    return sorted({_id(v, where, what) for v in value})


def _text(value: Any, where: str, what: str, limit: int, *, required: bool = True) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise _fail(where, f"{what} is required.")
    if len(text) > limit:
        raise _fail(where, f"{what} is too long ({len(text)} characters, at most {limit}).")
    return text


def _choice(value: Any, choices: Any, where: str, what: str) -> str:
    text = str(value or "")
    if text not in choices:
        raise _fail(where, f"unknown {what} “{text[:40]}”.")
    return text


def _amount(value: Any, where: str) -> str:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _fail(where, "the amount must be a number.") from None
    if not number.is_finite() or number < 0 or number > MAX_AMOUNT:
        raise _fail(where, f"the amount must be between 0 and {MAX_AMOUNT}.")
    return str(number.quantize(Decimal("0.01")))


def clean(
    trigger: Any, conditions: Any, actions: Any
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], References]:
    """The rule's parts normalised, and what they refer to; BadInput if any is wrong."""
    refs = References()
    return (
        clean_trigger(trigger, refs),
        clean_conditions(conditions, refs),
        clean_actions(actions, refs),
        refs,
    )


def clean_trigger(raw: Any, refs: References) -> dict[str, Any]:
    where = "Trigger"
    if not isinstance(raw, dict):
        raise _fail(where, "choose what starts the rule.")
    with _at("kind"):
        kind = _choice(raw.get("kind"), TRIGGERS, where, "trigger")
    out: dict[str, Any] = {"kind": kind}
    if kind in {"stage_entered", "stage_left"}:
        with _at("stage"):
            out["stage"] = _id(raw.get("stage"), where, "the stage")
        refs.stages.add(out["stage"])
        if kind == "stage_entered" and raw.get("from_stage") not in (None, ""):
            with _at("from_stage"):
                out["from_stage"] = _id(raw.get("from_stage"), where, "the stage it comes from")
            refs.stages.add(out["from_stage"])
    elif kind == "deal_stalled" and raw.get("stalled_rule"):
        with _at("stalled_rule"):
            out["stalled_rule"] = _choice(
                raw["stalled_rule"], STALLED_RULES, where, "stalled rule"
            )
    elif kind == "field_changed":
        with _at("field"):
            out["field"] = _choice(raw.get("field"), TRIGGER_FIELDS, where, "field")
    elif kind == "close_date":
        with _at("days"):
            out["days"] = _int(raw.get("days"), where, "the days", -MAX_DAYS, MAX_DAYS)
    elif kind == "days_in_stage":
        with _at("days"):
            out["days"] = _int(raw.get("days"), where, "the days", 1, MAX_DAYS)
    return out


def clean_conditions(raw: Any, refs: References) -> dict[str, Any]:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise BadInput("Conditions: expected a match and a list of items.")
    match = raw.get("match") or "all"
    if match not in {"all", "any"}:
        raise BadInput("Conditions: match must be “all” or “any”.")
    items = raw.get("items") or []
    if not isinstance(items, list):
        raise BadInput("Conditions: items must be a list.")
    if len(items) > MAX_ITEMS:
        raise BadInput(f"Conditions: at most {MAX_ITEMS}.")
    return {
        "match": match,
        "items": [_condition(item, f"Condition {n}", refs) for n, item in enumerate(items, 1)],
    }


def _condition(raw: Any, where: str, refs: References) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(where, "expected a kind and its values.")
    with _at("kind"):
        kind = _choice(raw.get("kind"), CONDITIONS, where, "condition")
    out: dict[str, Any] = {"kind": kind}
    if kind in ID_CONDITIONS:
        with _at("op"):
            out["op"] = _choice(raw.get("op") or "in", {"in", "not_in"}, where, "comparison")
        with _at("ids"):
            out["ids"] = _ids(raw.get("ids"), where, kind)
        getattr(refs, {"owner": "users"}.get(kind, f"{kind}s")).update(out["ids"])
    elif kind == "amount":
        with _at("op"):
            out["op"] = _choice(raw.get("op"), COMPARISONS, where, "comparison")
        with _at("value"):
            out["value"] = _amount(raw.get("value"), where)
        if raw.get("currency"):
            with _at("currency"):
                out["currency"] = _currency(raw["currency"], where)
    elif kind == "currency":
        with _at("op"):
            out["op"] = _choice(raw.get("op") or "in", {"in", "not_in"}, where, "comparison")
        values = raw.get("values")
        with _at("values"):
            if not isinstance(values, list) or not values or len(values) > MAX_IDS:
                raise _fail(where, "choose at least one currency.")
            out["values"] = sorted({_currency(v, where) for v in values})
    elif kind == "organization":
        with _at("field"):
            out["field"] = _choice(
                raw.get("field"), ORGANIZATION_FIELDS, where, "organization field"
            )
        numeric = ORGANIZATION_FIELDS[out["field"]] == "number"
        ops = COMPARISONS if numeric else TEXT_OPS
        with _at("op"):
            out["op"] = _choice(raw.get("op"), {*ops, "empty", "not_empty"}, where, "comparison")
        if out["op"] not in {"empty", "not_empty"}:
            value = raw.get("value")
            with _at("value"):
                out["value"] = (
                    _amount(value, where) if numeric else _text(value, where, "the value", 200)
                )
    elif kind == "contact_role":
        with _at("op"):
            out["op"] = _choice(raw.get("op") or "has", {"has", "lacks"}, where, "comparison")
        with _at("role"):
            out["role"] = _choice(raw.get("role"), ContactRole.values, where, "contact role")
    elif kind == "open_activity":
        with _at("op"):
            out["op"] = _choice(raw.get("op") or "has", {"has", "lacks"}, where, "comparison")
    elif kind == "days_in_stage":
        with _at("op"):
            out["op"] = _choice(raw.get("op"), {"gte", "lte"}, where, "comparison")
        with _at("days"):
            out["days"] = _int(raw.get("days"), where, "the days", 0, MAX_DAYS)
    return out


def _currency(value: Any, where: str) -> str:
    text = str(value or "").strip().upper()
    if not CURRENCY.match(text):
        raise _fail(where, f"“{text[:10]}” is not a three-letter currency code.")
    return text


def clean_actions(raw: Any, refs: References) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise BadInput("Actions: add at least one action.")
    if len(raw) > MAX_ITEMS:
        raise BadInput(f"Actions: at most {MAX_ITEMS}.")
    return [_action(item, f"Action {n}", refs) for n, item in enumerate(raw, 1)]


def _action(raw: Any, where: str, refs: References) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(where, "expected a kind and its values.")
    with _at("kind"):
        kind = _choice(raw.get("kind"), ACTIONS, where, "action")
    out: dict[str, Any] = {"kind": kind}
    if kind == "create_activity":
        with _at("type"):
            out["type"] = _choice(raw.get("type") or "task", ActivityType.values, where, "type")
        with _at("subject"):
            out["subject"] = _text(raw.get("subject"), where, "the subject", MAX_SUBJECT)
        with _at("note"):
            out["note"] = _text(raw.get("note"), where, "the note", MAX_NOTE, required=False)
        with _at("due_days"):
            out["due_days"] = _int(
                raw.get("due_days", 0), where, "the due offset", 0, MAX_DUE_DAYS
            )
        with _at("assignee"):
            out["assignee"] = _choice(raw.get("assignee") or "owner", ASSIGNEES, where, "assignee")
        if out["assignee"] == "user":
            with _at("user"):
                out["user"] = _id(raw.get("user"), where, "the user")
            refs.users.add(out["user"])
    elif kind == "notify":
        roles = raw.get("roles") or []
        users = raw.get("users") or []
        if not isinstance(roles, list) or not isinstance(users, list) or not (roles or users):
            with _at("roles"):
                raise _fail(where, "choose whom to notify.")
        with _at("roles"):
            out["roles"] = sorted({_choice(r, NOTIFY_ROLES, where, "role") for r in roles})
        with _at("users"):
            out["users"] = _ids(users, where, "user") if users else []
        refs.users.update(out["users"])
        with _at("text"):
            out["text"] = _text(raw.get("text"), where, "the message", MAX_TEXT)
        with _at("email"):
            out["email"] = bool(raw.get("email"))
    elif kind == "assign_owner":
        with _at("mode"):
            out["mode"] = _choice(raw.get("mode"), {"user", "round_robin"}, where, "assignment")
        if out["mode"] == "user":
            with _at("user"):
                out["user"] = _id(raw.get("user"), where, "the user")
            refs.users.add(out["user"])
        else:
            with _at("team"):
                out["team"] = _id(raw.get("team"), where, "the team")
            refs.teams.add(out["team"])
    elif kind == "update_field":
        with _at("field"):
            out["field"] = _choice(raw.get("field"), UPDATABLE_FIELDS, where, "field")
        with _at("value"):
            out["value"] = _field_value(out["field"], raw.get("value"), where)
    elif kind == "move_stage":
        with _at("stage"):
            out["stage"] = _id(raw.get("stage"), where, "the stage")
        refs.stages.add(out["stage"])
    elif kind == "send_webhook":
        with _at("endpoint"):
            out["endpoint"] = _id(raw.get("endpoint"), where, "the webhook endpoint")
        refs.endpoints.add(out["endpoint"])
    return out


def _field_value(name: str, value: Any, where: str) -> str:
    kind = UPDATABLE_FIELDS[name]
    text = str(value if value is not None else "").strip()
    if kind == "number":
        return _amount(text, where)
    if kind == "currency":
        return _currency(text, where)
    if kind == "percent":
        return str(_int(text, where, "the probability", 0, 100))
    if kind == "date":
        # "+N": N days after the day the action runs; or a fixed date.
        if text.startswith("+"):
            return f"+{_int(text[1:], where, 'the days', 0, MAX_DAYS)}"
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise _fail(where, "the date must be YYYY-MM-DD or +N (days from the run).") from None
    return _text(text, where, "the value", 200, required=False)


# --- what a rule's actions can cause, for refusing loops at save time ----------------------


def listens_to(trigger: dict[str, Any]) -> set[str]:
    """Signals that start a rule (`stage:<id>`, `won`, `lost`, `field:<name>`)."""
    kind = trigger.get("kind")
    if kind == "stage_entered":
        return {f"stage:{trigger['stage']}"}
    if kind in {"deal_won", "deal_lost"}:
        return {kind.removeprefix("deal_")}
    if kind == "field_changed":
        return {f"field:{trigger['field']}"}
    return set()


def causes(actions: list[dict[str, Any]], stage_kinds: dict[int, str]) -> set[str]:
    """Signals a rule's actions give (what leaving a stage means is not known ahead)."""
    out: set[str] = set()
    for action in actions:
        if action["kind"] == "move_stage":
            out.add(f"stage:{action['stage']}")
            if stage_kinds.get(action["stage"]) in {"won", "lost"}:
                out.add(stage_kinds[action["stage"]])
        elif action["kind"] == "update_field" and action["field"] in TRIGGER_FIELDS:
            out.add(f"field:{action['field']}")
        elif action["kind"] == "assign_owner":
            out.add("field:owner")
    return out


def find_loop(
    new: tuple[str, set[str], set[str]], others: list[tuple[str, set[str], set[str]]]
) -> list[str] | None:
    """The names of rules around a loop through `new` ((name, listens, causes)), if any:
    a rule whose actions start a rule whose actions … start it again."""
    rules = [new, *others]
    path: list[int] = [0]

    def walk(at: int, seen: set[int]) -> list[str] | None:
        for nxt, (_name, listens, _causes) in enumerate(rules):
            if not rules[at][2] & listens:
                continue
            if nxt == 0:
                return [rules[i][0] for i in path]
            if nxt in seen:
                continue
            path.append(nxt)
            found = walk(nxt, seen | {nxt})
            if found:
                return found
            path.pop()
        return None

    return walk(0, {0})
