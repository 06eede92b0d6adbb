"""Background work for deals. Tasks take ids, are idempotent and safe to run twice.

`outbox_id` is passed by the outbox with every message; tasks accept and ignore it.
"""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from common import outbox
from common.retrying import INFRASTRUCTURE_ERRORS
from deals import events, notifications, stalled

# Forecasts live in `reports`, which deals must not import: the follow-up is named.
RECOMPUTE_FORECASTS = "reports.recompute_forecasts"


@shared_task(
    name="deals.process_events",
    acks_late=True,
    autoretry_for=(*INFRASTRUCTURE_ERRORS, events.ConsumerFailed),
)
def process_events(event_ids: list[str], outbox_id: int | None = None) -> int:
    """Run the event log's consumers over these events (deals/events.py): each consumer
    processes each event once, however often the events are delivered."""
    return events.process(event_ids)


# Kept for messages written before the event log took over this follow-up.
@shared_task(name="deals.after_move", acks_late=True)
def after_move(
    deal_id: int,
    owner_id: int | None = None,
    previous_owner_id: int | None = None,
    outbox_id: int | None = None,
) -> None:
    """Follow-up of a change to a deal (move, edit, new deal, activity, reassignment).

    The deal's stalled flags are brought up to date at once (a deal that changed stage is
    no longer "in stage too long"), and its owner's forecast (and the previous owner's,
    after a reassignment) is recomputed through the outbox, so that work survives a
    broker outage too.
    """
    stalled.refresh_flags(deal_ids=[deal_id])
    owners = {owner for owner in (owner_id, previous_owner_id) if owner is not None}
    with transaction.atomic():
        for owner in sorted(owners):
            outbox.enqueue(RECOMPUTE_FORECASTS, owner_id=owner)


@shared_task(name="deals.refresh_stalled", acks_late=True)
def refresh_stalled(deal_id: int, outbox_id: int | None = None) -> None:
    """Re-run the stalled rules for one deal (after an unsnooze, an activity, an edit)."""
    stalled.refresh_flags(deal_ids=[deal_id])


@shared_task(name="deals.check_stalled", acks_late=True)
def check_stalled(outbox_id: int | None = None) -> dict[str, int]:
    """Flag and clear stalled deals over the whole database, and notify new flags."""
    result = stalled.refresh_flags()
    return {
        "added": sum(result.added.values()),
        "cleared": sum(result.cleared.values()),
        "notified": result.notified,
    }


@shared_task(name="deals.remind_activities", acks_late=True)
def remind_activities(outbox_id: int | None = None) -> int:
    """Tell each user once a day, on the bell, what is due today or overdue."""
    return notifications.remind_activities()


@shared_task(name="deals.send_digests", acks_late=True)
def send_digests(outbox_id: int | None = None) -> int:
    """E-mail the daily notification digest to users who have one waiting."""
    return notifications.send_digests()


@shared_task(name="deals.drain_outbox", acks_late=True)
def drain_outbox(limit: int = 500, outbox_id: int | None = None) -> int:
    """Dispatch outbox rows that could not be handed to the broker when they were written,
    and events whose processing did not finish in time (deals/events.py)."""
    return outbox.drain(limit=limit) + events.redispatch()
