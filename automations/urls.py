"""Settings > Automations, mounted at /settings/automations/."""

from __future__ import annotations

from django.urls import path

from automations import views

app_name = "automations"

urlpatterns = [
    path("", views.rule_list, name="rules"),
    path("new/", views.rule_new, name="new"),
    path("recipes/<slug:slug>/add/", views.recipe_add, name="recipe_add"),
    path("<int:rule_id>/", views.rule_edit, name="edit"),
    path("<int:rule_id>/toggle/", views.rule_toggle, name="toggle"),
    path("<int:rule_id>/delete/", views.rule_delete, name="delete"),
    path("<int:rule_id>/runs/", views.rule_runs, name="runs"),
    path("<int:rule_id>/test/", views.rule_test, name="test"),
]
