"""Read-only Django admin for configuration.

Changes go through the screens at /settings/ (`stages.views`), whose services enforce
the rules (no deleting a stage with history, one active stage per kind, …) and write the
audit trail. An editable Django admin would bypass both, so here it only shows rows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from stages.models import ConfigChange, EntryCriterion, Pipeline, Stage


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CriterionInline(admin.TabularInline):
    model = EntryCriterion
    fields = ("position", "kind", "requirement")
    readonly_fields = ("requirement",)
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Pipeline)
class PipelineAdmin(ReadOnlyAdmin):
    list_display = ("name", "position", "is_archived")
    list_filter = ("is_archived",)


@admin.register(Stage)
class StageAdmin(ReadOnlyAdmin):
    list_display = ("name", "pipeline", "position", "kind", "probability", "is_archived")
    list_filter = ("pipeline", "kind", "is_archived")
    list_select_related = ("pipeline",)
    inlines = [CriterionInline]


@admin.register(ConfigChange)
class ConfigChangeAdmin(ReadOnlyAdmin):
    list_display = ("at", "by", "summary", "pipeline")
    list_filter = ("subject_type", "action")
    list_select_related = ("by", "pipeline")
    search_fields = ("summary",)
    date_hierarchy = "at"
