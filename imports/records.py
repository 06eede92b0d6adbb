"""What a batch writer reports and records: per-row outcomes, and ImportedRecord rows.

Every writer's `write` runs inside the runner's transaction for its batch and returns
one `Outcome` per row; what it creates or changes is listed through a `Recorder`, so the
import can be undone as a whole (undo.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from imports import bulk
from imports.models import ImportAction, ImportedRecord
from imports.rows import Problem

if TYPE_CHECKING:
    from imports.models import ImportJob


DEAL = "deals.deal"
ORGANIZATION = "contacts.organization"
PERSON = "contacts.person"
ACTIVITY = "deals.activity"
USER = "accounts.user"
TEAM = "accounts.team"


@dataclass
class Outcome:
    line: int
    key: str  # the row's external id or name, for the summary
    result: str  # created, updated, unchanged, skipped, failed
    object_id: int | None = None
    problems: list[Problem] = field(default_factory=list)


def outcome_of(line: int, key: str, problems: list[Problem]) -> Outcome:
    skipped = any(p.kind == "duplicate_id" for p in problems)
    return Outcome(line, key, "skipped" if skipped else "failed", None, problems)


class Recorder:
    """Collects ImportedRecord rows for one batch; one insert at the end."""

    def __init__(self, job: ImportJob) -> None:
        self.job = job
        self.rows: list[dict[str, Any]] = []

    def created(self, model: str, object_id: int) -> None:
        self.rows.append(
            {
                "job_id": self.job.pk,
                "model": model,
                "object_id": object_id,
                "action": ImportAction.CREATED,
                "before": {},
            }
        )

    def updated(self, model: str, object_id: int, before: dict[str, Any]) -> None:
        self.rows.append(
            {
                "job_id": self.job.pk,
                "model": model,
                "object_id": object_id,
                "action": ImportAction.UPDATED,
                "before": before,
            }
        )

    def flush(self) -> None:
        bulk.insert(ImportedRecord, self.rows, returning=False)
        self.rows = []


def as_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
