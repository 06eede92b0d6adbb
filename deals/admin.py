"""Django admin for deals. A stage change here is a move like any other: gate, history."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from deals import services
from deals.activities import lock_deals, refresh_activity_times
from deals.models import Activity, Deal, GateEvent, MoveSource, StageChange
from stages import gate


class DealAdminForm(forms.ModelForm):
    class Meta:
        model = Deal
        fields = (
            "title",
            "organization",
            "person",
            "owner",
            "stage",
            "amount",
            "currency",
            "expected_close_date",
            "probability_override",
            "next_step",
            "lost_reason",
            "product",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        stage = data.get("stage")
        if self.instance.pk and stage and "stage" in self.changed_data:
            candidate = Deal.objects.get(pk=self.instance.pk)
            for name in ("amount", "lost_reason", "expected_close_date", "person", "next_step"):
                if name in data:
                    setattr(candidate, name, data[name])
            failures = gate.evaluate(candidate, stage)
            if failures:
                raise forms.ValidationError([f.message for f in failures])
        return data


@admin.register(Deal)
class DealAdmin(admin.ModelAdmin):
    form = DealAdminForm
    list_display = ("title", "stage", "owner", "amount", "currency", "expected_close_date")
    list_filter = ("pipeline", "stage")
    search_fields = ("title",)
    raw_id_fields = ("organization", "person")
    readonly_fields = ("version", "stage_entered_at", "closed_at")

    def save_model(self, request: HttpRequest, obj: Deal, form: Any, change: bool) -> None:
        """New deals and stage changes go through the deal services, never a bare save."""
        data = {k: v for k, v in form.cleaned_data.items() if k != "stage"}
        if not change:
            owner = data.pop("owner")
            fields = {k: v for k, v in data.items() if k in services.EDITABLE_FIELDS}
            created = services.create_deal(
                by=request.user, owner=owner, stage=form.cleaned_data["stage"], **fields
            )
            obj.pk = created.pk
            return
        current = Deal.objects.get(pk=obj.pk)
        changes = {k: v for k, v in data.items() if k in services.EDITABLE_FIELDS}
        to_stage = form.cleaned_data["stage"] if "stage" in form.changed_data else None
        services.update_deal(
            current,
            changes,
            by=request.user,
            expected_version=current.version,
            to_stage=to_stage,
            source=MoveSource.ADMIN,
        )
        if "owner" in form.changed_data:
            services.reassign_deal(
                Deal.objects.get(pk=obj.pk),
                new_owner=form.cleaned_data["owner"],
                by=request.user,
                expected_version=Deal.objects.get(pk=obj.pk).version,
            )


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and telemetry are append-only: viewable, never editable or deletable."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StageChange)
class StageChangeAdmin(ReadOnlyAdmin):
    list_display = ("deal", "seq", "from_stage", "to_stage", "at", "by", "source")
    list_filter = ("source",)


@admin.register(GateEvent)
class GateEventAdmin(ReadOnlyAdmin):
    list_display = ("deal", "stage", "requirement", "outcome", "by", "source", "at")
    list_filter = ("outcome", "source")


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    """Activities are the deal's record of work, not derived data, so the admin may
    still add, correct and delete them; like every activity write it locks the deals
    first and recounts their kept activity times (`deals.activities`), the old deal's
    as well when an activity moves."""

    list_display = ("subject", "type", "deal", "owner", "due_at", "done")
    list_filter = ("type", "done")
    raw_id_fields = ("deal", "person")

    def save_model(self, request: HttpRequest, obj: Activity, form: Any, change: bool) -> None:
        with transaction.atomic():
            before = Activity.objects.filter(pk=obj.pk).values_list("deal_id", flat=True)
            deals = lock_deals({obj.deal_id, *(before if change else ())})
            super().save_model(request, obj, form, change)
            refresh_activity_times(deals, locked=True)

    def delete_model(self, request: HttpRequest, obj: Activity) -> None:
        self.delete_queryset(request, Activity.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Activity]) -> None:
        with transaction.atomic():
            deals = lock_deals(queryset.values_list("deal_id", flat=True))
            super().delete_queryset(request, queryset)
            refresh_activity_times(deals, locked=True)
