"""The point-and-click rule editor: a rule's trigger, conditions and actions as form
fields, read from and turned into the JSON `automations.spec` checks.

The editor only shapes input: each condition and action is a row (a small form whose
fields depend on its kind), its pickers offer what the rule's owner may name (the
policy's users and teams, open stages, their own webhook endpoints), and `spec.clean`
(through `services.save_rule`) stays the one judge of a rule. Its refusals name the part
and value that is wrong, and land beside that field.

Rows live in the POST as `c-<n>-<key>` (conditions) and `a-<n>-<key>` (actions). Adding,
removing and reordering rows are editor steps (`editor_op`) that re-render the editor
from what was posted, saving nothing: htmx swaps the editor alone, without JavaScript
the whole page comes back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.datastructures import MultiValueDict

from accounts import policy
from accounts.models import Team
from automations import spec
from stages.models import ActivityType, ContactRole, Pipeline, Stage
from webhooks import services as webhooks

if TYPE_CHECKING:
    from accounts.models import User

PARTS = {"c": "condition", "a": "action"}
Options = list[tuple[Any, str]]


@dataclass
class Choices:
    """What the rule's owner may pick, loaded once per page (five queries)."""

    pipelines: Options
    stages: Options
    users: Options
    teams: Options
    endpoints: Options

    @classmethod
    def for_owner(cls, owner: User) -> Choices:
        every = policy.acts_on_every_team(owner)
        teams = Team.objects.all() if every else Team.objects.filter(manager=owner)
        stages = Stage.objects.filter(is_archived=False, pipeline__is_archived=False)
        return cls(
            pipelines=[(p.pk, p.name) for p in Pipeline.objects.filter(is_archived=False)],
            stages=[
                (s.pk, f"{s.pipeline.name}: {s.name}")
                for s in stages.select_related("pipeline").order_by("pipeline__name", "position")
            ],
            users=[
                (u.pk, u.display_name)
                for u in policy.assignable_owners(owner).order_by("first_name", "last_name", "pk")
            ],
            teams=[(t.pk, t.name) for t in teams.order_by("name")],
            endpoints=[
                (e.pk, e.description or e.url)
                for e in webhooks.endpoints_for(owner).order_by("description", "pk")
            ],
        )


# --- one field per value a kind takes --------------------------------------------------------


def _pick(options: Options, label: str, *, required: bool = True, ids: bool = True) -> forms.Field:
    empty: Options = [("", "—")]
    return forms.TypedChoiceField(
        choices=empty + list(options),
        coerce=int if ids else str,
        empty_value=None if ids else "",
        required=required,
        label=label,
    )


def _pick_many(options: Options, label: str, *, required: bool = True) -> forms.Field:
    return forms.TypedMultipleChoiceField(
        choices=list(options), coerce=int, required=required, label=label
    )


def _ops(ops: dict[str, str]) -> Options:
    return list(ops.items())


IN_OPS = {"in": "is one of", "not_in": "is none of"}
HAS_OPS = {"has": "has", "lacks": "lacks"}
NUMBER_OPS = dict(spec.COMPARISONS)
DAYS_OPS = {"gte": "at least", "lte": "at most"}


def _text(label: str, *, required: bool = True, help_text: str = "", area: bool = False):
    # No max_length: how long a text may be is the spec's rule, said beside the field.
    widget = forms.Textarea(attrs={"rows": 2}) if area else forms.TextInput
    return forms.CharField(
        label=label, required=required, help_text=help_text, widget=widget, strip=False
    )


def _number(label: str, *, help_text: str = "") -> forms.Field:
    # No min/max either: the ranges are the spec's (0 to 60 business days, …).
    return forms.IntegerField(label=label, help_text=help_text)


Fields = dict[str, Callable[[Choices], forms.Field]]


def _one_of(options: Callable[[Choices], Options], label: str) -> Fields:
    """A condition on a record the deal points to: is / is none of the chosen ones."""
    return {
        "op": lambda c: _pick(_ops(IN_OPS), "Comparison", ids=False),
        "ids": lambda c: _pick_many(options(c), label),
    }


