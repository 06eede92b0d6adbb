"""The header bell: the unread count, fetched only if a template shows it (one query)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from deals.notifications import unread_count


def notifications(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Lazy: fragments rendered for htmx never pay for a count they do not show.
    return {"unread_notifications": SimpleLazyObject(lambda: unread_count(user))}
