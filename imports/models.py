"""CSV import (issue 9): jobs, reusable column mappings, and what each job wrote (for undo).

The tables began in the deals app and keep their names (`deals_import…`): moving the
models to this app changed no table (migrations imports 0001 / deals 0006).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils import timezone


class ImportStorage(FileSystemStorage):
    """Uploaded import files and their summaries, under IMPORT_ROOT (default var/imports).

    The location is read from settings on every use, so tests (and deployments that mount
    a shared volume for web and worker) can move it without touching the migration.
    """

    @property
    def base_location(self) -> str:  # type: ignore[override]
        default = settings.BASE_DIR / "var" / "imports"
        return str(getattr(settings, "IMPORT_ROOT", None) or default)

    @property
    def location(self) -> str:  # type: ignore[override]
        return os.path.abspath(self.base_location)


_import_storage = ImportStorage()


def import_storage() -> ImportStorage:
    return _import_storage


class ImportKind(models.TextChoices):
    DEALS = "deals", "Deals"
    ORGANIZATIONS = "organizations", "Organizations"
    PEOPLE = "people", "People"
    ACTIVITIES = "activities", "Activities"


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", "Mapping and preview"
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Importing"
    DONE = "done", "Done"
    FAILED = "failed", "Stopped by an error"
    UNDONE = "undone", "Undone"


class ImportJob(models.Model):
    """One upload of a CSV file: its mapping, its progress and what came of it."""

    kind = models.CharField(max_length=16, choices=ImportKind.choices, default=ImportKind.DEALS)
    file = models.FileField(upload_to="uploads/%Y/%m/", storage=import_storage, max_length=300)
    # Bytes the upload keeps on disk, counted against its owner's IMPORT_QUOTA_BYTES; 0 once
    # the file is released (the import finished, or the upload was discarded).
    file_size = models.PositiveBigIntegerField(default=0)
    original_name = models.CharField(max_length=255)
    mapping = models.JSONField(default=dict, blank=True)
    # Small lookup tables read from companion files at upload (organization details, who
    # manages whom, product names); bounded in size by the upload form.
    reference = models.JSONField(default=dict, blank=True)
    pipeline = models.ForeignKey(
        "stages.Pipeline", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    override_reason = models.CharField(
        max_length=500, blank=True, help_text="Import rows that fail an entry criterion anyway"
    )
    run_automations = models.BooleanField(
        default=False,
        help_text="Automations act on the imported deals' events (off: an import of old "
        "deals does not fire a rule per deal)",
    )
    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.UPLOADED
    )
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    summary_file = models.FileField(
        upload_to="summaries/%Y/%m/", storage=import_storage, blank=True, max_length=300
    )
    # PROTECT: who imported stays on record (people leave by deactivation, not deletion).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="import_jobs"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "deals_importjob"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["created_by", "-created_at"], name="import_job_by_user")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.original_name}"

    def event_tags(self) -> dict[str, Any]:
        """What every event of this import (and of its undo) carries in its payload,
        besides source "import" (see deals/events.py)."""
        return {"import": self.pk, "automations": self.run_automations}

    @property
    def is_finished(self) -> bool:
        return self.status in {ImportStatus.DONE, ImportStatus.FAILED, ImportStatus.UNDONE}

    @property
    def percent(self) -> int:
        if not self.total_rows:
            return 100 if self.is_finished else 0
        return min(100, self.processed_rows * 100 // self.total_rows)


class ImportMapping(models.Model):
    """A column mapping saved under a name, to be applied to the next file of the same shape."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ImportKind.choices, default=ImportKind.DEALS)
    mapping = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "deals_importmapping"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ImportAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"


class ImportedRecord(models.Model):
    """One row an import created or changed, so the import can be undone as a whole.

    `model` is an app label ("deals.deal", "contacts.organization", ...) and `object_id`
    the row's id: no foreign key, because undo deletes the very rows listed here.
    `before` holds the old values of the fields an update changed.
    """

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="records")
    model = models.CharField(max_length=40)
    object_id = models.PositiveBigIntegerField()
    action = models.CharField(max_length=10, choices=ImportAction.choices)
    before = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "deals_importedrecord"
        indexes = [models.Index(fields=["job", "model", "action"], name="imported_record_job")]
