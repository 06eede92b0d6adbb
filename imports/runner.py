"""Running an import job: streamed, in batches, one transaction per batch, resumable.

Memory stays flat: the file is read row by row and only one batch (BATCH_SIZE rows) is
held at a time, plus the ids seen so far (to report duplicates) and small caches of
organizations and users. Each batch commits its rows, what they were (ImportedRecord)
and the job's counters together, so a worker killed mid-way loses nothing committed;
run again, the job resumes after the last committed row. Two runners of the same job
cannot interleave: each batch locks the job row and stops if another runner has moved
the job on.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts import policy
from common import outbox
from common.exports import safe_row
from deals import events
from deals.models import Notification
from imports.activities import ActivityWriter
from imports.mapping import Mapping
from imports.models import ImportJob, ImportKind, ImportStatus, import_storage
from imports.organizations import OrganizationCache, OrganizationWriter, PersonWriter
from imports.records import Outcome, Recorder
from imports.rows import KINDS, DealContext, Problem
from imports.services import release_upload
from imports.source import Dialect, Reader, Row
from imports.writers import DealWriter, PeopleOfSales

if TYPE_CHECKING:
    from accounts.models import User

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
EXAMPLES = 3
SUMMARY_HEADER = ["line", "id or name", "outcome", "record id", "problems"]
# Follow-up work after deals or activities changed; named, as deals.tasks does.
FOLLOW_UPS = ("deals.check_stalled", "reports.recompute_forecasts", "reports.refresh_stage_stays")


class Stopped(Exception):
    """Another runner has taken the job over, or it was undone meanwhile."""


def batched(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while batch := list(islice(rows, size)):
        yield batch


class Tally:
    """Problem counts by kind and column, with a few examples each, kept in job.summary."""

    def __init__(self, saved: list[dict[str, Any]] | None = None) -> None:
        self.entries: dict[tuple[str, str], dict[str, Any]] = {
            (e["kind"], e["column"]): e for e in saved or []
        }

    def add(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            for problem in outcome.problems:
                entry = self.entries.setdefault(
                    (problem.kind, problem.column),
                    {
                        "kind": problem.kind,
                        "label": KINDS[problem.kind][0],
                        "error": KINDS[problem.kind][1],
                        "column": problem.column,
                        "count": 0,
                        "examples": [],
                    },
                )
                entry["count"] += 1
                if len(entry["examples"]) < EXAMPLES:
                    entry["examples"].append(f"line {problem.line}: {problem.message}")

    def to_json(self) -> list[dict[str, Any]]:
        return sorted(self.entries.values(), key=lambda e: (not e["error"], -e["count"]))


def _claim(job_id: int) -> ImportJob | None:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().select_related("created_by").get(pk=job_id)
        if job.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
            return None
        job.status = ImportStatus.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "started_at"])
    return job


def run_import(
    job_id: int,
    *,
    progress: Callable[[ImportJob], None] | None = None,
    budget: float | None = None,
) -> ImportJob:
    """Import a confirmed job's file (or resume it); safe to call twice.

    Rows are written by kind (writers.py); the job's counters move batch by batch, and the
    summary CSV gets one line per row. A job that is not queued or running is left alone.
    An unexpected error stops the job as "failed" with the error in its summary; what
    committed before stays and can be undone. With a `budget` (seconds), the runner stops
    after the batch that spends it and queues its own continuation (through the outbox),
    which resumes at the checkpoint (`processed_rows`): no task outlives the broker's
    visibility timeout, and a killed worker loses at most one slice.
    """
    job = _claim(job_id)
    if job is None:
        return ImportJob.objects.get(pk=job_id)
    try:
        _run(job, progress, deadline=None if budget is None else time.monotonic() + budget)
    except Paused:
        with transaction.atomic():
            outbox.enqueue(CONTINUE_TASK, job_id=job_id)
        log.info(
            "import %s: paused at row %s; continues in a new task", job_id, job.processed_rows
        )
    except Stopped:
        log.info("import %s: taken over or undone; this runner stops", job_id)
    except Exception as error:
        log.exception("import %s failed", job_id)
        summary = {**job.summary, "error": f"{type(error).__name__}: {error}"[:500]}
        stopped = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.FAILED, finished_at=timezone.now(), summary=summary
        )
        if stopped:
            release_upload(job.pk)
    job.refresh_from_db()
    return job


def _writer(job: ImportJob, mapping: Mapping, by: User) -> Any:
    if job.kind == ImportKind.DEALS:
        ctx = DealContext(
            by=by,
            mapping=mapping,
            pipeline=job.pipeline,
            reference=job.reference,
            override_reason=job.override_reason,
        )
        return DealWriter(job, ctx)
    if job.kind == ImportKind.ORGANIZATIONS:
        return OrganizationWriter(job, mapping, by=by)
    if job.kind == ImportKind.PEOPLE:
        return PersonWriter(job, mapping, by=by)
    from imports.rows import DMY, MDY

    order = mapping.date_order
    if order not in (DMY, MDY):
        order = mapping.detected_date_order if mapping.detected_date_order in (DMY, MDY) else MDY
    return ActivityWriter(job, mapping, by=by, date_order=order)


def _prepare(job: ImportJob, mapping: Mapping, by: User) -> dict[str, Any]:
    """Companion files of a deals import, once: the sales teams, then the organizations."""
    done: dict[str, Any] = {}
    with transaction.atomic():
        # Under the job's lock: a second runner of the same job waits, then finds it done.
        fresh = ImportJob.objects.select_for_update().get(pk=job.pk)
        if fresh.status != ImportStatus.RUNNING or fresh.summary.get("prepared"):
            job.summary = fresh.summary
            return fresh.summary.get("companions", {})
        recorder = Recorder(job)
        members = job.reference.get("team_members", [])
        if members and mapping.create_missing and policy.can_create_users_on_import(by):
            sales = PeopleOfSales(by=by, recorder=recorder)
            sales.roster(members)
            done["users_created"] = sales.created_users
            done["teams_created"] = sales.created_teams
        organizations = job.reference.get("organizations")
        if organizations:
            org_mapping = Mapping.from_json(organizations["mapping"])
            writer = OrganizationWriter(job, org_mapping, by=by)
            rows = [Row(r["line"], r["values"]) for r in organizations["rows"]]
            outcomes = writer.write(rows, recorder, OrganizationCache())
            counts: dict[str, int] = {}
            for outcome in outcomes:
                counts[outcome.result] = counts.get(outcome.result, 0) + 1
            done["organizations"] = counts
            for outcome in outcomes:
                outcome.problems = [companion_problem(p) for p in outcome.problems]
            tally = Tally(job.summary.get("problems"))
            tally.add(outcomes)
            job.summary = {**job.summary, "problems": tally.to_json()}
        recorder.flush()
        summary = {**job.summary, "prepared": True, "companions": done}
        ImportJob.objects.filter(pk=job.pk).update(summary=summary)
        job.summary = summary
    return done


def companion_problem(problem: Problem) -> Problem:
    """A problem of the organizations file, named so, beside those of the main file."""
    return replace(problem, column=f"{problem.column} (organizations file)")


def _summary_path(job: ImportJob) -> str:
    storage = import_storage()
    if not job.summary_file:
        name = f"summaries/{job.pk}-{os.path.splitext(job.original_name)[0][:60]}-summary.csv"
        job.summary_file.name = storage.generate_filename(name)
        ImportJob.objects.filter(pk=job.pk).update(summary_file=job.summary_file.name)
    path = storage.path(job.summary_file.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


class Paused(Exception):
    """The runner spent its time budget; the rest of the file is for its continuation."""


CONTINUE_TASK = "imports.run_import"


def _run(
    job: ImportJob,
    progress: Callable[[ImportJob], None] | None,
    *,
    deadline: float | None = None,
) -> None:
    by = job.created_by
    mapping = Mapping.from_json(job.mapping)
    clock = time.monotonic()
    if job.kind == ImportKind.DEALS and not job.summary.get("prepared"):
        _prepare(job, mapping, by)
    writer = _writer(job, mapping, by)
    tally = Tally(job.summary.get("problems"))
    done_rows = job.processed_rows
    path = _summary_path(job)
    new_file = not os.path.exists(path) or done_rows == 0
    with job.file.open("rb") as binary, open(path, "w" if new_file else "a", newline="") as out:
        summary_csv = csv.writer(out)
        if new_file:
            summary_csv.writerow(SUMMARY_HEADER)
        reader = Reader(binary, Dialect(mapping.encoding, mapping.delimiter))
        rows = iter(reader)
        if done_rows:
            # Resuming: replay the ids of rows already imported, for duplicate detection.
            for row in islice(rows, done_rows):
                _remember(writer, row)
        for batch in batched(rows, BATCH_SIZE):
            outcomes = _write_batch(job, writer, batch, done_rows, tally)
            done_rows += len(batch)
            summary_csv.writerows(safe_row(_summary_line(o)) for o in outcomes)
            out.flush()
            if progress is not None:
                progress(job)
            if deadline is not None and time.monotonic() > deadline:
                raise Paused
    rows_done = time.monotonic()
    _finish(job, tally)
    # Where the time went (the follow-ups run in-process when no broker is configured).
    seconds = {
        "rows": round(rows_done - clock, 1),
        "follow_ups": round(time.monotonic() - rows_done, 1),
    }
    finished = ImportJob.objects.get(pk=job.pk)
    finished.summary = {**finished.summary, "seconds": seconds}
    finished.save(update_fields=["summary"])


def _remember(writer: Any, row: Row) -> None:
    if isinstance(writer, DealWriter):
        column = writer.ctx.mapping.columns.get("external_id")
        value = row.values.get(column, "").strip()[:100] if column else ""
        if value:
            writer.ctx.seen.setdefault(value, row.line)
    elif isinstance(writer, OrganizationWriter):
        column = writer.mapping.columns.get("name")
        value = row.values.get(column, "").strip() if column else ""
        if value:
            writer.seen.setdefault(value[:200].lower(), row.line)


def _write_batch(
    job: ImportJob, writer: Any, batch: list[Row], expected: int, tally: Tally
) -> list[Outcome]:
    with transaction.atomic():
        current = (
            ImportJob.objects.select_for_update()
            .filter(pk=job.pk)
            .values_list("status", "processed_rows")
            .first()
        )
        if current != (ImportStatus.RUNNING, expected):
            raise Stopped
        recorder = Recorder(job)
        with events.tagged(**job.event_tags()):
            if isinstance(writer, OrganizationWriter):
                outcomes = writer.write(batch, recorder, _org_cache(writer))
            else:
                outcomes = writer.write(batch, recorder)
        recorder.flush()
        tally.add(outcomes)
        counts = {name: 0 for name in ("created", "updated", "unchanged", "skipped", "failed")}
        for outcome in outcomes:
            counts[outcome.result] += 1
        ImportJob.objects.filter(pk=job.pk).update(
            processed_rows=F("processed_rows") + len(batch),
            created_count=F("created_count") + counts["created"],
            updated_count=F("updated_count") + counts["updated"],
            unchanged_count=F("unchanged_count") + counts["unchanged"],
            skipped_count=F("skipped_count") + counts["skipped"],
            failed_count=F("failed_count") + counts["failed"],
            summary={**job.summary, "problems": tally.to_json()},
        )
    job.processed_rows = expected + len(batch)
    for name, count in counts.items():
        setattr(job, f"{name}_count", getattr(job, f"{name}_count") + count)
    return outcomes


def _org_cache(writer: OrganizationWriter) -> OrganizationCache:
    cache = getattr(writer, "cache", None)
    if cache is None:
        cache = writer.cache = OrganizationCache()  # type: ignore[attr-defined]
    return cache


def _summary_line(outcome: Outcome) -> list[Any]:
    problems = " | ".join(
        f"{'' if p.is_error else 'warning: '}{p.column}: {p.message}" for p in outcome.problems
    )
    return [outcome.line, outcome.key, outcome.result, outcome.object_id or "", problems]


def _notify_importer(job: ImportJob) -> None:
    """One notice per import, to the importer: the deals it created raise no stalled
    notice each (see deals.models.QuietDeal); their flags show on the board."""
    Notification.objects.get_or_create(
        user_id=job.created_by_id,
        dedupe_key=f"import:{job.pk}",
        defaults={
            "kind": "import",
            "text": (
                f"Import of {job.original_name[:120]} finished: {job.created_count:,} deals "
                f"created, {job.updated_count:,} updated. Stalled deals among them are "
                "flagged on the board (filter: stalled only), without a notice each."
            ),
        },
    )


def _finish(job: ImportJob, tally: Tally) -> None:
    with transaction.atomic():
        fresh = ImportJob.objects.select_for_update().get(pk=job.pk)
        if fresh.status != ImportStatus.RUNNING:
            raise Stopped
        fresh.status = ImportStatus.DONE
        fresh.finished_at = timezone.now()
        fresh.summary = {**fresh.summary, "problems": tally.to_json()}
        fresh.save(update_fields=["status", "finished_at", "summary"])
        # Nothing reads the upload after this (undo works from the records).
        transaction.on_commit(lambda: release_upload(fresh.pk))
        if fresh.kind == ImportKind.DEALS and fresh.created_count:
            _notify_importer(fresh)
        if fresh.kind in (ImportKind.DEALS, ImportKind.ACTIVITIES) and (
            fresh.created_count or fresh.updated_count
        ):
            # Stalled flags and forecasts are recomputed once for the whole import, set-based,
            # rather than once per deal as a single create or move schedules them.
            for task in FOLLOW_UPS:
                outbox.enqueue(task)
