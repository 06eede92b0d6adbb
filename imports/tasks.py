"""Background work for imports: the `imports.run_import` task."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from imports.runner import run_import as run


@shared_task(name="imports.run_import", acks_late=True)
def run_import(job_id: int, outbox_id: int | None = None) -> dict[str, int | str]:
    """Import a confirmed job's rows, batch by batch, for at most IMPORT_SLICE_SECONDS,
    then continue in a new task; resumes where a killed run stopped.

    Safe to run twice: a finished job is left alone, and a second runner of the same job
    stops at its first batch (runner.py).
    """
    job = run(job_id, budget=settings.IMPORT_SLICE_SECONDS)
    return {
        "status": job.status,
        "created": job.created_count,
        "updated": job.updated_count,
        "failed": job.failed_count,
    }


@shared_task(name="deals.run_import", acks_late=True)
def run_import_queued_before_the_move(
    job_id: int, outbox_id: int | None = None
) -> dict[str, int | str]:
    """The task's name while imports lived in the deals app: messages queued under it before
    a deploy still run. Nothing sends it any more; drop it one release later."""
    return run_import(job_id, outbox_id)
