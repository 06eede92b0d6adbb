"""A small fixed-window rate limit per user and action, kept in the cache.

The cache (Redis in production) only holds counters: when it cannot be reached, the
request must still be served. Counting then moves into the process (each web process
limits on its own, so a user gets up to the limit per process) and the log says so; the
cache is tried again after CACHE_RETRY_SECONDS rather than on every request, so a cache
that hangs instead of refusing costs one timeout per process per interval, not one per
request.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from time import monotonic
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest, HttpResponse

from common.client_address import client_address
from common.errors import TooManyRequests

log = logging.getLogger(__name__)

CACHE_RETRY_SECONDS = 5.0


class _LocalCounters:
    """Fixed-window counters in this process: the fallback while the cache is away."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._window_of: dict[str, int] = {}
        self.cache_down_until = 0.0

    def incr(self, key: str, window_index: int) -> int:
        with self._lock:
            # Forget windows that have passed, so the dict stays as small as the traffic.
            for stale in [k for k, w in self._window_of.items() if w < window_index]:
                del self._counts[stale], self._window_of[stale]
            self._window_of[key] = window_index
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


_local = _LocalCounters()


def _count(key: str, window: int, window_index: int) -> int:
    """This request's number in its window: from the cache, or locally while it is down."""
    if monotonic() >= _local.cache_down_until:
        try:
            backend = caches["default"]
            if isinstance(backend, RedisCache):
                return _redis_count(backend, key, window)
            cache.add(key, 0, timeout=window)
            try:
                return cache.incr(key)
            except ValueError:  # evicted between add and incr: start again
                cache.set(key, 1, timeout=window)
                return 1
        # Any cache backend's error (redis, memcached, connection or timeout): the
        # counter is not worth failing a request over.
        except Exception as error:
            _local.cache_down_until = monotonic() + CACHE_RETRY_SECONDS
            log.warning(
                "rate limit cache unavailable (%s: %s); counting in this process for %.0f s",
                type(error).__name__,
                error,
                CACHE_RETRY_SECONDS,
            )
    return _local.incr(key, window_index)


def _redis_count(backend: RedisCache, key: str, window: int) -> int:
    """Count this request in the window's counter, and make the counter expire with the
    window unless it already does: one round trip. The cache API's add and incr take
    three (incr asks whether the key exists first), on every rate-limited request (every
    move). EXPIRE ... NX after INCR leaves no counter without an expiry, whatever
    happened to the key before (expired or evicted between two commands, or written by
    an older version): such a key would stay in Redis for good."""
    full_key = backend.make_and_validate_key(key)
    client = backend._cache.get_client(full_key, write=True)
    pipe = client.pipeline(transaction=False)
    pipe.incr(full_key)
    pipe.expire(full_key, window, nx=True)
    return int(pipe.execute()[0])


def hits(key: str, window: int) -> tuple[int, int]:
    """(this request's number, seconds until the window ends) for `key`'s current window."""
    now = time.time()
    window_index = int(now // window)
    number = _count(f"{key}:{window_index}", window, window_index)
    return number, max(1, int(window - now % window))


def rate_limited(
    action: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Refuse with TooManyRequests (429, Retry-After: the window) once a user exceeds
    settings.RATE_LIMITS[action] requests per window."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            limit, window = settings.RATE_LIMITS[action]
            who = (
                request.user.pk
                if request.user.is_authenticated
                else client_address(request) or "anonymous"
            )
            window_index = int(time.time() // window)
            key = f"ratelimit:{action}:{who}:{window_index}"
            if _count(key, window, window_index) > limit:
                raise TooManyRequests(
                    "Too many requests; wait a moment and try again.", retry_after=window
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
