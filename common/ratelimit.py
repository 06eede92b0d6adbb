"""A small fixed-window rate limit per user and action, kept in the cache."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse


def rate_limited(
    action: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Answer 429 once a user exceeds settings.RATE_LIMITS[action] requests per window."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            limit, window = settings.RATE_LIMITS[action]
            who = (
                request.user.pk
                if request.user.is_authenticated
                else request.META.get("REMOTE_ADDR", "anonymous")
            )
            key = f"ratelimit:{action}:{who}:{int(time.time() // window)}"
            cache.add(key, 0, timeout=window)
            try:
                count = cache.incr(key)
            except ValueError:  # evicted between add and incr: start again
                cache.set(key, 1, timeout=window)
                count = 1
            if count > limit:
                response = HttpResponse(
                    "Too many requests; wait a moment and try again.",
                    status=429,
                    content_type="text/plain",
                )
                response["Retry-After"] = str(window)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
