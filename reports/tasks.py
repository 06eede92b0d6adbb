"""Forecast jobs. Tasks take ids, are idempotent and safe to run twice.

`outbox_id` is passed by the outbox with every message; tasks accept and ignore it.
"""

from __future__ import annotations

from celery import shared_task

from reports import forecasts
from reports.dashboard import stays


@shared_task(name="reports.recompute_forecasts", acks_late=True)
def recompute_forecasts(
    owner_id: int | None = None, learn: bool = True, outbox_id: int | None = None
) -> int:
    """Bring the forecast tables up to date (all of them, or one owner's after a move).

    `learn=False` keeps the stored stage win rates (the hourly run; nightly relearns).
    """
    result = forecasts.recompute(owner_id=owner_id, learn=learn)
    return sum(result.inserted.values())


@shared_task(name="reports.snapshot_forecasts", acks_late=True)
def snapshot_forecasts(outbox_id: int | None = None) -> int:
    """Recompute, then keep this week's copy of the forecast for accuracy tracking."""
    forecasts.recompute()
    return forecasts.take_snapshot()


@shared_task(name="reports.refresh_stage_stays", acks_late=True)
def refresh_stage_stays(outbox_id: int | None = None) -> int:
    """Store the dashboard's completed stays that ended since the last run (idempotent)."""
    return stays.refresh().added
