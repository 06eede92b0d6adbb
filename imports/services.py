"""An import's life: start (upload), map, confirm, run (runner.py), undo (undo.py).

Only admins and managers import (DESIGN: imports are a manager's tool; a manager's rows
may only be owned by the teams they manage, see rows.OwnerIndex). Every write here
checks its actor; views call these functions and nothing else.
"""

from __future__ import annotations

import logging
import threading
from typing import IO, TYPE_CHECKING, Any

from django import db
from django.conf import settings
from django.core.files.base import File
from django.db import transaction
from django.db.models import Sum

from accounts import policy
from common import outbox
from common.errors import BadInput, NotVisible
from imports.mapping import (
    FIELDS,
    ORGANIZATION_FIELDS,
    PRODUCT_FIELDS,
    TEAM_MEMBER_FIELDS,
    Mapping,
    guess_columns,
    is_sample_data,
    sample_defaults,
)
from imports.models import ImportJob, ImportKind, ImportMapping, ImportStatus
from imports.preview import Scan, scan, scanned_columns
from imports.rows import guess_stages
from imports.source import SNIFF_BYTES, Reader, SourceError, read_small, sniff
from stages.models import Pipeline

if TYPE_CHECKING:
    from accounts.models import User

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
COMPANION_ROWS = 10_000


class ImportRefused(BadInput):
    """A refused import step (an unreadable file, the quota, a job past that step), with a
    message fit for the user: 400 through the one mapping (common.errors.describe)."""


class NotAllowed(NotVisible):
    """Not an importer, or someone else's import: answered as not found (404)."""


def _require(user: User) -> None:
    if not policy.can_import(user):
        raise NotAllowed("Only managers and admins can import.")


def _companion(
    upload: IO[bytes], fields: tuple, needed: tuple[str, ...], what: str
) -> tuple[list[str], dict[str, str], list]:
    try:
        headers, rows = read_small(upload, limit=COMPANION_ROWS)
    except SourceError as error:
        raise ImportRefused(f"{what}: {error.message}") from None
    columns = guess_columns(headers, fields)
    missing = [name for name in needed if name not in columns]
    if missing:
        raise ImportRefused(
            f"{what}: no column for {', '.join(missing)} (columns: {', '.join(headers)})."
        )
    return headers, columns, rows


def read_companions(
    *,
    organizations: IO[bytes] | None = None,
    team_members: IO[bytes] | None = None,
    products: IO[bytes] | None = None,
) -> dict[str, Any]:
    """Small files read alongside a deals file, kept whole on the job (bounded in size)."""
    reference: dict[str, Any] = {}
    if organizations is not None:
        headers, columns, rows = _companion(
            organizations, ORGANIZATION_FIELDS, ("name",), "Organizations file"
        )
        mapping = Mapping(columns=columns)
        if is_sample_accounts(headers):
            mapping.revenue_unit = 1_000_000
        reference["organizations"] = {
            "mapping": mapping.to_json(),
            "rows": [{"line": r.line, "values": r.values} for r in rows],
        }
    if team_members is not None:
        _headers, columns, rows = _companion(
            team_members, TEAM_MEMBER_FIELDS, ("member",), "Team members file"
        )
        reference["team_members"] = [
            {name: r.values.get(header, "").strip() for name, header in columns.items()}
            for r in rows
        ]
    if products is not None:
        _headers, columns, rows = _companion(products, PRODUCT_FIELDS, ("name",), "Products file")
        reference["products"] = sorted(
            {r.values[columns["name"]].strip() for r in rows if r.values[columns["name"]].strip()}
        )
    return reference


