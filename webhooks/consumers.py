"""Webhooks consume the event log (deals/events.py): each event fans out once."""

from __future__ import annotations

from deals import events
from deals.models import Event
from webhooks import services


@events.consumer("webhooks", events=["deal.*", "activity.*"])
def send_webhooks(batch: list[Event]) -> None:
    """Queue a delivery per subscribed endpoint, in the consumer's transaction."""
    services.fan_out(batch)
