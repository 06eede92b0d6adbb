"""The domain errors every action raises, and the one mapping from an error to an answer.

Actions (the services) raise these; nothing else decides what a refusal looks like on
the wire. `describe` turns any of them into (status, message, details); the web's
`DomainErrorMiddleware` and, later, the API answer from it, so a refusal means the same
through every door:

| error | status | carries |
|---|---|---|
| NotVisible | 404 | (a record the user may not see, answered like one that does not exist) |
| NotAllowed | 403 | (the user sees it but may not do this) |
| StaleVersion | 409 | `current`: the object as it is now |
| RuleFailed | 422 | `failures`: each missing item |
| BadInput | 400 | |
| TooManyRequests | 429 | `retry_after` seconds |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DomainError(Exception):
    """A refused action, with a message fit to show the user."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, Any]:
        """Machine-readable facts beyond the message (for the API); none by default."""
        return {}


class NotVisible(DomainError):
    """The record does not exist or the user may not see it (never tells which)."""

    status = 404

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)


class NotAllowed(DomainError):
    """The user may see the record but may not do this to it."""

    status = 403


class StaleVersion(DomainError):
    """Someone else changed the record since the user read it; `current` is how it is now."""

    status = 409

    def __init__(self, message: str, *, current: Any = None) -> None:
        super().__init__(message)
        self.current = current

    def details(self) -> dict[str, Any]:
        version = getattr(self.current, "version", None)
        return {} if version is None else {"current_version": version}


class RuleFailed(DomainError):
    """A business rule refused the action; `failures` lists each missing item."""

    status = 422

    def __init__(self, message: str, *, failures: list[Any] | None = None) -> None:
        super().__init__(message)
        self.failures = list(failures or [])

    def details(self) -> dict[str, Any]:
        return {"failures": [getattr(f, "message", str(f)) for f in self.failures]}


class BadInput(DomainError):
    """The request itself is malformed or names something that cannot be used."""

    status = 400


class TooManyRequests(DomainError):
    """A rate limit was hit; try again after `retry_after` seconds."""

    status = 429

    def __init__(self, message: str = "Too many requests.", *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def details(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}


@dataclass(frozen=True)
class Refusal:
    """What a door answers for a domain error."""

    status: int
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def describe(error: DomainError) -> Refusal:
    """The one mapping from a domain error to a status, message, details and headers."""
    headers = {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    return Refusal(error.status, error.message, error.details(), headers)
