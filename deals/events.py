"""The event log: what each action did, the one hand-off for follow-up work.

Publishing (in an action, inside its transaction)::

    events.publish(events.event("deal.moved", by=by, source=source, deal=deal, ...))

appends the rows to `Event` in the action's transaction, so a rolled-back action
publishes nothing, and hands their ids to Celery after commit (`deals.process_events`).

Consuming (register once, at import time of a module the app's `ready()` imports)::

    @events.consumer("forecasts", events=["deal.moved", "deal.reassigned"])
    def refresh(batch: list[Event]) -> None: ...

The handler gets a batch of events it asked for (`"deal.*"` patterns allowed). It runs in
a transaction with the consumer's receipts (`EventReceipt`, unique per event and
consumer), so each consumer's work for an event commits exactly once: a handler that
raises is rolled back with its receipts and retried later; one that already committed is
never run again for that event, however often the event is delivered. An event is
`handled_at` once every consumer that wants it has its receipt. Events not handled
within REDISPATCH_AFTER are dispatched again by the periodic drain.

Catalogue (every payload also carries `deal_id` and `owner_id`, the deal's owner when
the event was written):

- deal.created: stage_id, pipeline_id (source: form, import, api, ...)
- deal.updated: fields (changed names), changes ({name: [old, new]}, the deal's own
  fields; ids for organization, person)
- deal.moved: from_stage_id, to_stage_id, pipeline_id, stage_change_id
- deal.won, deal.lost: stage_id (with the deal.moved that closed the deal)
- deal.reopened: stage_id (with the deal.moved that took a closed deal back to open)
- deal.reassigned: previous_owner_id (owner_id is the new owner)
- deal.deleted: stage_id, pipeline_id (the deal is gone: what it was is in the audit log)
- deal.snoozed: until (ISO date); deal.unsnoozed: nothing more
- deal.stalled: rules (the rule keys that started firing for the deal in this run of the
  stalled job); deal.unstalled: rules (those that stopped firing; the deal may still be
  stalled by others). Source "job", no actor; a second run publishes nothing. A snooze
  or a deletion removes flags without deal.unstalled (deal.snoozed, deal.deleted say it).
- activity.created, activity.updated, activity.completed, activity.deleted: activity_id,
  type

Events an import writes (or undoes) have source "import" and also carry `import` (the
job's id) and `automations` (whether the importer asked automations to run for them).

Names never carry field values a subscriber may not see: only the deal's own fields,
which anyone who may see the deal may see; consumers check visibility by `deal_id`.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from deals import live
from deals.models import Event, EventReceipt, EventSource

if TYPE_CHECKING:
    from accounts.models import User
    from deals.models import Deal

log = logging.getLogger(__name__)

PROCESS_TASK = "deals.process_events"
# An event not handled this long after it was written is dispatched again (by the drain):
# longer than any consumer needs for one batch, short enough that a lost hand-off (broker
# down, worker killed) is made good within a couple of minutes.
REDISPATCH_AFTER = timedelta(seconds=90)
BATCH = 200

Handler = Callable[[list[Event]], None]


@dataclass(frozen=True)
class Consumer:
    name: str
    patterns: tuple[str, ...]
    handle: Handler

    def wants(self, event_name: str) -> bool:
        return any(fnmatch.fnmatchcase(event_name, p) for p in self.patterns)


_consumers: dict[str, Consumer] = {}


def consumer(name: str, *, events: Iterable[str]) -> Callable[[Handler], Handler]:
    """Register `handler(batch: list[Event])` as consumer `name` of the named events."""

    def register(handler: Handler) -> Handler:
        _consumers[name] = Consumer(name, tuple(events), handler)
        return handler

    return register


def consumers() -> list[Consumer]:
    return sorted(_consumers.values(), key=lambda c: c.name)


_tags: ContextVar[dict[str, Any] | None] = ContextVar("event_tags", default=None)


@contextmanager
def tagged(**tags: Any) -> Iterator[None]:
    """Add `tags` to the payload of every event made inside the block, whichever action
    makes it: an import's batch tags its events with the job and its automations choice
    (`{"import": 12, "automations": False}`), also those of the deal actions it calls."""
    token = _tags.set({**(_tags.get() or {}), **tags})
    try:
        yield
    finally:
        _tags.reset(token)


def event(
    name: str, *, by: User | None, source: str, deal: Deal | None = None, **payload: Any
) -> Event:
    """An event about to be published (not saved yet); `deal` adds deal_id and owner_id."""
    if deal is not None:
        payload = {"deal_id": deal.pk, "owner_id": deal.owner_id, **payload}
    payload = {**payload, **(_tags.get() or {})}
    return Event(
        name=name,
        actor=by if by is not None and by.pk else None,
        source=source if source in EventSource.values else EventSource.FORM,
        deal_id=deal.pk if deal is not None else payload.get("deal_id"),
        payload={key: plain(value) for key, value in payload.items()},
    )


def publish(*events: Event, versions: dict[int, int] | None = None) -> list[Event]:
    """Append `events` to the log in the current transaction (one INSERT); after commit,
    hand them to the consumers. `versions` ({deal id: version this transaction wrote}),
    when the caller knows them, spares the live board reading them back after commit."""
    Event.objects.bulk_create(events)
    ids = [str(e.pk) for e in events]
    transaction.on_commit(lambda: dispatch(ids), robust=True)
    # Open boards hear of it at once, not after a worker's pickup (ids only, see live.py).
    live.announce_after_commit(events, versions=versions)
    return list(events)


def new_id_sql() -> str:
    """SQL for a fresh time-ordered id (uuid7, as `models.uuid7`) per row, for jobs that
    insert events set-based (`insert_sql`). Literal percent signs are doubled: the SQL is
    run with parameters."""
    if connection.vendor == "postgresql":
        # A random (v4) uuid whose first 48 bits become the time in ms and whose version
        # nibble 4 becomes 7 (bits 52 and 53 set).
        return (
            "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
            "substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) "
            "from 3) from 1 for 6), 52, 1), 53, 1), 'hex')::uuid"
        )
    # SQLite keeps a uuid as 32 hex digits: 12 of time, version 7, 3 random, the variant
    # (8, 9, a or b), 15 random.
    return (
        "printf('%%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) "
        "|| '7' || substr(lower(hex(randomblob(2))), 2) "
        "|| substr('89ab', 1 + abs(random()) %% 4, 1) || substr(lower(hex(randomblob(8))), 2)"
    )


def insert_sql(rows_sql: str) -> str:
    """An INSERT … SELECT of one event per row of `rows_sql` (columns deal_id, payload),
    for a job that publishes a set of events in one statement, not a loop per deal. Its
    parameters are name, at and source, then `rows_sql`'s. It returns (id, deal_id) of
    each event; hand them to `published` in the same transaction."""
    table = connection.ops.quote_name(Event._meta.db_table)
    return (
        f"INSERT INTO {table} (id, name, at, source, deal_id, payload) "
        f"SELECT {new_id_sql()}, %s, %s, %s, r.deal_id, r.payload FROM ({rows_sql}) r "
        "RETURNING id, deal_id"
    )


def published(name: str, rows: Iterable[tuple[Any, int | None]]) -> int:
    """Events a set-based INSERT (`insert_sql`) wrote in this transaction: after commit,
    hand them to the consumers in batches and tell open boards, as `publish` does."""
    written = [Event(id=pk, name=name, deal_id=deal_id) for pk, deal_id in rows]
    ids = [str(e.pk) for e in written]
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        transaction.on_commit(lambda batch=batch: dispatch(batch), robust=True)
    live.announce_after_commit(written)
    return len(written)


def dispatch(event_ids: Sequence[str]) -> None:
    """Hand events to a worker; without a broker, process them here. Never raises: an
    event that could not be handed over stays unhandled and the drain sends it again."""
    from celery import current_app as app

    from common import outbox

    try:
        if app.conf.task_always_eager:
            process(event_ids)
        else:
            outbox.hand_over(PROCESS_TASK, {"event_ids": list(event_ids)})
    except Exception:
        log.warning(
            "events: %d event(s) not processed yet, will retry", len(event_ids), exc_info=True
        )


class ConsumerFailed(Exception):
    """At least one consumer failed on a batch; the batch is retried (done work is kept)."""


def process(event_ids: Sequence[str]) -> int:
    """Run every consumer that wants them over the events, each once; returns how many
    events are now handled. Raises ConsumerFailed after trying every consumer if one
    failed, so the task is retried; consumers that succeeded are not run again."""
    events = list(Event.objects.filter(pk__in=event_ids, handled_at__isnull=True).order_by("id"))
    if not events:
        return 0
    failed = []
    for each in consumers():
        wanted = [e for e in events if each.wants(e.name)]
        if not wanted:
            continue
        done = set(
            EventReceipt.objects.filter(event__in=wanted, consumer=each.name).values_list(
                "event_id", flat=True
            )
        )
        todo = [e for e in wanted if e.pk not in done]
        if not todo:
            continue
        try:
            with transaction.atomic():
                # Receipts first: a second delivery of the same events waits here for this
                # transaction and then finds them taken, instead of doing the work twice.
                EventReceipt.objects.bulk_create(
                    EventReceipt(event=e, consumer=each.name) for e in todo
                )
                each.handle(todo)
        except IntegrityError:
            log.info("events: %s already processed elsewhere", each.name)
            failed.append(each.name)  # not known to be done: look again on the retry
        except Exception:
            log.exception("events: consumer %s failed on %d event(s)", each.name, len(todo))
            failed.append(each.name)
    if failed:
        raise ConsumerFailed(", ".join(failed))
    return Event.objects.filter(pk__in=[e.pk for e in events]).update(handled_at=timezone.now())


def redispatch(*, limit: int = 1000) -> int:
    """Dispatch again events that are still unhandled REDISPATCH_AFTER after they were
    written (a lost hand-off, a killed worker, a failed consumer); returns how many."""
    cutoff = timezone.now() - REDISPATCH_AFTER
    ids = [
        str(pk)
        for pk in Event.objects.filter(handled_at__isnull=True, at__lt=cutoff)
        .order_by("at")
        .values_list("id", flat=True)[:limit]
    ]
    for start in range(0, len(ids), BATCH):
        dispatch(ids[start : start + BATCH])
    return len(ids)


def plain(value: Any) -> Any:
    """A payload value as JSON: ids for records, text for dates and amounts."""
    if isinstance(value, Model):
        return value.pk
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
