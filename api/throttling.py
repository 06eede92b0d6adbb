"""Per-token rate limit (per user for sessions), answering 429 with Retry-After.

A fixed window in the cache, like common.ratelimit. When the cache (Redis) is down the
request is let through: an outage of the limiter must not become an outage of the API.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from api.models import ApiToken

log = logging.getLogger(__name__)


class PerTokenThrottle(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        limit, window = settings.RATE_LIMITS["api"]
        now = time.time()
        self.retry_after = int(window - now % window) or 1
        if isinstance(request.auth, ApiToken):
            who = f"token:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            who = f"user:{request.user.pk}"
        else:
            who = f"ip:{self.get_ident(request)}"
        key = f"ratelimit:api:{who}:{int(now // window)}"
        try:
            cache.add(key, 0, timeout=window)
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr: this is the window's first
            return True
        except Exception:  # any cache failure: serve unthrottled, and say so in the log
            log.warning("API rate limit skipped: cache unavailable", exc_info=True)
            return True
        return count <= limit

    def wait(self) -> float:
        return self.retry_after
