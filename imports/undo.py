"""Undoing an import as a whole.

This is the one sanctioned deletion of history. Stage history is append-only everywhere
else, and `StageChange.deal` is PROTECT so nothing removes it by accident; undoing an
import removes the deals the import created, so their history rows (and gate events)
are deleted first, explicitly, here. Deals the import only updated keep their history;
their changed fields are put back as they were (a move the import made is not reverted:
that would be a move, and moves go through the gate).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts import policy
from accounts.models import Team
from contacts.models import Organization, Person
from deals import events
from deals.activities import lock_deals, refresh_activity_times
from deals.models import Activity, Deal, EventSource, GateEvent, RewrittenHistory, StageChange
from imports.models import ImportAction, ImportedRecord, ImportJob, ImportStatus
from imports.records import ACTIVITY, DEAL, ORGANIZATION, PERSON, TEAM, USER
from imports.services import ImportRefused, NotAllowed

if TYPE_CHECKING:
    from accounts.models import User

log = logging.getLogger(__name__)

CHUNK = 1000


def _chunks(ids: Iterator[int]) -> Iterator[list[int]]:
    while chunk := list(islice(ids, CHUNK)):
        yield chunk


def _ids(job: ImportJob, model: str, action: str) -> Iterator[int]:
    return (
        ImportedRecord.objects.filter(job=job, model=model, action=action)
        .order_by("id")
        .values_list("object_id", flat=True)
        .iterator(chunk_size=CHUNK)
    )


DEAL_FIELD_TYPES = {"amount": Decimal, "expected_close_date": date.fromisoformat}


def _revert_deals(job: ImportJob) -> int:
    """Put back the fields an import changed on deals it did not create."""
    reverted = 0
    updates = ImportedRecord.objects.filter(job=job, model=DEAL, action=ImportAction.UPDATED)
    for record in updates.order_by("-id").iterator(chunk_size=CHUNK):
        values: dict[str, Any] = {}
        for name, old in record.before.items():
            column = f"{name}_id" if name in {"organization", "person", "owner"} else name
            if old is not None and name in DEAL_FIELD_TYPES:
                old = DEAL_FIELD_TYPES[name](old)
            values[column] = old
        if values:
            reverted += Deal.objects.filter(pk=record.object_id).update(
                **values, updated_at=timezone.now()
            )
    return reverted


def _revert_contacts(job: ImportJob) -> None:
    for model, label in ((Organization, ORGANIZATION), (Person, PERSON)):
        updates = ImportedRecord.objects.filter(job=job, model=label, action=ImportAction.UPDATED)
        for record in updates.order_by("-id").iterator(chunk_size=CHUNK):
            model.objects.filter(pk=record.object_id).update(**record.before)


def _delete_kept(model: Any, ids: list[int]) -> int:
    """Delete what nothing else uses any more; rows something now points at are kept.

    A database error (not only a protecting foreign key) keeps the row too, in its own
    savepoint, so one row that cannot go never undoes the rest of the undo.
    """
    deleted = 0
    for pk in ids:
        try:
            with transaction.atomic():
                deleted += model.objects.filter(pk=pk).delete()[1].get(model._meta.label, 0)
        except (ProtectedError, DatabaseError):
            log.warning("undo: %s %s kept", model._meta.label, pk, exc_info=True)
    return deleted


def undo_import(job: ImportJob, *, by: User) -> dict[str, int]:
    """Remove what an import created and put back what it changed, in one transaction.

    Deals it created go with their history, activities, gate events and flags; the
    organizations, people, users and teams it created go too unless something made since
    points at them (they are then kept, and counted). The job stays, marked undone, with
    its summary. Its creator or an admin may undo; a job still running cannot be undone.
    """
    if not policy.can_handle_import(by, job):
        raise NotAllowed("Import not found.")
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.status not in (ImportStatus.DONE, ImportStatus.FAILED):
            raise ImportRefused("Only a finished import can be undone.")
        result = {"deals_reverted": _revert_deals(locked)}
        _revert_contacts(locked)
        removed = 0
        for chunk in _chunks(_ids(locked, DEAL, ImportAction.CREATED)):
            # Deals before their activities, the order every activity write locks in.
            lock_deals(chunk)
            _publish_deleted(locked, chunk, by=by)
            # History first: StageChange protects its deal (see the module docstring).
            # Summaries derived from the history drop these deals' rows when they next
            # catch up, before anyone reads them (RewrittenHistory).
            RewrittenHistory.mark(chunk)
            StageChange.objects.filter(deal_id__in=chunk).delete()
            GateEvent.objects.filter(deal_id__in=chunk).delete()
            removed += Deal.objects.filter(pk__in=chunk).delete()[1].get("deals.Deal", 0)
        result["deals_deleted"] = removed
        activities = 0
        for chunk in _chunks(_ids(locked, ACTIVITY, ImportAction.CREATED)):
            gone = Activity.objects.filter(pk__in=chunk)
            on_deals = lock_deals(gone.values_list("deal_id", flat=True))
            activities += gone.delete()[1].get("deals.Activity", 0)
            refresh_activity_times(on_deals, locked=True)
        result["activities_deleted"] = activities
        kept = 0
        from accounts.models import User as UserModel

        for model, label in (
            (Person, PERSON),
            (Organization, ORGANIZATION),
            (UserModel, USER),
            (Team, TEAM),
        ):
            ids = list(_ids(locked, label, ImportAction.CREATED))
            deleted = _delete_all_or_each(model, ids)
            kept += len(ids) - deleted
            if model is UserModel:
                # A login the import made and undo could not remove must not stay usable.
                UserModel.objects.filter(pk__in=ids).update(is_active=False)
            result[f"{model._meta.model_name}_deleted"] = deleted
        result["kept"] = kept
        locked.status = ImportStatus.UNDONE
        locked.undone_at = timezone.now()
        locked.summary = {**locked.summary, "undo": result}
        locked.save(update_fields=["status", "undone_at", "summary"])
        from common import outbox
        from imports.runner import FOLLOW_UPS

        for task in FOLLOW_UPS:
            outbox.enqueue(task)
    return result


def _publish_deleted(job: ImportJob, deal_ids: list[int], *, by: User) -> None:
    """deal.deleted for a chunk of the deals the undo removes, in one INSERT, with the
    ids only (as `delete_deal` publishes them) and the import's tags."""
    rows = Deal.objects.filter(pk__in=deal_ids).values_list(
        "pk", "owner_id", "stage_id", "pipeline_id"
    )
    with events.tagged(**job.event_tags()):
        events.publish(
            *(
                events.event(
                    "deal.deleted",
                    by=by,
                    source=EventSource.IMPORT,
                    deal_id=pk,
                    owner_id=owner_id,
                    stage_id=stage_id,
                    pipeline_id=pipeline_id,
                )
                for pk, owner_id, stage_id, pipeline_id in rows
            )
        )


def _delete_all_or_each(model: Any, ids: list[int]) -> int:
    """One statement per chunk; row by row only for a chunk that something still uses."""
    deleted = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        try:
            with transaction.atomic():
                counts = model.objects.filter(pk__in=chunk).delete()[1]
            deleted += counts.get(model._meta.label, 0)
        except (ProtectedError, DatabaseError):
            deleted += _delete_kept(model, chunk)
    return deleted
