"""Forms for the configuration screens. They check input; the rules live in services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from stages.models import (
    REQUIRABLE_FIELDS,
    ContactRole,
    CriterionKind,
    EntryCriterion,
    ForecastCategory,
    StageKind,
)
from stages.services import (
    KIND_FIELDS,
    MAX_CRITERION_DAYS,
    MAX_ROTTING_DAYS,
    NAME_MAX_LENGTH,
    REQUIRABLE_ACTIVITY_TYPES,
    StageSettings,
)


class PipelineForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        error_messages={"required": "Give the pipeline a name."},
    )


class StageForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH, error_messages={"required": "Give the stage a name."}
    )
    kind = forms.ChoiceField(
        choices=StageKind.choices,
        initial=StageKind.OPEN,
        help_text="Open stages are board columns; won and lost stages close a deal.",
    )
    probability = forms.IntegerField(
        label="Win probability (%)",
        min_value=0,
        max_value=100,
        initial=10,
        error_messages={
            "min_value": "The win probability must be between 0 and 100.",
            "max_value": "The win probability must be between 0 and 100.",
        },
    )
    forecast_category = forms.ChoiceField(
        choices=ForecastCategory.choices, initial=ForecastCategory.PIPELINE
    )
    rotting_days = forms.IntegerField(
        label="Rotting after (days)",
        min_value=0,
        max_value=MAX_ROTTING_DAYS,
        initial=0,
        help_text="A deal longer than this in the stage is flagged as stalled; 0 turns it off.",
    )
    guidance = forms.CharField(
        label="Guidance for reps",
        required=False,
        strip=False,
        max_length=settings.MAX_TEXT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text="The coaching playbook shown on cards and deal pages: what to do in this "
        "stage, and what “done” looks like. Plain text; line breaks are kept.",
    )

    @classmethod
    def for_stage(cls, stage: Any, **kwargs: Any) -> StageForm:
        fields = ("name", "kind", "probability", "forecast_category", "rotting_days", "guidance")
        return cls(initial={f: getattr(stage, f) for f in fields}, **kwargs)

    def settings(self) -> StageSettings:
        return StageSettings(**self.cleaned_data)


class CriterionForm(forms.Form):
    """One criterion's parameters; only the fields its kind uses are on the form."""

    field_name = forms.ChoiceField(
        label="Deal field that must be filled",
        choices=[("", "Choose a field…"), *REQUIRABLE_FIELDS.items()],
        error_messages={"required": "Choose which deal field must be filled in."},
    )
    amount = forms.DecimalField(
        label="Minimum amount",
        min_value=0,
        max_digits=14,
        decimal_places=2,
        error_messages={
            "required": "Enter the minimum amount.",
            "min_value": "The minimum amount must be 0 or more.",
        },
    )
    activity_type = forms.ChoiceField(
        label="Activity that must be completed",
        choices=[("", "Choose a type…"), *((t.value, t.label) for t in REQUIRABLE_ACTIVITY_TYPES)],
        error_messages={"required": "Choose which type of activity must be completed."},
    )
    contact_role = forms.ChoiceField(
        label="Contact role the deal needs",
        choices=[("", "Choose a role…"), *ContactRole.choices],
        error_messages={"required": "Choose which contact role the deal needs."},
    )
    label = forms.CharField(
        label="Confirmation the rep ticks",
        max_length=200,
        help_text="For example “Budget approved by the customer”.",
        error_messages={"required": "Write the confirmation the rep must tick."},
    )
    days = forms.IntegerField(
        label="Minimum days in the previous stage",
        min_value=1,
        max_value=MAX_CRITERION_DAYS,
        error_messages={
            "required": "Enter a number of days from 1 to 3650.",
            "min_value": "Enter a number of days from 1 to 3650.",
        },
    )

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.criterion_kind = kind
        self.kind_label = CriterionKind(kind).label
        for name in list(self.fields):
            if name not in KIND_FIELDS[kind]:
                del self.fields[name]

    @classmethod
    def for_criterion(cls, criterion: EntryCriterion, **kwargs: Any) -> CriterionForm:
        initial = {f: getattr(criterion, f) for f in KIND_FIELDS[criterion.kind]}
        return cls(kind=criterion.kind, initial=initial, **kwargs)


class KindForm(forms.Form):
    """Which kind of criterion to add (chosen first; the parameters form follows it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The stage page shows this beside the stage form, whose `kind` has the default id.
        super().__init__(*args, auto_id="criterion_%s", **kwargs)

    kind = forms.ChoiceField(
        label="Add a criterion",
        choices=[("", "Choose a kind…"), *CriterionKind.choices],
        error_messages={"required": "Choose what kind of criterion to add."},
    )


class ButtonForm(forms.Form):
    """A row button that posts nothing but its CSRF token."""


class MoveForm(forms.Form):
    direction = forms.ChoiceField(choices=[("up", "Up"), ("down", "Down")])

    @property
    def offset(self) -> int:
        return -1 if self.cleaned_data["direction"] == "up" else 1


class IdListField(forms.Field):
    """A list of ids posted as repeated `name=id` pairs, in the order given."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        try:
            ids = [int(v) for v in value or []]
        except (TypeError, ValueError):
            raise ValidationError("The new order could not be read.") from None
        if not ids or len(set(ids)) != len(ids):
            raise ValidationError("The new order could not be read.")
        return ids


class OrderForm(forms.Form):
    order = IdListField()
