"""Writes for personal API tokens: create (secret shown once), revoke, authenticate."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import audit, policy
from accounts.models import AuditKind
from api.models import ApiToken, TokenScope
from common.errors import BadInput, NotVisible

if TYPE_CHECKING:
    from accounts.models import User

# How stale `last_used_at` may get: one write a minute per token, not one per request.
LAST_USED_RESOLUTION_SECONDS = 60
MAX_TOKENS_PER_USER = 50


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the full token text, shown once and never stored


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def create_token(
    *, by: User, name: str, scope: str, expires_at: datetime | None = None
) -> NewToken:
    """Issue a token for `by` itself: 256 bits of secret, stored only as SHA-256."""
    name = name.strip()
    if not name or len(name) > 100:
        raise BadInput("Give the token a name of at most 100 characters.")
    if scope not in TokenScope.values:
        raise BadInput("Unknown token scope.")
    if expires_at is not None and expires_at <= timezone.now():
        raise BadInput("The expiry must be in the future.")
    if ApiToken.objects.usable().filter(user=by).count() >= MAX_TOKENS_PER_USER:
        raise BadInput("Too many active tokens; revoke one first.")
    prefix = secrets.token_hex(6)
    text = f"{settings.API_TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=by,
            name=name,
            prefix=prefix,
            secret_hash=_hash(text),
            scope=scope,
            expires_at=expires_at,
        )
        audit.record(AuditKind.CONFIG_CHANGE, user=by, detail=f"API token created: {token}")
    return NewToken(token, text)


def revoke_token(token_id: int, *, by: User) -> ApiToken:
    """Revoke one's own token; admins may revoke anyone's. Others' tokens are not found."""
    tokens = policy.revocable_tokens(by, ApiToken.objects.all())
    with transaction.atomic():
        token = tokens.select_for_update().filter(pk=token_id).first()
        if token is None:
            raise NotVisible("Token not found.")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.revoked_by = by
            token.save(update_fields=["revoked_at", "revoked_by"])
            audit.record(AuditKind.CONFIG_CHANGE, user=by, detail=f"API token revoked: {token}")
    return token


def authenticate(text: str) -> ApiToken | None:
    """The usable token whose secret is `text`, or None. Constant-time comparison."""
    start = settings.API_TOKEN_PREFIX
    if not text.startswith(start) or len(text) > 200:
        return None
    prefix = text[len(start) :].split("_", 1)[0]
    token = ApiToken.objects.usable().select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(text)):
        return None
    now = timezone.now()
    last = token.last_used_at
    if last is None or (now - last).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
