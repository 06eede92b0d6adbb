"""Durable hand-off from a request to background work (move protocol, step 5).

`enqueue` writes an OutboxMessage in the caller's transaction; after commit it tries
to hand the message to Celery. If the broker is down the request is not affected: the
row stays pending and the periodic `drain_outbox` task dispatches it later.

A message is done when its task has finished (`finished_at`, set by the task_postrun
signal below), not when the broker took it: a message still unfinished REDELIVER_AFTER
after it was dispatched (the broker lost it in a restart, its worker died, it failed
for good) is dispatched again by the drain. Tasks are idempotent for that.

Handing over is time-boxed (PUBLISH_TIMEOUT for connecting and for each reply): a
request pays at most about a second when the broker is unreachable, refuses
connections instantly, or accepts them and never answers.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from celery.signals import task_postrun
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from common.models import OutboxMessage

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 0.4
# Rows younger than this are left to their own after-commit dispatch.
DRAIN_GRACE = timedelta(seconds=5)
# Longer than any task runs (settings.CELERY_TASK_TIME_LIMIT, with its retries' backoff)
# and than the broker's redelivery of a dead worker's task (visibility timeout).
REDELIVER_AFTER = timedelta(minutes=10)
KEEP_FINISHED = timedelta(days=7)


def enqueue(task: str, **payload: Any) -> OutboxMessage:
    """Record `task(**payload)` in the current transaction; hand it to Celery after commit."""
    message = OutboxMessage.objects.create(task=task, payload=payload)
    transaction.on_commit(lambda: dispatch([message.pk]), robust=True)
    return message


def _publish(messages: Sequence[OutboxMessage], done: list[int]) -> None:
    """Send `messages` in order, appending each id to `done` once it is handed over."""
    # The project's Celery app (pipeline_crm/celery.py makes itself current): a library
    # must not import the wiring that sits above every app.
    from celery import current_app as app

    if app.conf.task_always_eager:
        # No broker (the zero-setup default): run the work in-process, each message in
        # its own savepoint. A task that fails stays pending and is retried by the
        # drain, as a lost publish would be.
        for message in messages:
            if message.task not in app.tasks:
                # Outside a worker, task modules are imported on first use.
                app.loader.import_default_modules()
            kwargs = {**message.payload, "outbox_id": message.pk}
            with transaction.atomic():
                app.tasks[message.task].apply(kwargs=kwargs, throw=True)
                finished(message.pk)
            done.append(message.pk)
        return
    for message in messages:
        hand_over(message.task, {**message.payload, "outbox_id": message.pk})
        done.append(message.pk)


def hand_over(task: str, kwargs: dict[str, Any]) -> None:
    """Send one task to the broker on this process's kept connection (time-boxed).

    Raises if the broker does not take it; the caller keeps its own durable record (an
    outbox row, an unhandled event) for the drain to send again.
    """
    from celery import current_app as app

    # One publisher at a time per process: a kept connection is not thread-safe.
    with _kept_lock:
        for attempt in (1, 2):
            producer, reused = _producer(app)
            try:
                app.send_task(task, kwargs=kwargs, producer=producer, retry=False)
                return
            except Exception:
                _forget_producer()
                # A kept connection may have died with a broker restart: one fresh try.
                if not reused or attempt == 2:
                    raise


_kept: dict[str, Any] = {}
_kept_lock = threading.Lock()


def _producer(app: Any) -> tuple[Any, bool]:
    """A producer on the broker connection this process keeps, and whether it was kept.

    Opening a connection costs several milliseconds per move; reusing one costs nothing.
    It has tight timeouts of its own (PUBLISH_TIMEOUT for connecting and each reply) that
    the worker's long-lived connections, configured in settings, do not need. Keyed by
    process and broker URL, so a forked worker or a changed setting opens a new one.
    Called with `_kept_lock` held.
    """
    key = f"{os.getpid()} {app.conf.broker_url}"
    if _kept.get("key") == key:
        return _kept["producer"], True
    _forget_producer()
    options = {
        **(app.conf.broker_transport_options or {}),
        "socket_connect_timeout": PUBLISH_TIMEOUT,
        "socket_timeout": PUBLISH_TIMEOUT,
        "max_retries": 0,
    }
    connection = app.connection_for_write(transport_options=options)
    _kept.update(key=key, connection=connection, producer=app.amqp.Producer(connection))
    return _kept["producer"], False


def _forget_producer() -> None:
    """Drop the kept connection (called with `_kept_lock` held)."""
    connection = _kept.get("connection")
    _kept.clear()
    if connection is not None:
        try:
            connection.release()
        except Exception:  # a broken connection may fail to close; it is dropped anyway
            log.debug("outbox: closing a broken broker connection failed", exc_info=True)


def dispatch(message_ids: Sequence[int]) -> int:
    """Hand pending messages to Celery; returns how many were handed over.

    At-least-once: a row is marked dispatched only after the broker took it, so a crash
    in between dispatches it again later; every task is idempotent for that. The first
    failure stops the batch and leaves the rest pending (attempts + 1) for the drain.
    """
    messages = list(
        OutboxMessage.objects.filter(pk__in=message_ids, dispatched_at__isnull=True).order_by("id")
    )
    done: list[int] = []
    try:
        _publish(messages, done)
    except Exception:
        log.warning(
            "outbox: %d of %d message(s) not dispatched, will retry",
            len(messages) - len(done),
            len(messages),
            exc_info=True,
        )
        handed = set(done)
        OutboxMessage.objects.filter(pk__in=[m.pk for m in messages if m.pk not in handed]).update(
            attempts=F("attempts") + 1
        )
    if done:
        OutboxMessage.objects.filter(pk__in=done).update(dispatched_at=timezone.now())
    return len(done)


def drain(*, limit: int = 500) -> int:
    """Dispatch rows the after-commit hand-off could not deliver, and rows dispatched but
    not finished within REDELIVER_AFTER; forget old finished rows.

    On PostgreSQL concurrent drains skip each other's rows (SKIP LOCKED), so two beats
    overlapping do not publish the same message twice.
    """
    now = timezone.now()
    never_sent = Q(dispatched_at__isnull=True, created_at__lt=now - DRAIN_GRACE)
    lost = Q(dispatched_at__lt=now - REDELIVER_AFTER)
    with transaction.atomic():
        pending = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(never_sent | lost, finished_at__isnull=True)
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        # Sent again: dispatch() only sends rows it sees as not yet dispatched.
        OutboxMessage.objects.filter(pk__in=pending).update(dispatched_at=None)
        handed = dispatch(pending) if pending else 0
    OutboxMessage.objects.filter(finished_at__lt=now - KEEP_FINISHED).delete()
    return handed


def finished(message_id: int) -> None:
    """Mark a message done: its task has finished (idempotent)."""
    OutboxMessage.objects.filter(pk=message_id, finished_at__isnull=True).update(
        finished_at=timezone.now()
    )


@task_postrun.connect
def _task_finished(
    task_id: str | None = None,
    task: Any = None,
    args: Any = None,
    kwargs: dict[str, Any] | None = None,
    state: str | None = None,
    **_: Any,
) -> None:
    """A task that ran to success with an `outbox_id` finishes its message."""
    message_id = (kwargs or {}).get("outbox_id")
    if state == "SUCCESS" and message_id is not None:
        finished(message_id)