def start_import(
    *,
    by: User,
    upload: File,
    kind: str = ImportKind.DEALS,
    pipeline: Pipeline | None = None,
    saved: ImportMapping | None = None,
    reference: dict[str, Any] | None = None,
) -> ImportJob:
    """Keep an uploaded file as a new job, with its columns guessed (or a saved mapping).

    The file is stored under IMPORT_ROOT and scanned once (rows, distinct stages and
    owners, date order). Stage values are matched to the pipeline's stages where the
    match is clear; everything else waits for the user in the preview.
    """
    _require(by)
    if upload.size and upload.size > MAX_UPLOAD_BYTES:
        raise ImportRefused(
            "The file is larger than 100 MB; split it or use manage.py import_csv."
        )
    _within_quota(by, upload.size or 0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    dialect = sniff(head)
    try:
        reader = Reader(upload, dialect)
        headers = reader.headers
        reader.close()
    except SourceError as error:
        raise ImportRefused(error.message) from None
    upload.seek(0)
    mapping = Mapping(encoding=dialect.encoding, delimiter=dialect.delimiter)
    if saved is not None:
        stored = Mapping.from_json(saved.mapping)
        stored.columns = {n: h for n, h in stored.columns.items() if h in headers}
        stored.encoding, stored.delimiter = dialect.encoding, dialect.delimiter
        mapping = stored
        kind = saved.kind
    else:
        mapping.columns = guess_columns(headers, FIELDS[kind])
        if kind == ImportKind.DEALS and is_sample_data(headers):
            sample_defaults(mapping)
    reference = reference or {}
    if kind == ImportKind.ORGANIZATIONS and is_sample_accounts(headers):
        mapping.revenue_unit = 1_000_000
    if kind == ImportKind.DEALS and pipeline is None:
        pipeline = Pipeline.objects.filter(is_archived=False).order_by("position", "id").first()
    job = ImportJob(
        kind=kind,
        original_name=(getattr(upload, "name", "") or "import.csv").rsplit("/", 1)[-1][:255],
        mapping=mapping.to_json(),
        reference=reference,
        pipeline=pipeline if kind == ImportKind.DEALS else None,
        created_by=by,
        file_size=upload.size or 0,
    )
    try:
        with transaction.atomic():
            job.file.save(job.original_name, upload, save=False)
            job.save()
            _rescan(job, mapping)
    except BaseException as error:
        # The job row is rolled back; its file must go too, or every refused upload
        # (a cell over the CSV field limit, a broken line) would stay on disk.
        if job.file.name:
            job.file.storage.delete(job.file.name)
        if isinstance(error, SourceError):
            raise ImportRefused(error.message) from None
        raise
    return job


def kept_bytes(user: User) -> int:
    """Bytes of uploaded files `user` keeps (uploads not yet imported, or still running)."""
    kept = ImportJob.objects.filter(created_by=user).aggregate(total=Sum("file_size"))
    return kept["total"] or 0


def _within_quota(user: User, size: int) -> None:
    quota = settings.IMPORT_QUOTA_BYTES
    kept = kept_bytes(user)
    if kept + size > quota:
        mb = 1024 * 1024
        raise ImportRefused(
            f"Your uploads waiting to be imported take {kept / mb:.0f} MB; with this file "
            f"they would pass your {quota / mb:.0f} MB limit. Import or discard one of them "
            "first (from its preview page)."
        )


def release_upload(job_id: int) -> None:
    """Delete an import's uploaded file once nothing will read it again (finished or
    discarded), giving its bytes back to its owner's quota."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or not job.file.name:
        return
    name = job.file.name
    ImportJob.objects.filter(pk=job_id).update(file="", file_size=0)
    job.file.storage.delete(name)


def discard_import(job: ImportJob, *, by: User) -> None:
    """Drop an upload that was never confirmed: its job and its file."""
    _editable(job, by)
    name = job.file.name
    deleted, _ = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.UPLOADED).delete()
    if not deleted:
        raise ImportRefused("This import has started; it can no longer be discarded.")
    if name:
        transaction.on_commit(lambda: job.file.storage.delete(name))


def is_sample_accounts(headers: list[str]) -> bool:
    """The sample set's accounts.csv, whose revenue is in millions (its README says so)."""
    from imports.mapping import normalise

    names = {normalise(h) for h in headers}
    return {"account", "revenue", "year established", "subsidiary of"} <= names


def _rescan(job: ImportJob, mapping: Mapping) -> Scan:
    """Scan the file again and fill in stage guesses for stage values not mapped yet."""
    result = scan(job, mapping)
    mapping.detected_date_order = result.date_verdict
    if job.kind == ImportKind.DEALS and job.pipeline is not None:
        values = [v for v in result.values.get("stage", {}) if v not in mapping.stages]
        mapping.stages.update(guess_stages(values, job.pipeline))
    job.total_rows = result.rows
    job.mapping = mapping.to_json()
    job.summary = {**job.summary, "scan": result.to_json()}
    job.save(update_fields=["total_rows", "mapping", "summary"])
    return result


def current_scan(job: ImportJob) -> Scan:
    """The job's scan, redone if the stage, owner or date columns were re-pointed since."""
    mapping = Mapping.from_json(job.mapping)
    saved = Scan.from_json(job.summary.get("scan"))
    if saved is None or saved.columns != scanned_columns(mapping):
        return _rescan(job, mapping)
    return saved


def _editable(job: ImportJob, by: User) -> None:
    if not policy.can_handle_import(by, job):
        raise NotAllowed("Import not found.")
    if job.status != ImportStatus.UPLOADED:
        raise ImportRefused("This import has started; its mapping can no longer change.")


def update_mapping(
    job: ImportJob,
    *,
    by: User,
    mapping: Mapping,
    pipeline: Pipeline | None,
    override_reason: str = "",
    run_automations: bool = False,
) -> ImportJob:
    """Change a job's column, stage and owner mapping and options before it runs.

    Creating missing users and teams is an admin's decision (DESIGN: users and teams are
    configured by admins); an override reason is kept only from someone who may override.
    `run_automations` (deal imports, off by default) lets automations act on the events
    the import publishes; they carry the choice in their payload.
    """
    _editable(job, by)
    if not policy.can_create_users_on_import(by):
        mapping.create_missing = False
    if pipeline is not None and pipeline.pk != job.pipeline_id:
        mapping.stages = {}
        mapping.engaged_stage = None
    job.pipeline = pipeline if job.kind == ImportKind.DEALS else None
    job.override_reason = override_reason.strip()[:500] if policy.can_override_gate(by) else ""
    job.run_automations = run_automations and job.kind == ImportKind.DEALS
    job.mapping = mapping.to_json()
    job.save(update_fields=["pipeline", "override_reason", "run_automations", "mapping"])
    current_scan(job)
    return job


def save_mapping(job: ImportJob, *, by: User, name: str) -> ImportMapping:
    """Keep the job's mapping under `name` for the next file of the same shape."""
    _require(by)
    name = name.strip()[:100]
    if not name:
        raise ImportRefused("Give the mapping a name.")
    saved, _ = ImportMapping.objects.update_or_create(
        name=name, defaults={"kind": job.kind, "mapping": job.mapping, "created_by": by}
    )
    return saved


def confirm_import(job: ImportJob, *, by: User, run_in_background: bool = True) -> ImportJob:
    """Queue a previewed job; its rows are imported by the `imports.run_import` task.

    With Celery the task goes through the outbox: if the broker cannot take it, the
    periodic drain hands it over once it is back, so a job confirmed during an outage does
    not stay queued. Without a broker (IMPORT_RUNNER "thread") it runs beside the request.
    `run_in_background=False` leaves the running to the caller (manage.py import_csv).
    """
    if not policy.can_handle_import(by, job):
        raise NotAllowed("Import not found.")
    mapping = Mapping.from_json(job.mapping)
    missing = [f.label for f in FIELDS[job.kind] if f.required and not mapping.column(f.name)]
    if missing:
        raise ImportRefused(f"Choose a column for: {', '.join(missing)}.")
    if job.kind == ImportKind.DEALS and job.pipeline_id is None:
        raise ImportRefused("Choose the pipeline to import into.")
    with transaction.atomic():
        updated = ImportJob.objects.filter(
            pk=job.pk, status__in=[ImportStatus.UPLOADED, ImportStatus.QUEUED]
        ).update(status=ImportStatus.QUEUED)
        if not updated:
            raise ImportRefused("This import has already run.")
        if run_in_background and settings.IMPORT_RUNNER == "thread":
            transaction.on_commit(lambda: dispatch(job.pk))
        elif run_in_background:
            outbox.enqueue(RUN_IMPORT, job_id=job.pk)
    job.refresh_from_db()
    return job


def dispatch(job_id: int) -> bool:
    """Hand a queued job to whoever runs imports (settings.IMPORT_RUNNER)."""
    from imports.tasks import run_import

    if settings.IMPORT_RUNNER == "thread":
        threading.Thread(target=_run_in_thread, args=(job_id,), daemon=True).start()
        return True
    try:
        run_import.delay(job_id)
    except Exception:
        log.warning(
            "import %s: could not reach the broker; it stays queued", job_id, exc_info=True
        )
        return False
    return True


RUN_IMPORT = "imports.run_import"


def _run_in_thread(job_id: int) -> None:
    """Without a broker: the import runs beside the web request that confirmed it, on its
    own database connection. A job cut short by a restart stays "running", and running it
    again (`runner.run_import`) resumes where it stopped."""
    from imports.runner import run_import

    try:
        run_import(job_id)
    finally:
        db.connection.close()


def visible_jobs(user: User) -> Any:
    """Import jobs a user may see: their own; admins see everyone's."""
    return policy.import_jobs(user, ImportJob.objects.select_related("created_by", "pipeline"))
