"""The live board's fan-out: who changed which deal, told to every open board and deal page.

An announcement carries ids and a version only (`Announcement`): the deal, its new
version, the event's name and the actor's id. Browsers fetch the card itself through the
ordinary views, so nobody learns anything about a deal they may not see beyond its id.

Announcing happens after commit: `events.publish` hands every event of the log to
`announce_after_commit`, so the board hears every source (a user, the API, an automation,
an import, a job) from whatever process did the write. Listening is one `Hub` per
process, shared by every open stream; no thread or worker is held per connection under
ASGI.

Two backends:

- in-process (the zero-setup default, no REDIS_URL): announcements go straight to the
  hub; the last REPLAY_SIZE are kept for reconnecting streams. Only streams of the same
  process hear them, which is all `make run` has.
- Redis (REDIS_URL set): announcements are appended to a capped Redis stream (XADD,
  MAXLEN ~REPLAY_SIZE), which is both the fan-out across web processes and the replay
  buffer; one reader thread per process (XREAD BLOCK) feeds the hub.

Event ids are what a reconnecting EventSource sends back as Last-Event-ID. An id the
buffer no longer reaches (too old, another process's boot, Redis flushed) answers "resync":
the page refreshes its columns instead of missing changes silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

if TYPE_CHECKING:
    from deals.models import Event

log = logging.getLogger(__name__)

REPLAY_SIZE = 1000
# More deals than this changed in one action (an import, a bulk job): one announcement.
BULK_LIMIT = 50
BULK = "deals.bulk"
STREAM_KEY = "live:deals"
RESYNC = "resync"
# Heartbeats: a comment line that keeps proxies from closing an idle stream, or, while
# the backend cannot deliver (Redis down), "degraded", on which pages poll instead.
PING = "ping"
DEGRADED = "degraded"
# Someone opened or closed a deal's move menu or edit form ("Ana is editing"): announced
# like a change, with the deal's id and the editor's id only; pages ask who it is
# (deals/views/live.py presence) through the policy. Open without a heartbeat for
# PRESENCE_TTL seconds, it has ended.
PRESENCE = "presence"
PRESENCE_TTL = 30
PRESENCE_KEY = "live:presence:{}"


@dataclass(frozen=True)
class Announcement:
    """What browsers are told: ids and a version, never a deal's fields."""

    deal: int
    version: int
    event: str
    by: int | None

    def data(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class Message:
    """One line of the stream: an id to resume from and the announcement's JSON, or a
    resync (empty data) when the stream cannot replay what a client missed."""

    id: str
    data: str
    kind: str = "deal"

    @functools.cached_property
    def encoded(self) -> bytes:
        """The SSE frame as bytes, built once however many streams send it."""
        return frame(self).encode()


Deliver = Callable[[Sequence[Message]], None]

# Under a stream of changes (a team moving cards all day, a bench), the streams of one
# event loop are fed at most once per FLUSH_SECONDS: the first change after a quiet spell
# goes out at once, later ones within that spell wait for the next batch. Feeding a
# stream costs the same for one message as for ten (a wake-up, a write, a send to its
# socket), so this is what keeps hundreds of open boards from costing the move path a
# write each per move. A board hears of a change at most FLUSH_SECONDS later, which with
# the card's fetch stays within the second the board promises. At 500 streams on one
# process a batch costs a few ms of CPU (mostly uvicorn's HTTP framing and the socket
# send, per stream): half a second apart that is about 3 % of a core (B7).
FLUSH_SECONDS = 0.5


class _LoopStreams:
    """The streams of one event loop, and the messages waiting for their next batch."""

    def __init__(self) -> None:
        self.listeners: set[Deliver] = set()
        self.waiting: list[Message] = []
        self.scheduled = False
        self.fed_at = float("-inf")  # the loop's clock at the last batch


class Hub:
    """The process's listeners; `broadcast` may be called from any thread.

    Streams served by an event loop (ASGI) are grouped by their loop: messages are handed
    to each loop in batches (one wake-up of its thread per batch, at most one batch per
    FLUSH_SECONDS), which then feeds all its streams the whole batch in one go. With
    hundreds of open boards that is what keeps an announcement from costing a wake-up
    and a write per board. Other listeners (runserver's threads, tests) are called
    directly, a message at a time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: set[Deliver] = set()
        self._loops: dict[asyncio.AbstractEventLoop, _LoopStreams] = {}
        # False while the backend cannot deliver (Redis down): pages poll meanwhile.
        self.healthy = True

    def add(self, deliver: Deliver, loop: asyncio.AbstractEventLoop | None = None) -> None:
        with self._lock:
            if loop is None:
                self._listeners.add(deliver)
            else:
                self._loops.setdefault(loop, _LoopStreams()).listeners.add(deliver)

    def discard(self, deliver: Deliver) -> None:
        with self._lock:
            self._listeners.discard(deliver)
            for loop, streams in list(self._loops.items()):
                streams.listeners.discard(deliver)
                if not streams.listeners:
                    del self._loops[loop]

    def __len__(self) -> int:
        return len(self._listeners) + sum(len(s.listeners) for s in self._loops.values())

    def beat(self, loop: asyncio.AbstractEventLoop, message: Message) -> bool:
        """Hand `message` (a heartbeat) to the streams of `loop`, from that loop's own
        thread; False when it has none left."""
        with self._lock:
            streams = self._loops.get(loop)
            listeners = list(streams.listeners) if streams else []
        _deliver_all(listeners, [message])
        return bool(listeners)

    def broadcast(self, message: Message) -> None:
        with self._lock:
            listeners = list(self._listeners)
            wake = []
            for loop, streams in self._loops.items():
                streams.waiting.append(message)
                if not streams.scheduled:
                    streams.scheduled = True
                    wake.append(loop)
        _deliver_all(listeners, [message])
        for loop in wake:
            with contextlib.suppress(RuntimeError):  # a loop that has closed meanwhile
                loop.call_soon_threadsafe(self._schedule, loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """In `loop`'s thread: feed its streams now, or once FLUSH_SECONDS have passed
        since their last batch."""
        with self._lock:
            streams = self._loops.get(loop)
            due = streams.fed_at + FLUSH_SECONDS if streams else 0.0
        if due > loop.time():
            loop.call_at(due, self._feed, loop)
        else:
            self._feed(loop)

    def _feed(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            streams = self._loops.get(loop)
            if streams is None:
                return
            messages, streams.waiting = streams.waiting, []
            streams.scheduled = False
            streams.fed_at = loop.time()
            listeners = list(streams.listeners)
        _deliver_all(listeners, messages)


def _deliver_all(listeners: list[Deliver], messages: Sequence[Message]) -> None:
    for deliver in listeners:
        try:
            deliver(messages)
        except Exception:  # one closed listener must not starve the others
            log.debug("live: a listener failed", exc_info=True)


class LocalBackend:
    """The zero-setup default: one process, its own counter and replay buffer."""

    def __init__(self, hub: Hub, size: int = REPLAY_SIZE) -> None:
        self.hub = hub
        # Ids of a previous boot are unknown here: a client holding one resyncs.
        self.boot = uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._count = 0
        self._recent: deque[Message] = deque(maxlen=size)
        self._presence: dict[int, dict[int, float]] = {}

    def publish(self, announcement: Announcement) -> None:
        with self._lock:
            self._count += 1
            message = Message(f"{self.boot}-{self._count}", announcement.data())
            self._recent.append(message)
        self.hub.broadcast(message)

    def start(self) -> None:
        """Nothing to read: publishing broadcasts directly."""

    def stop(self) -> None:
        """Nothing runs."""

    def after(self, last_id: str) -> list[Message] | None:
        """The messages after `last_id`, or None when they cannot all be replayed."""
        boot, _, number = last_id.partition("-")
        if boot != self.boot or not number.isdigit():
            return None
        seen = int(number)
        with self._lock:
            recent = list(self._recent)
            count = self._count
        if seen > count:
            return None
        missed = [m for m in recent if _number(m.id) > seen]
        if len(missed) < count - seen:
            return None  # some fell out of the buffer
        return missed

    def newer(self, message: Message, than: str) -> bool:
        return _number(message.id) > _number(than)

    def present(self, deal_id: int, user_id: int, editing: bool, now: float) -> bool:
        """Record that `user_id` has (or no longer has) deal `deal_id` open; True when
        that starts or ends their presence (a heartbeat only extends it)."""
        with self._lock:
            editors = self._presence.setdefault(deal_id, {})
            was = editors.get(user_id, 0.0) > now
            if editing:
                editors[user_id] = now + PRESENCE_TTL
            else:
                editors.pop(user_id, None)
            if not editors:
                del self._presence[deal_id]
        return was != editing

    def editors(self, deal_id: int, now: float) -> list[int]:
        with self._lock:
            editors = self._presence.get(deal_id, {})
            return sorted(user for user, until in editors.items() if until > now)


def _number(message_id: str) -> int:
    return int(message_id.rpartition("-")[2])


def _stream_id(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


class RedisBackend:
    """Several web processes: a capped Redis stream, read by one thread per process."""

    def __init__(self, hub: Hub, url: str, size: int = REPLAY_SIZE) -> None:
        import redis

        self.hub = hub
        self.size = size
        # Short timeouts: announcing runs after a committed write and must not hang it.
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.reader = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2)
        self._started = False
        self._stopped = threading.Event()
        self._start_lock = threading.Lock()

    def publish(self, announcement: Announcement) -> None:
        self.client.xadd(
            STREAM_KEY, {"data": announcement.data()}, maxlen=self.size, approximate=True
        )

    def start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._read, name="live-reader", daemon=True).start()

    def _read(self) -> None:
        last = "$"
        while not self._stopped.is_set():
            try:
                if last == "$":
                    # Start from the stream's end, but remember where that is so a
                    # reconnect after an outage picks up what was added meanwhile.
                    newest = self.reader.xrevrange(STREAM_KEY, count=1)
                    last = newest[0][0].decode() if newest else "0-0"
                replies = self.reader.xread({STREAM_KEY: last}, block=5000, count=500)
                self.hub.healthy = True
                if self._stopped.is_set():
                    return
                for _key, entries in replies or []:
                    for entry_id, fields in entries:
                        last = entry_id.decode()
                        self.hub.broadcast(Message(last, fields[b"data"].decode()))
            except Exception:
                if self.hub.healthy:
                    log.warning("live: Redis unreachable, pages fall back to polling")
                self.hub.healthy = False
                self._stopped.wait(1)

    def stop(self) -> None:
        self._stopped.set()

    def after(self, last_id: str) -> list[Message] | None:
        try:
            seen = _stream_id(last_id)
        except ValueError:
            return None
        oldest = self.client.xrange(STREAM_KEY, count=1)
        if not oldest or _stream_id(oldest[0][0].decode()) > seen:
            # Trimmed past the client's position (or the stream is gone).
            return None
        entries = self.client.xrange(STREAM_KEY, min=f"({last_id}", max="+")
        return [Message(i.decode(), f[b"data"].decode()) for i, f in entries]

    def newer(self, message: Message, than: str) -> bool:
        return _stream_id(message.id) > _stream_id(than)

    def present(self, deal_id: int, user_id: int, editing: bool, now: float) -> bool:
        """As LocalBackend.present, in a Redis hash per deal (user id: until) that
        every web process shares; the hash itself expires when nobody heartbeats."""
        key = PRESENCE_KEY.format(deal_id)
        pipe = self.client.pipeline()
        pipe.hget(key, user_id)
        if editing:
            pipe.hset(key, user_id, now + PRESENCE_TTL)
            pipe.expire(key, PRESENCE_TTL * 2)
        else:
            pipe.hdel(key, user_id)
        before = pipe.execute()[0]
        was = before is not None and float(before) > now
        return was != editing

    def editors(self, deal_id: int, now: float) -> list[int]:
        editors = self.client.hgetall(PRESENCE_KEY.format(deal_id))
        return sorted(int(user) for user, until in editors.items() if float(until) > now)


hub = Hub()
_backend: LocalBackend | RedisBackend | None = None
_backend_lock = threading.Lock()


def backend() -> LocalBackend | RedisBackend:
    global _backend
    with _backend_lock:
        if _backend is None:
            url = settings.REDIS_URL
            _backend = RedisBackend(hub, url) if url else LocalBackend(hub)
        return _backend


def reset(new: LocalBackend | RedisBackend | None = None) -> None:
    """Use `new` (tests), or pick again from settings on next use."""
    global _backend
    with _backend_lock:
        if _backend is not None and _backend is not new:
            _backend.stop()
        _backend = new


def announce(deal_id: int, version: int, event: str, *, by_id: int | None) -> None:
    """Tell every open page that `deal_id` changed. Never raises: the write it reports has
    committed already, and pages that missed it catch up by polling or resync."""
    try:
        backend().publish(Announcement(deal_id, version, event, by_id))
    except Exception:
        log.warning("live: announcement of deal %s lost", deal_id, exc_info=True)


def announce_after_commit(
    events: Sequence[Event], *, versions: dict[int, int] | None = None
) -> None:
    """After the current transaction commits, announce each deal the events are about,
    once per deal (a move's deal.moved and deal.won are one change to a board), at the
    version the transaction wrote (`versions`, from a caller that holds the locked row:
    a move) or else the deal's version read after commit. A batch too large to be worth
    a card each (an import) is one announcement about deal 0, on which pages refresh
    their columns instead."""
    changed: dict[int, Event] = {}
    for event in events:
        if event.deal_id is not None:
            changed.setdefault(event.deal_id, event)
    if changed:
        known = dict(versions or {})
        transaction.on_commit(lambda: _announce_changes(changed, known), robust=True)


def _announce_changes(changed: dict[int, Event], known: dict[int, int] | None = None) -> None:
    if len(changed) > BULK_LIMIT:
        first = next(iter(changed.values()))
        announce(0, 0, BULK, by_id=first.actor_id)
        return
    versions = dict(known or {})
    if not versions.keys() >= changed.keys():
        from deals.models import Deal

        versions = dict(Deal.objects.filter(pk__in=list(changed)).values_list("pk", "version"))
    for deal_id, event in changed.items():
        # A deleted deal has no version: 0, and every page that shows it asks and drops it.
        announce(deal_id, versions.get(deal_id, 0), event.name, by_id=event.actor_id)


def set_presence(deal_id: int, user_id: int, *, editing: bool) -> None:
    """`user_id` opened (editing=True, also each heartbeat) or closed deal `deal_id`'s
    move menu or edit form. Announced when that starts or ends it. Never raises: presence
    is a courtesy, and without its store (Redis down) pages simply show nobody."""
    try:
        changed = backend().present(deal_id, user_id, editing, time.time())
    except Exception:
        log.info("live: presence of deal %s not recorded", deal_id, exc_info=True)
        return
    if changed:
        announce(deal_id, 0, PRESENCE, by_id=user_id)


def editors(deal_id: int) -> list[int]:
    """The ids of the users who have deal `deal_id` open in a menu or form right now."""
    try:
        return backend().editors(deal_id, time.time())
    except Exception:
        return []


@dataclass
class Subscription:
    """One open stream's view of the hub: messages since `last_id`, then live ones.

    Registered before the replay is read, so nothing published in between is lost;
    live messages the replay already covered are skipped.
    """

    last_id: str = ""

    def __post_init__(self) -> None:
        self.queue: queue.SimpleQueue[Sequence[Message]] = queue.SimpleQueue()
        self._wake: Callable[[], None] | None = None
        self._listener: Deliver = self.deliver
        self._overlap = True

    def deliver(self, messages: Sequence[Message]) -> None:
        self.queue.put(messages)
        if self._wake is not None:
            self._wake()

    def open(
        self,
        wake: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        listener: Deliver | None = None,
    ) -> list[Message]:
        """Start listening; the replay (or a resync) for a reconnecting client. With
        `loop`, messages are delivered (and `wake` called) in that loop's thread. With
        `listener`, batches go to it instead of the queue, to pass through `accept`."""
        self._wake = wake
        self._listener = listener or self.deliver
        source = backend()
        source.start()
        hub.add(self._listener, loop)
        if not self.last_id:
            return []
        try:
            missed = source.after(self.last_id)
        except Exception:
            missed = None
        if missed is None:
            self.last_id = ""  # from elsewhere: every live message from here on is new
            return [Message("", "", RESYNC)]
        if missed:
            self.last_id = missed[-1].id
        return missed

    def pending(self) -> list[Message]:
        """Live messages received since the last call, without the replayed ones (only
        those queued before the replay was read can be; once a newer one came, none)."""
        messages: list[Message] = []
        while True:
            try:
                batch = self.queue.get_nowait()
            except queue.Empty:
                return messages
            messages += self.accept(batch)

    def accept(self, batch: Sequence[Message]) -> Sequence[Message]:
        """The messages of `batch` this stream is to send, in order (the batch itself
        once the replay's overlap is behind it)."""
        if not self._overlap:
            for message in reversed(batch):
                if message.id:  # heartbeats have none
                    self.last_id = message.id
                    break
            return batch
        messages = []
        for message in batch:
            if not message.id:  # a heartbeat: not part of the stream's order
                messages.append(message)
                continue
            if self._overlap:
                if self.last_id and not _newer(message, self.last_id):
                    continue
                self._overlap = False
            self.last_id = message.id
            messages.append(message)
        return messages

    def close(self) -> None:
        hub.discard(self._listener)
        self._wake = None


def _newer(message: Message, than: str) -> bool:
    with contextlib.suppress(ValueError, IndexError):
        return backend().newer(message, than)
    return True


def frame(message: Message) -> str:
    """The message as an SSE frame."""
    if message.kind == RESYNC:
        return "event: resync\ndata: {}\n\n"
    if message.kind == PING:
        return ": ping\n\n"
    if message.kind == DEGRADED:
        return "event: degraded\ndata: {}\n\n"
    return f"id: {message.id}\nevent: {message.kind}\ndata: {message.data}\n\n"
