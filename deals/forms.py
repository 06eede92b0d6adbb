from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import QuerySet
from django.urls import reverse_lazy
from django.utils import timezone

from accounts import policy
from common.errors import BadInput
from common.statements import MAX_ID, Prepared
from deals.models import MoveSource
from deals.queries import SORTS, STAGE_FIELDS, BoardFilters, stage_from_row
from stages.gate import Failure
from stages.models import ActivityType, ContactRole, CriterionKind, Stage, StageKind

if TYPE_CHECKING:
    from accounts.models import User
    from deals.models import Deal

MAX_AMOUNT = Decimal("999999999999.99")


def amount_field(**kwargs: Any) -> forms.DecimalField:
    return forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(MAX_AMOUNT)],
        **kwargs,
    )


class BoardFilterForm(forms.Form):
    """The board's filters, read from the query string; bad values are ignored, not fatal."""

    owner = forms.IntegerField(required=False, min_value=1)
    team = forms.IntegerField(required=False, min_value=1)
    stage = forms.IntegerField(required=False, min_value=1)
    q = forms.CharField(required=False, max_length=100, label="Search")
    stalled = forms.BooleanField(required=False, label="Stalled only")
    no_next = forms.BooleanField(required=False, label="No next activity")
    no_close = forms.BooleanField(required=False, label="No expected close date")
    close_from = forms.DateField(required=False)
    close_to = forms.DateField(required=False)
    sort = forms.ChoiceField(
        required=False,
        choices=[(s, s.replace("_", " ").capitalize()) for s in SORTS],
    )

    def filters(self, user: User) -> BoardFilters:
        self.is_valid()
        # Keep the filters that parsed; a bad one is dropped, never a 500.
        data = {k: v for k, v in self.cleaned_data.items() if k not in self.errors}
        owner = data.get("owner")
        if self.data.get("owner") == "me":
            owner = user.pk
        return BoardFilters(
            owner=owner,
            team=data.get("team"),
            stage=data.get("stage"),
            q=(data.get("q") or "").strip(),
            stalled=bool(data.get("stalled")),
            no_next_activity=bool(data.get("no_next")),
            no_close_date=bool(data.get("no_close")),
            close_from=data.get("close_from"),
            close_to=data.get("close_to"),
            sort=data.get("sort") or "manual",
        )


def active_stages() -> QuerySet[Stage]:
    """Stages a deal may be moved into: not archived, in a pipeline that is not archived."""
    return Stage.objects.filter(is_archived=False, pipeline__is_archived=False)


_ACTIVE_STAGE = Prepared()


def active_stage(pk: int) -> Stage | None:
    """Stage `pk` if a deal may be moved into it (`active_stages`), else None; the SQL is
    compiled once per stage (a move's one read before its lock)."""
    found = _ACTIVE_STAGE.rows(pk, lambda: active_stages().filter(pk=pk).values(*STAGE_FIELDS))
    return stage_from_row(found[0]) if found else None


# Where a move made through a web form may say it came from. Automations, the API and
# imports record their own moves; a form can never claim to be one of them.
WEB_MOVE_SOURCES = [
    (MoveSource.BOARD, "board"),
    (MoveSource.MENU, "menu"),
    (MoveSource.FORM, "form"),
    (MoveSource.UNDO, "undo"),
]


@dataclass(frozen=True)
class MoveCommand:
    """A move command from the board drop or the "Move to stage" menu, read by hand.

    A move is the action reps repeat all day; its few plain values are checked here
    directly rather than through a Form (whose machinery cost more than the rest of the
    request's validation). `stage_id` is looked up by the view (`active_stages`).
    """

    stage_id: int
    version: int
    after: int | None = None
    before: int | None = None
    source: str = MoveSource.MENU
    override_reason: str = ""
    # Idempotency key, one per attempt (board.js): a retry of the same attempt is safe.
    key: str = ""

    @classmethod
    def parse(cls, data: Mapping[str, str]) -> MoveCommand:
        """The validated move, or BadInput saying what was wrong with the request."""
        try:
            stage_id = _whole_number(data.get("stage", ""))
        except ValueError:
            stage_id = None
        if stage_id is None:
            raise BadInput("That stage does not exist.")
        source = data.get("source", "")
        reason = data.get("override_reason", "").strip()
        key = data.get("key", "").strip()
        try:
            # Any version: one past what the deal can have is a conflict (409), not a 400.
            version = _whole_number(data.get("version", ""), most=None)
            after = _whole_number(data.get("after", ""))
            before = _whole_number(data.get("before", ""))
        except ValueError:
            version = None
        if (
            version is None
            or source not in {"", MoveSource.BOARD, MoveSource.MENU}
            or len(reason) > 500
            or (key and not MOVE_KEY.fullmatch(key))
        ):
            raise BadInput("That move request was not understood.")
        return cls(stage_id, version, after, before, source or MoveSource.MENU, reason, key)


