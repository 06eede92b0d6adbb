"""The reports app's consumers of the deals' event log (see deals/events.py)."""

from __future__ import annotations

from deals import events
from deals.models import Event
from reports import forecasts

# What changes an owner's forecast: amounts, dates, probabilities, stages, owners, and a
# deal leaving for good.
FORECAST_EVENTS = [
    "deal.created",
    "deal.updated",
    "deal.moved",
    "deal.reassigned",
    "deal.deleted",
]


@events.consumer("forecasts", events=FORECAST_EVENTS)
def refresh_forecasts(batch: list[Event]) -> None:
    """Recompute the forecast of every owner the batch touched: after a reassignment both
    the previous owner (the deal leaves their numbers) and the new one."""
    owners = set()
    # An import's events are left to the import, which recomputes every forecast once
    # when it finishes (or is undone).
    for each in (e for e in batch if "import" not in e.payload):
        owners.add(each.payload.get("owner_id"))
        owners.add(each.payload.get("previous_owner_id"))
    for owner in sorted(o for o in owners if o is not None):
        forecasts.recompute(owner_id=owner)
