"""Login lockout with its own limit per key: per user at one address, per address, per user.

django-axes counts failures per key (AXES_LOCKOUT_PARAMETERS) but compares every key with
one AXES_FAILURE_LIMIT. The keys need different limits: a user mistyping from their own
address is locked after a few guesses; one address spraying passwords across many
usernames after more (an office behind one NAT shares an address); one username guessed
from many addresses after many more (a lower limit would let anyone lock a user out
from everywhere). settings.LOGIN_FAILURE_LIMITS holds them.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_failure_limit, get_lockout_parameters
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def lockout_parameters(request: Any, credentials: dict[str, Any] | None = None) -> list[list[str]]:
    """Every key that has a limit (a limit of 0 turns that key off)."""
    return [list(key) for key, limit in settings.LOGIN_FAILURE_LIMITS.items() if limit > 0]


class LoginLockoutHandler(AxesDatabaseHandler):
    """axes' database handler, each key measured against its own limit."""

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        """Failures of the key nearest its limit, shifted onto AXES_FAILURE_LIMIT's scale.

        axes locks out when this reaches AXES_FAILURE_LIMIT; a key with n failures and
        limit L reads as n - L + AXES_FAILURE_LIMIT, which reaches it exactly at n = L.
        """
        scale = get_failure_limit(request, credentials)
        keys = get_lockout_parameters(request, credentials)
        attempts_per_key = self.get_user_attempts(request, credentials)
        nearest = 0
        for key, attempts in zip(keys, attempts_per_key, strict=True):
            limit = settings.LOGIN_FAILURE_LIMITS[tuple(key)]
            count = attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
            if count:
                nearest = max(nearest, count - limit + scale)
        return nearest

    def reset_user_attempts(
        self, request: HttpRequest, credentials: dict[str, Any] | None = None
    ) -> int:
        """A successful login forgets that user's failures from that address only.

        axes would also clear the address's and the username's counters: an attacker
        holding one valid account could then reset their address's count by logging in.
        """
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        ).delete()
        return count