CONDITION_FIELDS: dict[str, Fields] = {
    "pipeline": _one_of(lambda c: c.pipelines, "Pipelines"),
    "stage": _one_of(lambda c: c.stages, "Stages"),
    "owner": _one_of(lambda c: c.users, "Owners"),
    "team": _one_of(lambda c: c.teams, "Teams"),
    "amount": {
        "op": lambda c: _pick(_ops(NUMBER_OPS), "Comparison", ids=False),
        "value": lambda c: _text("Amount"),
        "currency": lambda c: _text(
            "Currency", required=False, help_text="Three letters, e.g. EUR; empty: any."
        ),
    },
    "currency": {
        "op": lambda c: _pick(_ops(IN_OPS), "Comparison", ids=False),
        "values": lambda c: _text("Currencies", help_text="Three-letter codes, comma-separated."),
    },
    "organization": {
        "field": lambda c: _pick(
            [(k, k.replace("_", " ")) for k in spec.ORGANIZATION_FIELDS], "Field", ids=False
        ),
        "op": lambda c: _pick(
            _ops({**NUMBER_OPS, **spec.TEXT_OPS}),
            "Comparison",
            ids=False,
        ),
        "value": lambda c: _text(
            "Value", required=False, help_text="Not needed for “is empty” / “is filled”."
        ),
    },
    "contact_role": {
        "op": lambda c: _pick(_ops(HAS_OPS), "Comparison", ids=False),
        "role": lambda c: _pick(ContactRole.choices, "Role", ids=False),
    },
    "open_activity": {"op": lambda c: _pick(_ops(HAS_OPS), "Open next activity", ids=False)},
    "days_in_stage": {
        "op": lambda c: _pick(_ops(DAYS_OPS), "Comparison", ids=False),
        "days": lambda c: _number("Days"),
    },
}

ACTION_FIELDS: dict[str, Fields] = {
    "create_activity": {
        "type": lambda c: _pick(ActivityType.choices, "Type", ids=False),
        "subject": lambda c: _text("Subject"),
        "note": lambda c: _text("Note", required=False, area=True),
        "due_days": lambda c: _number("Due in (business days)", help_text="0 to 60."),
        "assignee": lambda c: _pick(
            [
                ("owner", "the deal's owner"),
                ("team_manager", "the team's manager"),
                ("user", "a named user"),
            ],
            "Assign to",
            ids=False,
        ),
        "user": lambda c: _pick(c.users, "Named user", required=False),
    },
    "notify": {
        "roles": lambda c: forms.MultipleChoiceField(
            choices=_ops(spec.NOTIFY_ROLES),
            required=False,
            label="Roles",
            widget=forms.CheckboxSelectMultiple,
        ),
        "users": lambda c: _pick_many(c.users, "Users", required=False),
        "text": lambda c: _text("Message", help_text="{deal} becomes the deal's title."),
        "email": lambda c: forms.BooleanField(required=False, label="Also by e-mail"),
    },
    "assign_owner": {
        "mode": lambda c: _pick(
            [("user", "a named user"), ("round_robin", "round-robin in a team")],
            "Assign to",
            ids=False,
        ),
        "user": lambda c: _pick(c.users, "Named user", required=False),
        "team": lambda c: _pick(c.teams, "Team (round-robin)", required=False),
    },
    "update_field": {
        "field": lambda c: _pick(
            [(k, k.replace("_", " ")) for k in spec.UPDATABLE_FIELDS], "Field", ids=False
        ),
        "value": lambda c: _text(
            "New value",
            required=False,
            help_text="A date is YYYY-MM-DD, or +N for N days after the run.",
        ),
    },
    "move_stage": {"stage": lambda c: _pick(c.stages, "Stage")},
    "send_webhook": {"endpoint": lambda c: _pick(c.endpoints, "Webhook endpoint")},
}
FIELDS = {"c": CONDITION_FIELDS, "a": ACTION_FIELDS}
KINDS = {"c": spec.CONDITIONS, "a": spec.ACTIONS}
LIST_KEYS = {"ids", "users", "roles"}


