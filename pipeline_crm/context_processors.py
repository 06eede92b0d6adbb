"""Navigation for the base template: each app contributes links through `nav_items`."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from accounts import policy


def _everyone(user: object) -> bool:
    return True


# (url name, label, the policy's question whether the user may open it).
NAV = [
    ("my_activities", "My activities", _everyone),
    ("contacts:organizations", "Organizations", _everyone),
    ("contacts:people", "People", _everyone),
    ("reports:dashboard", "Dashboard", _everyone),
    ("reports:forecast", "Forecast", _everyone),
    ("stages:pipelines", "Settings", policy.can_configure),
    ("import_start", "Import", policy.can_import),
    ("accounts:audit", "Audit", policy.can_view_audit),
    ("api_tokens", "API tokens", _everyone),
    ("api_webhooks", "Webhooks", policy.can_manage_webhooks),
    ("automations:rules", "Automations", policy.can_manage_automations),
]

HEADER_INCLUDES = ["deals/_search_box.html", "deals/_bell.html"]


def navigation(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"debug_demo": settings.DEBUG}
    items = [{"url": reverse(name), "label": label} for name, label, may in NAV if may(user)]
    return {"nav_items": items, "header_includes": HEADER_INCLUDES, "debug_demo": settings.DEBUG}
