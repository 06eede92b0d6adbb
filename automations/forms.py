"""The rule form: a trigger chosen from lists, conditions and actions as JSON (each kind
and its values are listed beside the form), all checked by `automations.spec`."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from automations import spec
from automations.models import Rule
from automations.services import RuleInput
from stages.models import Pipeline, Stage

MAX_JSON = 20_000


class RuleForm(forms.Form):
    name = forms.CharField(max_length=100)
    pipeline = forms.ModelChoiceField(
        queryset=Pipeline.objects.filter(is_archived=False),
        required=False,
        empty_label="Every pipeline",
        help_text="The rule only looks at deals of this pipeline.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    trigger_kind = forms.ChoiceField(choices=list(spec.TRIGGERS.items()), label="Trigger")
    trigger_stage = forms.ModelChoiceField(
        queryset=Stage.objects.select_related("pipeline").filter(is_archived=False),
        required=False,
        label="Stage (enters / leaves)",
    )
    trigger_from_stage = forms.ModelChoiceField(
        queryset=Stage.objects.select_related("pipeline").filter(is_archived=False),
        required=False,
        label="Coming from stage (optional)",
    )
    trigger_field = forms.ChoiceField(
        choices=[("", "—"), *[(f, f.replace("_", " ")) for f in sorted(spec.TRIGGER_FIELDS)]],
        required=False,
        label="Field (field changes)",
    )
    trigger_stalled_rule = forms.ChoiceField(
        choices=[("", "Any"), *[(r, r.replace("_", " ")) for r in sorted(spec.STALLED_RULES)]],
        required=False,
        label="Stalled rule (optional)",
    )
    trigger_days = forms.IntegerField(
        required=False,
        label="Days (time-based)",
        help_text="Close date: negative before, positive after. Days in stage: 1 to 365.",
    )
    conditions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        max_length=MAX_JSON,
        help_text='JSON: {"match": "all", "items": [{"kind": "amount", "op": "gte", "value": '
        '"1000", "currency": "USD"}]}',
    )
    actions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=MAX_JSON,
        help_text='JSON list: [{"kind": "create_activity", "type": "task", "subject": '
        '"Prepare demo", "due_days": 1, "assignee": "owner"}]',
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("trigger_stage", "trigger_from_stage"):
            self.fields[name].label_from_instance = lambda s: f"{s.pipeline.name}: {s.name}"

    @classmethod
    def for_rule(cls, rule: Rule) -> RuleForm:
        trigger = rule.trigger
        return cls(
            initial={
                "name": rule.name,
                "pipeline": rule.pipeline_id,
                "is_active": rule.is_active,
                "trigger_kind": trigger.get("kind"),
                "trigger_stage": trigger.get("stage"),
                "trigger_from_stage": trigger.get("from_stage"),
                "trigger_field": trigger.get("field", ""),
                "trigger_stalled_rule": trigger.get("stalled_rule", ""),
                "trigger_days": trigger.get("days"),
                "conditions": json.dumps(rule.conditions, indent=2) if rule.conditions else "",
                "actions": json.dumps(rule.actions, indent=2),
            }
        )

    def _json(self, name: str, empty: Any) -> Any:
        text = self.cleaned_data.get(name) or ""
        if not text.strip():
            return empty
        try:
            return json.loads(text)
        except ValueError as error:
            raise forms.ValidationError({name: f"Not valid JSON: {error}."}) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        data["conditions_json"] = self._json("conditions", {})
        data["actions_json"] = self._json("actions", [])
        return data

    def to_input(self) -> RuleInput:
        data = self.cleaned_data
        trigger: dict[str, Any] = {"kind": data["trigger_kind"]}
        if data.get("trigger_stage"):
            trigger["stage"] = data["trigger_stage"].pk
        if data.get("trigger_from_stage"):
            trigger["from_stage"] = data["trigger_from_stage"].pk
        if data.get("trigger_field"):
            trigger["field"] = data["trigger_field"]
        if data.get("trigger_stalled_rule"):
            trigger["stalled_rule"] = data["trigger_stalled_rule"]
        if data.get("trigger_days") is not None:
            trigger["days"] = data["trigger_days"]
        return RuleInput(
            name=data["name"],
            trigger=trigger,
            conditions=data["conditions_json"],
            actions=data["actions_json"],
            pipeline_id=data["pipeline"].pk if data.get("pipeline") else None,
            is_active=data.get("is_active", False),
        )


class DryRunForm(forms.Form):
    deal = forms.IntegerField(required=False, min_value=1, label="Deal number")
    days = forms.IntegerField(required=False, min_value=1, max_value=30, initial=30)