MOVE_KEY = re.compile(r"[A-Za-z0-9-]{8,40}")


def _whole_number(value: str, *, most: int | None = MAX_ID) -> int | None:
    """A whole number from 1 to `most` (an id by default) from a form value; None when
    blank, ValueError when not one."""
    value = value.strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(value)
    if most is not None and int(value) > most:
        raise ValueError(value)
    return int(value)


class GateFixForm(forms.Form):
    """The inline form a blocked move answers with: one field per fixable failure.

    Closing a deal from the board (`closing`, the Won or Lost stage's kind) always asks:
    Won confirms the amount and the close date (prefilled), Lost asks for the reason.
    """

    stage = forms.IntegerField(widget=forms.HiddenInput)
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    source = forms.ChoiceField(widget=forms.HiddenInput, required=False, choices=WEB_MOVE_SOURCES)

    def __init__(
        self,
        *args: Any,
        deal: Deal,
        failures: list[Failure],
        user: User,
        closing: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.deal = deal
        self.failures = failures
        self.unfixable: list[Failure] = []
        for failure in failures:
            name, field = self._field_for(failure, user)
            if field is None:
                self.unfixable.append(failure)
            elif name not in self.fields:
                self.fields[name] = field
        if closing == StageKind.WON:
            amount = self.fields.setdefault("amount", amount_field(label="Amount won"))
            amount.initial = deal.amount
            close = self.fields.setdefault(
                "expected_close_date",
                forms.DateField(
                    label="Close date", widget=forms.DateInput(attrs={"type": "date"})
                ),
            )
            close.initial = timezone.localdate()
        elif closing == StageKind.LOST:
            self.fields["lost_reason"] = forms.CharField(max_length=200, label="Why was it lost?")
        self.fixes = [name for name in self.fields if name not in ("stage", "version", "source")]
        if policy.can_override_gate(user):
            # A written reason replaces the missing items, so the browser must not insist
            # on them (a `required` attribute would block the override); `clean` does.
            self.use_required_attribute = False
            for name in self.fixes:
                self.fields[name].required = False
            self.fields["override_reason"] = forms.CharField(
                required=False,
                max_length=500,
                widget=forms.Textarea(attrs={"rows": 2}),
                label="Or override with a reason (manager/admin)",
            )

    def _field_for(self, failure: Failure, user: User) -> tuple[str, forms.Field | None]:
        label = failure.message
        match failure.kind:
            case CriterionKind.FIELD_REQUIRED if failure.fix in {"person", "organization"}:
                return failure.fix, forms.CharField(
                    max_length=200, label=label, help_text="Type a name; it is created if new."
                )
            case CriterionKind.FIELD_REQUIRED if failure.fix == "amount":
                return "amount", amount_field(label=label)
            case CriterionKind.FIELD_REQUIRED if failure.fix == "expected_close_date":
                return "expected_close_date", forms.DateField(
                    label=label, widget=forms.DateInput(attrs={"type": "date"})
                )
            case CriterionKind.FIELD_REQUIRED:
                return failure.fix, forms.CharField(max_length=200, label=label)
            case CriterionKind.AMOUNT_AT_LEAST | "won_amount":
                minimum = failure.criterion.amount if failure.criterion else Decimal(0)
                field = amount_field(label=label)
                field.validators.append(MinValueValidator(minimum))
                return "amount", field
            case "lost_reason":
                return "lost_reason", forms.CharField(max_length=200, label=label)
            case CriterionKind.CHECKLIST:
                return f"check_{failure.fix}", forms.BooleanField(label=label)
            case CriterionKind.ACTIVITY_DONE:
                return f"activity_{failure.fix}", forms.CharField(
                    max_length=200, label=label, help_text="What happened (subject)"
                )
            case CriterionKind.CONTACT_ROLE:
                # Only people the user may see: never offer another team's contact by name.
                people = policy.people(user).filter(organization_id=self.deal.organization_id)
                if self.deal.organization_id is None:
                    people = policy.people(user).filter(pk=self.deal.person_id)
                role = ContactRole(failure.fix).label
                return f"role_{failure.fix}", forms.ModelChoiceField(
                    queryset=people.order_by("name"), label=f"{label}: who is the {role.lower()}?"
                )
        return "", None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        overridden = bool((data.get("override_reason") or "").strip())
        if not overridden:
            for name in self.fixes:
                if name not in self.errors and data.get(name) in (None, "", False):
                    self.add_error(name, self.fields[name].error_messages["required"])
        if self.unfixable and not overridden:
            # Rules like "no skipping" cannot be fixed in a form; only an override passes them.
            self.add_error(
                None, "Some requirements can only be met over time or overridden by a manager."
            )
        return data


CURRENCY_HELP = "Three-letter code, e.g. USD, EUR"


def suggest_attrs(kind: str) -> dict[str, str]:
    """Search-as-you-type for a typed name: htmx fills a <datalist> the input points at."""
    return {
        "list": f"{kind}-suggestions",
        "autocomplete": "off",
        "hx-get": reverse_lazy(f"contacts:{kind}_suggest"),
        "hx-trigger": "input changed delay:250ms",
        "hx-target": f"#{kind}-suggestions",
        "hx-swap": "innerHTML",
    }


class DealForm(forms.Form):
    """Create or edit a deal. Organization and contact are typed names (picked or new)."""

    title = forms.CharField(max_length=200)
    amount = amount_field(required=False)
    currency = forms.RegexField(
        regex=r"^[A-Za-z]{3}$",
        initial="USD",
        help_text=CURRENCY_HELP,
        error_messages={"invalid": "Use a three-letter currency code, e.g. USD."},
    )
    expected_close_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    probability_override = forms.IntegerField(
        required=False, min_value=0, max_value=100, label="Probability override (%)"
    )
    next_step = forms.CharField(max_length=200, required=False)
    product = forms.CharField(max_length=100, required=False)
    organization_name = forms.CharField(
        max_length=200,
        required=False,
        label="Organization",
        help_text="Type to search; a new name is created.",
        widget=forms.TextInput(attrs=suggest_attrs("organization")),
    )
    person_name = forms.CharField(
        max_length=200,
        required=False,
        label="Primary contact",
        help_text="Type to search; a new name is created.",
        widget=forms.TextInput(attrs=suggest_attrs("person")),
    )

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].upper()

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("Give the deal a title.")
        return title


