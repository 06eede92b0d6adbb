from __future__ import annotations

from django.urls import path

from reports.dashboard import views as dashboard_views

app_name = "reports"
urlpatterns = [
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("dashboard/<slug:panel>.csv", dashboard_views.panel_csv, name="dashboard_csv"),
]
