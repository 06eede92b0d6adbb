"""The rule form: name, pipeline, on/off and the trigger with the options of its kind.
Conditions and actions are rows of the editor (`automations.editor`); `spec` judges."""

from __future__ import annotations

from typing import Any

from django import forms

from automations import spec
from automations.editor import Choices, Rows, _pick
from automations.models import Rule
from automations.services import RuleInput

# The trigger's options, by kind: only these are shown (and read) for it.
TRIGGER_KEYS = {
    "stage_entered": ["stage", "from_stage"],
    "stage_left": ["stage"],
    "deal_stalled": ["stalled_rule"],
    "field_changed": ["field"],
    "close_date": ["days"],
    "days_in_stage": ["days"],
}


class RuleForm(forms.Form):
    name = forms.CharField(label="Name", strip=True)
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    trigger_kind = forms.ChoiceField(choices=list(spec.TRIGGERS.items()), label="When")
    trigger_field = forms.ChoiceField(
        choices=[("", "—"), *[(f, f.replace("_", " ")) for f in sorted(spec.TRIGGER_FIELDS)]],
        required=False,
        label="Field",
    )
    trigger_stalled_rule = forms.ChoiceField(
        choices=[("", "Any"), *[(r, r.replace("_", " ")) for r in sorted(spec.STALLED_RULES)]],
        required=False,
        label="Stalled rule",
    )
    trigger_days = forms.IntegerField(
        required=False,
        label="Days",
        help_text="Close date: negative before, positive after. Days in stage: 1 to 365.",
    )
    match = forms.ChoiceField(
        choices=[("all", "all conditions"), ("any", "any condition")],
        initial="all",
        widget=forms.RadioSelect,
        label="The deal must meet",
    )

    def __init__(self, *args: Any, choices: Choices, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pipeline"] = _pick(choices.pipelines, "Pipeline", required=False)
        self.fields["pipeline"].choices = [("", "Every pipeline"), *choices.pipelines]
        self.fields["pipeline"].help_text = "The rule only looks at deals of this pipeline."
        self.fields["trigger_stage"] = _pick(choices.stages, "Stage", required=False)
        self.fields["trigger_from_stage"] = _pick(
            choices.stages, "Coming from (optional)", required=False
        )
        self.order_fields(["name", "pipeline", "is_active", "trigger_kind"])

    @property
    def kind(self) -> str:
        value = self["trigger_kind"].value()
        return value if value in spec.TRIGGERS else next(iter(spec.TRIGGERS))

    @property
    def trigger_options(self) -> list[forms.BoundField]:
        return [self[f"trigger_{key}"] for key in TRIGGER_KEYS.get(self.kind, [])]

    @staticmethod
    def initial_for(rule: Rule) -> dict[str, Any]:
        trigger = rule.trigger
        return {
            "name": rule.name,
            "pipeline": rule.pipeline_id or "",
            "is_active": rule.is_active,
            "match": rule.conditions.get("match", "all"),
            "trigger_kind": trigger.get("kind"),
            **{
                f"trigger_{key}": trigger.get(key, "")
                for keys in TRIGGER_KEYS.values()
                for key in keys
            },
        }

    def to_input(self, items: dict[str, list[dict[str, Any]]]) -> RuleInput:
        data = self.cleaned_data
        trigger: dict[str, Any] = {"kind": data["trigger_kind"]}
        for key in TRIGGER_KEYS.get(data["trigger_kind"], []):
            if data.get(f"trigger_{key}") not in (None, ""):
                trigger[key] = data[f"trigger_{key}"]
        return RuleInput(
            name=data["name"],
            trigger=trigger,
            conditions={"match": data.get("match") or "all", "items": items["c"]},
            actions=items["a"],
            pipeline_id=data.get("pipeline"),
            is_active=data.get("is_active", False),
        )


# A new rule starts with one action, the commonest: a task for the owner.
FIRST_ACTION = {"kind": "create_activity", "type": "task", "due_days": "1", "assignee": "owner"}


def starting_rows(rule: Rule | None) -> Rows:
    if rule is None:
        return Rows(rows={"c": [], "a": [dict(FIRST_ACTION)]})
    return Rows.from_rule(rule.conditions, rule.actions)


class DryRunForm(forms.Form):
    deal = forms.IntegerField(required=False, min_value=1, label="Deal number")
    days = forms.IntegerField(required=False, min_value=1, max_value=30, initial=30)