class RowForm(forms.Form):
    """One condition or action: its kind, and the fields of that kind only."""

    def __init__(self, part: str, kind: str, choices: Choices, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        kinds = KINDS[part]
        self.part, self.kind = part, kind if kind in kinds else next(iter(kinds))
        self.fields["kind"] = forms.ChoiceField(
            choices=list(kinds.items()), label=PARTS[part].capitalize()
        )
        for key, make in FIELDS[part][self.kind].items():
            self.fields[key] = make(choices)

    @property
    def value_fields(self) -> list[forms.BoundField]:
        return [self[key] for key in self.fields if key != "kind"]

    def item(self) -> dict[str, Any]:
        """The row as the spec's JSON (only filled values: the spec fills defaults)."""
        out: dict[str, Any] = {"kind": self.kind}
        for key, value in self.cleaned_data.items():
            if key == "kind" or value in (None, "", []):
                continue
            if key == "values":
                value = [v for v in re.split(r"[\s,;]+", value) if v]
            out[key] = value
        return out


def raw_item(item: dict[str, Any]) -> dict[str, Any]:
    """A saved condition or action as form values (the editor's starting point)."""
    raw: dict[str, Any] = {}
    for key, value in item.items():
        if key == "values":
            raw[key] = ", ".join(value)
        elif isinstance(value, list):
            raw[key] = [str(v) for v in value]
        elif isinstance(value, bool):
            raw[key] = "on" if value else ""
        else:
            raw[key] = str(value)
    return raw


@dataclass
class Rows:
    """The editor's state: match all/any, and the condition and action rows as posted
    (or as saved), each `{"kind": …, key: value or list}`."""

    match: str = "all"
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"c": [], "a": []})

    @classmethod
    def from_rule(cls, conditions: dict[str, Any], actions: list[dict[str, Any]]) -> Rows:
        return cls(
            match=conditions.get("match", "all"),
            rows={
                "c": [raw_item(i) for i in conditions.get("items", [])],
                "a": [raw_item(i) for i in actions],
            },
        )

    @classmethod
    def from_post(cls, data: Any) -> Rows:
        rows: dict[str, list[dict[str, Any]]] = {"c": [], "a": []}
        for part in PARTS:
            found = sorted(
                int(m[1])
                for name in data
                if (m := re.fullmatch(rf"{part}-(\d{{1,3}})-kind", name))
            )
            for n in found[: spec.MAX_ITEMS + 1]:
                prefix = f"{part}-{n}-"
                row = {
                    name.removeprefix(prefix): (
                        data.getlist(name)
                        if name.removeprefix(prefix) in LIST_KEYS
                        else data.get(name)
                    )
                    for name in data
                    if name.startswith(prefix)
                }
                rows[part].append(row)
        return cls(match=data.get("match") or "all", rows=rows)

    def step(self, op: str) -> str:
        """Apply an editor step ("add:a", "remove:c:1", "up:a:2", "down:a:0"); returns the
        id of what should have the focus afterwards."""
        verb, _, rest = op.partition(":")
        part, _, index = rest.partition(":")
        if part not in PARTS:
            return ""
        rows = self.rows[part]
        n = int(index) if index.isdigit() else -1
        if verb == "add" and len(rows) < spec.MAX_ITEMS:
            rows.append({"kind": next(iter(KINDS[part]))})
            return f"{part}-{len(rows) - 1}-kind"
        if not 0 <= n < len(rows):
            return ""
        if verb == "remove":
            rows.pop(n)
            return f"add-{part}"
        if verb in {"up", "down"}:
            to = n - 1 if verb == "up" else n + 1
            if 0 <= to < len(rows):
                rows[n], rows[to] = rows[to], rows[n]
                return f"{verb}-{part}-{to}"
        return ""

    def forms(self, choices: Choices, *, bound: bool) -> dict[str, list[RowForm]]:
        """Row forms: bound (to validate on save) or showing the values as they are (after
        an editor step, without complaining about a row just added)."""
        out: dict[str, list[RowForm]] = {}
        for part in PARTS:
            out[part] = []
            for n, raw in enumerate(self.rows[part]):
                prefix = f"{part}-{n}"
                kind = str(raw.get("kind") or "")
                if bound:
                    data = MultiValueDict()
                    for key, value in raw.items():
                        values = value if isinstance(value, list) else [value]
                        data.setlist(f"{prefix}-{key}", values)
                    form = RowForm(part, kind, choices, data=data, prefix=prefix)
                else:
                    form = RowForm(part, kind, choices, initial=raw, prefix=prefix)
                out[part].append(form)
        return out


def place_error(error: Exception, rows: dict[str, list[RowForm]], rule_form: Any) -> bool:
    """Put a spec refusal beside the field that caused it; False when it names no row or
    trigger field (the page shows it at the top)."""
    where = getattr(error, "where", "")
    key = getattr(error, "key", "")
    if where == "Trigger":
        name = f"trigger_{key}" if key and key != "kind" else "trigger_kind"
        if name in rule_form.fields:
            rule_form.add_error(name, error.message)
            return True
        return False
    found = re.fullmatch(r"(Condition|Action) (\d+)", where or "")
    if not found:
        return False
    part = "c" if found[1] == "Condition" else "a"
    index = int(found[2]) - 1
    if not 0 <= index < len(rows[part]):
        return False
    form = rows[part][index]
    form.add_error(key if key in form.fields else None, error.message)
    return True
