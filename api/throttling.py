"""Per-token rate limit (per user for sessions), answering 429 with Retry-After.

Counted by common.ratelimit, which keeps counting in the process while the cache
(Redis) is down: an outage of the limiter must not become an outage of the API.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from api.models import ApiToken
from common import ratelimit


class PerTokenThrottle(BaseThrottle):
    retry_after = 1

    def allow_request(self, request: Any, view: Any) -> bool:
        limit, window = settings.RATE_LIMITS["api"]
        if isinstance(request.auth, ApiToken):
            who = f"token:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            who = f"user:{request.user.pk}"
        else:
            who = f"ip:{self.get_ident(request)}"
        number, self.retry_after = ratelimit.hits(f"ratelimit:api:{who}", window)
        return number <= limit

    def wait(self) -> float:
        return self.retry_after
