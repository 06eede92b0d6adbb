"""The deals app's consumers of the event log (see deals/events.py)."""

from __future__ import annotations

from deals import events, stalled
from deals.models import Event

# What can change whether a deal is stalled: its stage, dates, activities, a snooze ending.
FLAG_EVENTS = [
    "deal.created",
    "deal.updated",
    "deal.moved",
    "deal.reassigned",
    "deal.reopened",
    "deal.unsnoozed",
    "activity.*",
]


@events.consumer("stalled_flags", events=FLAG_EVENTS)
def refresh_stalled_flags(batch: list[Event]) -> None:
    """Bring the stalled flags of the deals in `batch` up to date (one set-based refresh).

    An import's events are left to the import: it refreshes every flag once, set-based,
    when it finishes (or is undone), instead of once per batch of its events here."""
    deal_ids = {e.deal_id for e in batch if e.deal_id and "import" not in e.payload}
    if deal_ids:
        stalled.refresh_flags(deal_ids=sorted(deal_ids))
