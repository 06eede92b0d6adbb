from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from accounts import audit
from accounts.models import AuditEvent, AuditKind, Team, User

WATCHED = ("role", "team", "is_active", "is_superuser")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "role", "team", "is_active")
    list_filter = ("role", "team", "is_active")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Pipeline CRM", {"fields": ("role", "team")}))

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        watched = [
            f for f in ("role", "team", "is_active", "is_superuser") if f in form.changed_data
        ]
        if change and watched:
            kind = (
                AuditKind.USER_DEACTIVATED
                if "is_active" in watched and not obj.is_active
                else AuditKind.ROLE_CHANGE
            )
            detail = ", ".join(f"{f}={getattr(obj, f)}" for f in watched)
            audit.record(
                kind, user=request.user, request=request, detail=f"{obj.username}: {detail}"
            )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: audit rows cannot be added, changed or deleted, not even by admins."""

    list_display = ("at", "kind", "username", "ip", "detail")
    list_filter = ("kind",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "manager")
