"""Templates ask the access policy, never a role: `{% if policy.can_configure %}`."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.policy import UserPolicy, for_user


def policy(request: HttpRequest) -> dict[str, UserPolicy]:
    """The policy's answers for the requesting user; each is worked out when first asked."""
    return {"policy": for_user(getattr(request, "user", None))}
