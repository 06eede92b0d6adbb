"""Recording security-relevant events. One function writes; receivers hook Django's auth.

Auth events arrive through Django's and django-axes' own signals (login, logout, failed
login, lockout): there is no other place to observe them. Domain events (overrides,
configuration, exports, role changes) call `record` directly from their service.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import AuditEvent, AuditKind, User
from common.client_address import client_address


def client_ip(request: HttpRequest | None) -> str | None:
    return None if request is None else client_address(request)


def record(
    kind: str,
    *,
    user: User | None = None,
    username: str = "",
    request: HttpRequest | None = None,
    detail: str = "",
) -> AuditEvent:
    return AuditEvent.objects.create(
        kind=kind,
        user=user if user is not None and user.pk else None,
        username=(username or (user.username if user is not None else ""))[:150],
        ip=client_ip(request),
        detail=detail[:500],
    )


@receiver(user_logged_in)
def _logged_in(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    record(AuditKind.LOGIN, user=user, request=request)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        record(AuditKind.LOGOUT, user=user, request=request)


@receiver(user_login_failed)
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    record(AuditKind.LOGIN_FAILED, username=str(credentials.get("username", "")), request=request)


def _locked_out(sender: Any, request: HttpRequest, username: str, **kwargs: Any) -> None:
    record(AuditKind.LOCKOUT, username=username or "", request=request)


def connect() -> None:
    from axes.signals import user_locked_out

    user_locked_out.connect(_locked_out, dispatch_uid="audit-lockout")
