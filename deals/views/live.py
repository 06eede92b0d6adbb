"""The live board's endpoints: the event stream, and the card and column heads a page
fetches when told that a deal changed (through the same policy as any other request)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from accounts import policy
from accounts.models import User
from deals import live, queries
from deals.views.board import _card_context, _filters, _int, _prepare_cards

log = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Proxies drop connections silent for a minute or so; a comment line keeps them open.
HEARTBEAT_SECONDS = 15
# How soon a browser reconnects after the stream ends (EventSource's own retry).
RETRY_MS = 2000


@login_required
@require_GET
def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Server-Sent Events: `deal` events (ids and a version only) for every change, and
    `resync` when a reconnecting client missed more than the replay buffer holds.

    Under ASGI the body is an async iterator: an open stream is a suspended coroutine, no
    thread (the view itself is an ordinary one, done once it has built the response).
    Under runserver (WSGI, the zero-setup default) each open stream holds one of its
    threads instead.
    """
    last_id = request.headers.get("Last-Event-ID") or request.GET.get("last", "")
    subscription = live.Subscription(last_id=last_id[:64])
    if isinstance(request, ASGIRequest):
        response = EventStream(subscription)
    else:
        response = StreamingHttpResponse(_frames(subscription), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return response


class EventStream(StreamingHttpResponse):
    """The stream's response under ASGI. Any ASGI handler iterates its body, a task per
    stream woken for each batch. pipeline_crm.asgi's handler (production's) calls `serve`
    instead: the loop's feed then writes each batch to every stream itself, one send each,
    and no stream has a task to wake."""

    def __init__(self, subscription: live.Subscription) -> None:
        super().__init__(_async_frames(subscription), content_type="text/event-stream")
        self.subscription = subscription

    async def serve(self, send: Send) -> None:
        """Write the stream to the ASGI `send` (after its headers), until the client goes
        (Django's disconnect listener then cancels this)."""
        await sync_to_async(_release_database)()
        loop = asyncio.get_running_loop()
        writer = _Writer(self.subscription, send, loop)
        replay = self.subscription.open(loop=loop, listener=writer.deliver)
        _ensure_ticker(loop)
        try:
            # Before any batch can reach the writer: the feed runs in this same thread.
            writer.write(_opening(replay).encode())
            await loop.create_future()
        finally:
            self.subscription.close()


# A client that stops reading (its socket buffer full) is written no more; past this many
# batches waiting for it, they are dropped for a resync, which costs it a column refresh.
BACKLOG_LIMIT = 100


class _Writer:
    """Sends batches to one stream's ASGI `send`, in the caller's turn of the loop: the
    send runs eagerly and is done at once unless the server holds the write back (flow
    control), in which case later batches wait for it."""

    def __init__(
        self, subscription: live.Subscription, send: Send, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.subscription = subscription
        self.send = send
        self.loop = loop
        self.sending: asyncio.Task[None] | None = None
        self.backlog: list[bytes] = []

    def deliver(self, messages: Sequence[live.Message]) -> None:
        # Each message's frame is encoded once, however many streams send it.
        frames = b"".join(m.encoded for m in self.subscription.accept(messages))
        if frames:
            self.write(frames)

    def write(self, data: bytes) -> None:
        if self.sending is not None:
            self.backlog.append(data)
            if len(self.backlog) > BACKLOG_LIMIT:
                self.backlog = [live.Message("", "", live.RESYNC).encoded]
            return
        message = {"type": "http.response.body", "body": data, "more_body": True}
        task = asyncio.Task(self.send(message), loop=self.loop, eager_start=True)
        if not task.done():
            self.sending = task
            task.add_done_callback(self._sent)
        elif not task.cancelled() and task.exception() is not None:
            log.debug("live: a stream's send failed", exc_info=task.exception())

    def _sent(self, _task: asyncio.Task[None]) -> None:
        self.sending = None
        if self.backlog:
            data, self.backlog = b"".join(self.backlog), []
            self.write(data)


def _opening(replay: list[live.Message]) -> str:
    return f"retry: {RETRY_MS}\n\n" + "".join(live.frame(m) for m in replay)


def _status() -> str:
    """While the backend cannot deliver, the page polls (and says so once per beat)."""
    return live.frame(_heartbeat())


def _heartbeat() -> live.Message:
    return live.Message("", "", live.PING if live.hub.healthy else live.DEGRADED)


# One heartbeat task per event loop for all of its streams (rather than a timeout per
# stream, re-armed at every event): every HEARTBEAT_SECONDS it hands each stream a beat.
_tickers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


async def _tick(loop: asyncio.AbstractEventLoop) -> None:
    try:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if not live.hub.beat(loop, _heartbeat()):
                return  # no stream left on this loop; the next one starts it again
    finally:
        _tickers.pop(loop, None)


def _ensure_ticker(loop: asyncio.AbstractEventLoop) -> None:
    if loop not in _tickers:
        _tickers[loop] = loop.create_task(_tick(loop))


def _release_database() -> None:
    """Hand this request's database connection back now, not when the stream ends: the
    stream never queries, and a connection (or a pool slot: DB_POOL_SIZE) held per open
    board would run out at a few dozen boards. Django closes it only once the response is
    closed, which for a stream is when the page goes away."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:  # a test's transaction is not ours to end
            connection.close()


async def _async_frames(subscription: live.Subscription) -> AsyncIterator[bytes]:
    # In the request's own thread, where the view ran and its connection lives.
    await sync_to_async(_release_database)()
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    replay = subscription.open(wake=woken.set, loop=loop)
    _ensure_ticker(loop)
    try:
        yield _opening(replay).encode()
        while True:
            await woken.wait()
            woken.clear()
            # Bytes, encoded once per message for every stream: a str would be encoded
            # again by each response.
            frames = b"".join(m.encoded for m in subscription.pending())
            if frames:
                yield frames
    finally:
        subscription.close()


def _frames(subscription: live.Subscription) -> Iterator[str]:
    _release_database()
    woken = threading.Event()
    replay = subscription.open(wake=woken.set)
    try:
        yield _opening(replay)
        while True:
            if not woken.wait(HEARTBEAT_SECONDS):
                yield _status()
                continue
            woken.clear()
            frames = "".join(live.frame(m) for m in subscription.pending())
            if frames:
                yield frames
    finally:
        subscription.close()


@login_required
@require_GET
def card(request: HttpRequest, pk: int) -> HttpResponse:
    """Deal `pk`'s card as the board of ?pipeline= under the URL's filters shows it, ready
    to take its place; 404 when that board shows no such card (unseen, closed, filtered
    out), and the page removes it. ?by= names who changed it, when the viewer may see the
    deal at all; `after` is the card it follows in its column (none: it comes first).
    Four queries: the card, its stalled flags, the card before it, the actor."""
    pipeline_id = _int(request.GET.get("pipeline"))
    filters = _filters(request)
    deal = queries.live_card(request.user, filters, pk, pipeline_id or 0)
    if deal is None:
        raise Http404("No such card on this board.")
    _prepare_cards(request, [deal])
    after = queries.card_after(request.user, filters, deal)
    actor = User.objects.filter(pk=_int(request.GET.get("by")) or 0).first()
    context = {"deal": deal, "after": after, "actor": actor, **_card_context()}
    return TemplateResponse(request, "deals/live.html#card", context)


@login_required
@require_GET
def heads(request: HttpRequest) -> HttpResponse:
    """Every open column's count and totals on the board of ?pipeline=, under the URL's
    filters, out of band: one query."""
    pipeline = queries.board_pipeline(_int(request.GET.get("pipeline")))
    if pipeline is None:
        raise Http404("No such pipeline.")
    stages = [s for s in pipeline.stages.all() if not s.is_archived]
    columns = queries.column_heads(request.user, _filters(request), stages)
    return TemplateResponse(request, "deals/live.html#heads", {"columns": columns})


@login_required
@require_GET
def versions(request: HttpRequest) -> JsonResponse:
    """{stage id: version} for the open columns of ?pipeline= under the URL's filters,
    with an ETag: the cheap check a board makes while it has no stream (one query, 304
    when nothing changed)."""
    pipeline = queries.board_pipeline(_int(request.GET.get("pipeline")))
    if pipeline is None:
        raise Http404("No such pipeline.")
    columns = queries.column_versions(request.user, _filters(request), pipeline)
    tag = '"' + hashlib.sha256(json.dumps(columns, sort_keys=True).encode()).hexdigest()[:16] + '"'
    if request.headers.get("If-None-Match") == tag:
        response = HttpResponse(status=304)
    else:
        response = JsonResponse({"columns": columns})
    response["ETag"] = tag
    response["Cache-Control"] = "private, no-cache"
    return response


def _visible_deal(request: HttpRequest, pk: int | None) -> int:
    """`pk` when the user may see that deal; 404 otherwise (unknown and unseen alike)."""
    if not pk or not policy.deals(request.user).filter(pk=pk).exists():
        raise Http404("No such deal.")
    return pk


@login_required
@require_POST
def presence(request: HttpRequest) -> HttpResponse:
    """The page opened (editing=1, then every few seconds while open) or closed
    (editing=0) deal=<id>'s move menu or edit form. Announced to the others' pages with
    ids only. 204; 404 for a deal the user may not see; 403 for opening one they see but
    may not change (they have no menu or form to open on it); 400 without a deal id."""
    pk = _int(request.POST.get("deal"))
    if pk is None:
        return HttpResponse("Which deal? Send deal=<id>.", status=400, content_type="text/plain")
    editing = request.POST.get("editing") == "1"
    if editing and not policy.changeable_deals(request.user).filter(pk=pk).exists():
        _visible_deal(request, pk)
        return HttpResponse("You may not change this deal.", status=403, content_type="text/plain")
    live.set_presence(_visible_deal(request, pk), request.user.pk, editing=editing)
    return HttpResponse(status=204)


@login_required
@require_GET
def editing(request: HttpRequest, pk: int) -> HttpResponse:
    """Who else has deal `pk` open in a menu or form ("Ana Ruiz is editing"), for a page
    told of their presence: 404 when the user may not see the deal, so only those who may
    learn who works on it. Two queries: the deal's visibility, the names."""
    _visible_deal(request, pk)
    others = [user for user in live.editors(pk) if user != request.user.pk]
    names = (
        [u.display_name for u in User.objects.filter(pk__in=others).order_by("pk")]
        if others
        else []
    )
    return TemplateResponse(
        request,
        "deals/live.html#editing",
        {"deal_id": pk, "names": names, "ttl": live.PRESENCE_TTL},
    )
