"""The customer side, mounted at /contacts/: organizations, people and their pickers."""

from __future__ import annotations

from django.urls import path

from contacts import views

app_name = "contacts"

urlpatterns = [
    path("organizations/", views.organization_list, name="organizations"),
    path("organizations/new/", views.organization_create, name="organization_create"),
    path("organizations/pick/", views.organization_pick, name="organization_pick"),
    path("organizations/<int:pk>/", views.organization_detail, name="organization"),
    path("organizations/<int:pk>/edit/", views.organization_edit, name="organization_edit"),
    path(
        "organizations/suggest/",
        views.suggest,
        {"kind": "organization"},
        name="organization_suggest",
    ),
    path("people/suggest/", views.suggest, {"kind": "person"}, name="person_suggest"),
    path("people/", views.person_list, name="people"),
    path("people/new/", views.person_create, name="person_create"),
    path("people/pick/", views.person_pick, name="person_pick"),
    path("people/<int:pk>/", views.person_detail, name="person"),
    path("people/<int:pk>/edit/", views.person_edit, name="person_edit"),
]
