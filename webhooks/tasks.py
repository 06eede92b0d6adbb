"""Background work for webhooks: send deliveries, and pick up the ones that are due."""

from __future__ import annotations

from celery import shared_task

from webhooks import services


@shared_task(name="webhooks.deliver", acks_late=True)
def deliver(delivery_ids: list[int], outbox_id: int | None = None) -> None:
    """Send each delivery that is due (each is claimed first: safe to run twice)."""
    for delivery_id in delivery_ids:
        services.deliver(delivery_id)


@shared_task(name="webhooks.retry_due")
def retry_due() -> int:
    """Retries whose back-off has passed, and deliveries a killed worker left leased."""
    due = services.due_deliveries()
    for delivery_id in due:
        services.deliver(delivery_id)
    return len(due)
