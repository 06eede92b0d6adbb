"""Who is calling: a personal token (`Authorization: Bearer pcrm_…`) or the session."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions, permissions

from api import tokens
from api.models import ApiToken


class TokenAuthentication(authentication.BaseAuthentication):
    """A bearer token acts as its user; a revoked, expired or unknown token is a 401."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            text = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed token.") from None
        token = tokens.authenticate(text)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return f'{self.keyword} realm="api"'


class TokenScope(permissions.BasePermission):
    """Signed in; and a read-only token may only read. Sessions have the user's full rights."""

    message = "This token is read-only."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated and request.user.is_active):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        token = request.auth
        return not isinstance(token, ApiToken) or token.can_write
