from __future__ import annotations

from django.urls import path

from imports import views

# Names stay un-namespaced, as they were when these lived in deals/urls.py.
urlpatterns = [
    path("", views.start, name="import_start"),
    path("<int:pk>/", views.preview, name="import_preview"),
    path("<int:pk>/confirm/", views.confirm, name="import_confirm"),
    path("<int:pk>/discard/", views.discard, name="import_discard"),
    path("<int:pk>/status/", views.status, name="import_status"),
    path("<int:pk>/summary.csv", views.summary, name="import_summary"),
    path("<int:pk>/undo/", views.undo_view, name="import_undo"),
]
