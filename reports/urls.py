from __future__ import annotations

from django.urls import path

from reports.dashboard import views as dashboard_views

app_name = "reports"
# Dashboard routes (reports/dashboard/) and forecast routes (reports/forecasts) go here.
urlpatterns: list = []
urlpatterns += [
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("dashboard/<slug:panel>.csv", dashboard_views.panel_csv, name="dashboard_csv"),
    path("dashboard/panel/<slug:panel>/", dashboard_views.panel_page, name="dashboard_panel"),
]

# Forecast page and its CSV (background jobs fill the tables).
from reports import views_forecast  # noqa: E402

urlpatterns += [
    path("forecast/", views_forecast.forecast, name="forecast"),
    path("forecast.csv", views_forecast.forecast_csv, name="forecast_csv"),
]
