"""Background work for deals. Tasks take ids, are idempotent and safe to run twice."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from deals import outbox
from deals.models import OutboxMessage, StalledFlag, StalledRule


@shared_task(name="deals.after_move", acks_late=True)
def after_move(deal_id: int, owner_id: int | None = None, outbox_id: int | None = None) -> None:
    """Follow-up of a stage move: a deal that changed stage is no longer 'in stage too long'."""
    StalledFlag.objects.filter(deal_id=deal_id, rule=StalledRule.IN_STAGE_TOO_LONG).delete()


@shared_task(name="deals.drain_outbox", acks_late=True)
def drain_outbox(limit: int = 500) -> int:
    """Dispatch outbox rows that could not be handed to the broker when they were written."""
    cutoff = timezone.now() - timedelta(seconds=5)
    pending = list(
        OutboxMessage.objects.filter(dispatched_at__isnull=True, created_at__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    return sum(outbox.dispatch(message_id) for message_id in pending)
