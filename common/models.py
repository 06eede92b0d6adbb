"""The outbox's table. It began in the deals app and keeps its name (`deals_outboxmessage`)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    """Work a request caused, written in its transaction and dispatched to Celery later."""

    task = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # Set when the task finished (common.outbox.finished), not when the broker took it: a
    # message lost with the broker or a killed worker is dispatched again.
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "deals_outboxmessage"
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(finished_at__isnull=True),
                name="outbox_unfinished",
            )
        ]
