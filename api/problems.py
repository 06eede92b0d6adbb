"""Every refusal of the API as RFC 9457 problem+json, from one exception handler.

Domain errors are answered through `common.errors.describe`, the one mapping every door
shares (404 not visible, 403 not allowed, 409 stale, 422 rule failed, 400 bad input,
429 too many requests); a refused move lists each missing item with its criterion id
and machine-readable kind.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from accounts import policy
from common.errors import DomainError, RuleFailed, describe

CONTENT_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Rule failed",
    428: "Precondition required",
    429: "Too many requests",
}


def problem(
    status_code: int,
    detail: str,
    *,
    kind: str = "",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {
        "type": f"urn:pipeline-crm:problem:{kind}" if kind else "about:blank",
        "title": TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
        **extra,
    }
    return Response(body, status=status_code, headers=headers, content_type=CONTENT_TYPE)


def failure_items(failures: list[Any]) -> list[dict[str, Any]]:
    """Each missing item: criterion id (None for built-in rules), machine-readable kind."""
    return [
        {
            "criterion_id": getattr(f, "criterion_id", None),
            "kind": getattr(f, "kind", "rule"),
            "message": getattr(f, "message", str(f)),
            "fix": getattr(f, "fix", ""),
        }
        for f in failures
    ]


def _kebab(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def _flatten(errors: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested validation errors as a flat list of {field, message}."""
    if isinstance(errors, dict):
        return [
            item
            for name, value in errors.items()
            for item in _flatten(value, f"{path}.{name}" if path else str(name))
        ]
    if isinstance(errors, list):
        return [item for value in errors for item in _flatten(value, path)]
    return [{"field": path or "non_field_errors", "message": str(errors)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        refusal = describe(exc)
        extra = dict(refusal.details)
        kind = _kebab(type(exc).__name__)
        if isinstance(exc, RuleFailed):
            extra["failures"] = failure_items(exc.failures)
            request = context.get("request")
            extra["override_allowed"] = bool(request and policy.can_override_gate(request.user))
        return problem(
            refusal.status, refusal.message, kind=kind, headers=refusal.headers, **extra
        )
    if isinstance(exc, Http404):
        return problem(404, "Not found.", kind="not-found")
    if isinstance(exc, RequestDataTooBig):
        return problem(413, "The request body is too large.", kind="too-large")
    if isinstance(exc, exceptions.ValidationError):
        return problem(
            400, "The request is not valid.", kind="invalid", errors=_flatten(exc.detail)
        )
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait)))
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
            exc.status_code = status.HTTP_401_UNAUTHORIZED
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return problem(exc.status_code, detail, kind=exc.default_code, headers=headers)
    return None
