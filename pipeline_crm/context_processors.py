"""Navigation for the base template: each app contributes links through `nav_items`."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

# (url name, label, who sees it): "all", "staff" (managers and admins), "admin".
NAV = [
    ("my_activities", "My activities", "all"),
    ("contacts:organizations", "Organizations", "all"),
    ("contacts:people", "People", "all"),
    ("reports:dashboard", "Dashboard", "all"),
    ("reports:forecast", "Forecast", "all"),
    ("stages:pipelines", "Settings", "admin"),
    ("import_start", "Import", "staff"),
    ("accounts:audit", "Audit", "admin"),
    ("api_tokens", "API tokens", "all"),
    ("api_webhooks", "Webhooks", "staff"),
    ("automations:rules", "Automations", "staff"),
]

HEADER_INCLUDES = ["deals/_search_box.html", "deals/_bell.html"]


def navigation(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"debug_demo": settings.DEBUG}
    items = []
    for name, label, audience in NAV:
        if audience == "admin" and not user.is_admin:
            continue
        if audience == "staff" and not (user.is_admin or user.is_manager):
            continue
        items.append({"url": reverse(name), "label": label})
    return {"nav_items": items, "header_includes": HEADER_INCLUDES, "debug_demo": settings.DEBUG}
