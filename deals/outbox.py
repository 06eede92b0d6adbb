"""Durable hand-off from a request to background work (move protocol, step 5).

`enqueue` writes an OutboxMessage in the caller's transaction; after commit it tries
to hand the message to Celery. If the broker is down the request is not affected: the
row stays pending and the periodic `drain_outbox` task dispatches it later.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from deals.models import OutboxMessage

log = logging.getLogger(__name__)


def enqueue(task: str, **payload: Any) -> OutboxMessage:
    message = OutboxMessage.objects.create(task=task, payload=payload)
    transaction.on_commit(lambda: dispatch(message.pk), robust=True)
    return message


def dispatch(message_id: int) -> bool:
    """Hand one pending message to Celery; True once it is handed over.

    At-least-once: the row is marked dispatched only after the broker took it, so a
    crash in between dispatches it again later; every task is idempotent for that.
    """
    from pipeline_crm.celery import app

    message = OutboxMessage.objects.filter(pk=message_id, dispatched_at__isnull=True).first()
    if message is None:
        return True
    kwargs = {**message.payload, "outbox_id": message.pk}
    try:
        if app.conf.task_always_eager:
            app.tasks[message.task].apply(kwargs=kwargs, throw=True)
        else:
            app.send_task(message.task, kwargs=kwargs)
    except Exception:
        # Any broker failure leaves the row pending for the periodic drain.
        log.warning("outbox %s: dispatch failed, will retry", message_id, exc_info=True)
        OutboxMessage.objects.filter(pk=message_id).update(attempts=message.attempts + 1)
        return False
    OutboxMessage.objects.filter(pk=message_id).update(dispatched_at=timezone.now())
    return True
