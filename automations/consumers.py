"""Automations consume the event log (deals/events.py): each (event, rule) runs once."""

from __future__ import annotations

from automations import services
from deals import events
from deals.models import Event

# What a trigger can start from. deal.stalled, deal.unstalled and deal.deleted are
# published by the stalled job and the delete action; import events count only when the
# importer asked for automations (services._counts).
AUTOMATION_EVENTS = [
    "deal.created",
    "deal.moved",
    "deal.won",
    "deal.lost",
    "deal.updated",
    "deal.reassigned",
    "deal.stalled",
    "deal.unstalled",
    "deal.deleted",
]


@events.consumer("automations", events=AUTOMATION_EVENTS)
def start_runs(batch: list[Event]) -> None:
    """Write the runs the batch triggers, in the consumer's transaction (with its receipts),
    and hand them to a worker after commit."""
    services.runs_for_events(batch)
