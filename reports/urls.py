from __future__ import annotations

from django.urls import path  # noqa: F401 - helpers add their routes below

app_name = "reports"
# Dashboard routes (reports/dashboard/) and forecast routes (reports/forecasts) go here.
urlpatterns: list = []
