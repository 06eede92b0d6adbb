"""Forms of the import pages: the upload, and the mapping the preview edits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms

from accounts import policy
from imports.mapping import Mapping
from imports.models import ImportKind, ImportMapping
from imports.parsing import DATE_ORDERS
from imports.preview import Preview
from stages.models import Pipeline, Stage

if TYPE_CHECKING:
    from accounts.models import User

CSV_HELP = "A .csv file (comma, semicolon or tab separated; UTF-8 or Windows-1252)."


class UploadForm(forms.Form):
    kind = forms.ChoiceField(choices=ImportKind.choices, initial=ImportKind.DEALS, label="Import")
    file = forms.FileField(label="CSV file", help_text=CSV_HELP)
    pipeline = forms.ModelChoiceField(
        queryset=Pipeline.objects.filter(is_archived=False),
        required=False,
        empty_label=None,
        help_text="Deals only: the pipeline whose stages the file's stages map to.",
    )
    saved = forms.ModelChoiceField(
        queryset=ImportMapping.objects.all(),
        required=False,
        label="Saved mapping",
        empty_label="Guess from the headers",
    )
    organizations = forms.FileField(
        required=False,
        label="Organization details (optional)",
        help_text="With deals: a file of organizations (name, sector, employees, revenue), "
        "e.g. the sample's accounts.csv. They are created or updated first.",
    )
    team_members = forms.FileField(
        required=False,
        label="Sales teams (optional)",
        help_text="With deals: member, manager, team (e.g. sales_teams.csv), used when you "
        "choose to create missing users and teams.",
    )
    products = forms.FileField(
        required=False,
        label="Products (optional)",
        help_text="With deals: product names, to correct spellings like “GTXPro”.",
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        name = (upload.name or "").lower()
        if not name.endswith((".csv", ".txt", ".tsv")):
            raise forms.ValidationError("Choose a .csv file (export it from your spreadsheet).")
        return upload


NOT_IMPORTED = ("", "— not imported —")


def _user_choices(user: User) -> list[tuple[str, str]]:
    people = policy.assignable_owners(user)
    return [
        (str(u.pk), f"{u.display_name} ({u.username})")
        for u in people.order_by("first_name", "last_name", "username")
    ]


class MappingForm(forms.Form):
    """Columns, stage values, unknown owners and options, built from a preview."""

    def __init__(self, *args: Any, preview: Preview, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.preview = preview
        self.user = user
        mapping = preview.mapping
        job = preview.job
        headers = [(h, h) for h in preview.headers]
        self.column_names: list[str] = []
        for item in preview.fields:
            name = f"col_{item.name}"
            self.fields[name] = forms.ChoiceField(
                label=item.label,
                choices=[NOT_IMPORTED, *headers],
                required=False,
                initial=mapping.column(item.name),
                help_text=item.help,
            )
            self.column_names.append(name)
        self.stage_names: list[tuple[str, str, int]] = []
        self.owner_names: list[tuple[str, str, int]] = []
        if job.kind == ImportKind.DEALS:
            self.fields["pipeline"] = forms.ModelChoiceField(
                queryset=Pipeline.objects.filter(is_archived=False),
                initial=job.pipeline_id,
                empty_label=None,
            )
            stages = list(
                Stage.objects.filter(pipeline_id=job.pipeline_id, is_archived=False).order_by(
                    "position", "id"
                )
            )
            stage_choices = [("", "— not imported (row fails) —")] + [
                (str(s.pk), f"{s.name} ({s.get_kind_display().lower()})") for s in stages
            ]
            for index, (value, count, stage_id) in enumerate(preview.stage_values):
                name = f"stage_{index}"
                self.fields[name] = forms.ChoiceField(
                    label=value,
                    choices=stage_choices,
                    required=False,
                    initial=str(stage_id or ""),
                )
                self.stage_names.append((name, value, count))
            open_choices = [("", "— automatic —")] + [
                (str(s.pk), s.name) for s in stages if s.is_open
            ]
            self.fields["engaged_stage"] = forms.ChoiceField(
                label="Stage entered on the engage date (closed deals)",
                choices=open_choices,
                required=False,
                initial=str(mapping.engaged_stage or ""),
            )
            self.fields["default_lost_reason"] = forms.CharField(
                label="Lost reason when a lost row has none",
                required=False,
                max_length=200,
                initial=mapping.default_lost_reason,
                help_text="Leave empty to report such rows instead (a lost deal needs one).",
            )
            self.fields["default_currency"] = forms.CharField(
                label="Currency when the file gives none",
                max_length=3,
                min_length=3,
                initial=mapping.default_currency,
            )
            if policy.can_override_gate(user):
                self.fields["override_reason"] = forms.CharField(
                    label="Import rows that fail entry criteria, with this reason",
                    required=False,
                    max_length=500,
                    initial=job.override_reason,
                    widget=forms.Textarea(attrs={"rows": 2}),
                    help_text="Empty: such rows are reported and not imported. The reason "
                    "is recorded on each overridden stage change.",
                )
            self.fields["run_automations"] = forms.BooleanField(
                label="Run automations for the imported deals",
                required=False,
                initial=job.run_automations,
                help_text="Off: automations ignore what this import creates, moves or "
                "closes (webhooks still hear of it).",
            )
        if job.kind in (ImportKind.DEALS, ImportKind.ACTIVITIES):
            user_choices = [("", "— unknown (row fails) —"), *_user_choices(user)]
            for index, (value, count) in enumerate(preview.unknown_owners):
                name = f"owner_{index}"
                self.fields[name] = forms.ChoiceField(
                    label=value,
                    choices=user_choices,
                    required=False,
                    initial=str(mapping.owners.get(value) or ""),
                )
                self.owner_names.append((name, value, count))
            if policy.can_create_users_on_import(user) and job.kind == ImportKind.DEALS:
                self.fields["create_missing"] = forms.BooleanField(
                    label="Create missing users and teams",
                    required=False,
                    initial=mapping.create_missing,
                    help_text="Unknown owners become reps (with their managers and teams "
                    "when a sales teams file was given); they get no password until you "
                    "set one.",
                )
        self.fields["date_order"] = forms.ChoiceField(
            label="Dates like 03/04/2017 are",
            choices=[("auto", "as the file shows (automatic)"), *DATE_ORDERS.items()],
            initial=mapping.date_order,
        )
        if job.kind == ImportKind.ORGANIZATIONS:
            self.fields["revenue_unit"] = forms.TypedChoiceField(
                label="Revenue is given in",
                coerce=int,
                choices=[(1, "units"), (1000, "thousands"), (1_000_000, "millions")],
                initial=mapping.revenue_unit,
            )
        self.fields["save_as"] = forms.CharField(
            label="Save this mapping as",
            required=False,
            max_length=100,
            help_text="Optional: reuse it for the next file of the same shape.",
        )

    def stage_fields(self) -> list[tuple[Any, int]]:
        return [(self[name], count) for name, _value, count in self.stage_names]

    def owner_fields(self) -> list[tuple[Any, int]]:
        return [(self[name], count) for name, _value, count in self.owner_names]

    def column_fields(self) -> list[Any]:
        return [self[name] for name in self.column_names]

    def mapping(self) -> Mapping:
        """The job's mapping with this form's choices applied (call after is_valid)."""
        data = self.cleaned_data
        mapping = Mapping.from_json(self.preview.job.mapping)
        mapping.columns = {
            name.removeprefix("col_"): data[name] for name in self.column_names if data.get(name)
        }
        for name, value, _count in self.stage_names:
            mapping.stages[value] = int(data[name]) if data.get(name) else None
        for name, value, _count in self.owner_names:
            if data.get(name):
                mapping.owners[value] = int(data[name])
            else:
                mapping.owners.pop(value, None)
        if "engaged_stage" in data:
            mapping.engaged_stage = int(data["engaged_stage"]) if data["engaged_stage"] else None
            mapping.default_lost_reason = data["default_lost_reason"].strip()
            mapping.default_currency = data["default_currency"].upper()
        if "create_missing" in self.fields:
            mapping.create_missing = bool(data.get("create_missing"))
        mapping.date_order = data["date_order"]
        if "revenue_unit" in data:
            mapping.revenue_unit = data["revenue_unit"]
        return mapping