class NewDealForm(DealForm):
    """A new deal in `stage`: besides the fields, whatever the stage's entry criteria ask
    for that is not a field (a checklist confirmation, a contact in a role, an activity
    already done), so a gated column's "+ New deal" can be completed in one step."""

    def __init__(self, *args: Any, stage: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entry_fields: list[str] = []
        self.criteria = list(stage.criteria.all())
        for criterion in self.criteria:
            name, field = _entry_field(criterion)
            if field is not None and name not in self.fields:
                self.fields[name] = field
                self.entry_fields.append(name)

    def items(self) -> dict[str, Any]:
        """The entry items filled in: checklist ids, (type, subject), (role, person name)."""
        data = self.cleaned_data
        return {
            "checklist_ids": tuple(
                int(k[6:]) for k in self.entry_fields if k.startswith("check_") and data.get(k)
            ),
            "activities": tuple(
                (k[9:], data[k])
                for k in self.entry_fields
                if k.startswith("activity_") and data.get(k)
            ),
            "roles": tuple(
                (k[5:], data[k])
                for k in self.entry_fields
                if k.startswith("role_") and data.get(k)
            ),
        }


# A `field_required` criterion's deal field, as the deal form names it.
FORM_FIELD = {"organization": "organization_name", "person": "person_name"}


class QuickDealForm(NewDealForm):
    """The board's inline quick add: a title, the organization and the amount, and exactly
    what the column's entry criteria ask for besides (fields, checklist confirmations,
    contacts in a role, activities done); nothing else. The currency is the default one."""

    BASIC = ("title", "organization_name", "amount")

    def __init__(self, *args: Any, stage: Any, **kwargs: Any) -> None:
        # Ids of its own: several columns' forms may be open at once.
        kwargs.setdefault("auto_id", f"quick-{stage.pk}-%s")
        super().__init__(*args, stage=stage, **kwargs)
        keep = {*self.BASIC, *self.entry_fields}
        for criterion in self.criteria:
            if criterion.kind == CriterionKind.FIELD_REQUIRED:
                keep.add(FORM_FIELD.get(criterion.field_name, criterion.field_name))
        for name in [n for n in self.fields if n not in keep and n != "currency"]:
            del self.fields[name]
        self.fields["currency"].widget = forms.HiddenInput()
        self.order_fields(self.BASIC)
        for name in ("organization_name", "person_name"):
            if name in self.fields:
                # No search-as-you-type in a column: its suggestion lists are the page's.
                self.fields[name].widget = forms.TextInput()
                self.fields[name].help_text = ""

    def add_failures(self, failures: list[Failure]) -> list[Failure]:
        """Put each gate failure on the field that fixes it; return those no field fixes
        (a rule only time meets, such as "no skipping")."""
        left = []
        for failure in failures:
            name = _failure_field(failure)
            if name in self.fields:
                self.add_error(name, failure.message)
            else:
                left.append(failure)
        return left


def _failure_field(failure: Failure) -> str:
    match failure.kind:
        case CriterionKind.FIELD_REQUIRED:
            return FORM_FIELD.get(failure.fix, failure.fix)
        case CriterionKind.AMOUNT_AT_LEAST | "won_amount":
            return "amount"
        case CriterionKind.CHECKLIST:
            return f"check_{failure.fix}"
        case CriterionKind.CONTACT_ROLE:
            return f"role_{failure.fix}"
        case CriterionKind.ACTIVITY_DONE:
            return f"activity_{failure.fix}"
    return ""


def _entry_field(criterion: Any) -> tuple[str, forms.Field | None]:
    match criterion.kind:
        case CriterionKind.CHECKLIST:
            return f"check_{criterion.pk}", forms.BooleanField(
                required=False, label=criterion.requirement
            )
        case CriterionKind.CONTACT_ROLE:
            role = ContactRole(criterion.contact_role).label
            return f"role_{criterion.contact_role}", forms.CharField(
                required=False,
                max_length=200,
                label=f"{criterion.requirement}: who is the {role.lower()}?",
                help_text="Their name; they are added at the organization if new.",
            )
        case CriterionKind.ACTIVITY_DONE:
            return f"activity_{criterion.activity_type}", forms.CharField(
                required=False,
                max_length=200,
                label=criterion.requirement,
                help_text="What happened (subject); it is logged as done.",
            )
    return "", None


class DealEditForm(DealForm):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    stage = forms.ModelChoiceField(queryset=None, empty_label=None)  # type: ignore[arg-type]

    def __init__(self, *args: Any, pipeline_stages: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["stage"]
        field.queryset = pipeline_stages.select_related("pipeline").order_by(
            "pipeline__position", "pipeline_id", "position"
        )
        # Stages of every pipeline are offered: moving to another pipeline is a move too.
        field.label_from_instance = lambda stage: f"{stage.pipeline.name} · {stage.name}"


class ActivityForm(forms.Form):
    type = forms.ChoiceField(choices=ActivityType.choices)
    subject = forms.CharField(max_length=200)
    due_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        label="Due",
    )
    done = forms.BooleanField(required=False, label="Already done")
    note = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )


class ReassignForm(forms.Form):
    owner = forms.ModelChoiceField(queryset=None, empty_label=None)  # type: ignore[arg-type]
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    def __init__(self, *args: Any, owners: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = owners


class CloseForm(forms.Form):
    """Quick "mark won" (amount required) or "mark lost" (reason required)."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    amount = amount_field(required=False)
    lost_reason = forms.CharField(max_length=200, required=False)


class BulkMoveForm(forms.Form):
    deals = forms.TypedMultipleChoiceField(coerce=int, choices=())
    stage = forms.IntegerField(min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ids are checked by the service against what the user may see, not here.
        ids = self.data.getlist("deals") if hasattr(self.data, "getlist") else []
        self.fields["deals"].choices = [(i, i) for i in ids]
