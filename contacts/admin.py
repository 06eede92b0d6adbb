"""Django admin for organizations and people (superusers' back office).

Editing here is allowed: the only rules on these records are field validation, which the
admin's model forms apply too. Deleting a record a deal points at is refused by the
database (`on_delete=PROTECT`).
"""

from __future__ import annotations

from django.contrib import admin

from contacts.models import Organization, Person


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "sector", "employees", "annual_revenue", "website", "created_by")
    list_filter = ("sector",)
    search_fields = ("name",)
    list_select_related = ("created_by",)
    readonly_fields = ("created_by", "created_at")


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "job_title", "organization", "created_by")
    search_fields = ("name", "email")
    list_select_related = ("organization", "created_by")
    autocomplete_fields = ("organization",)
    readonly_fields = ("created_by", "created_at")
