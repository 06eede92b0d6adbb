"""The live board: announcements carry ids only, the hub fans out and replays, and the
card and totals a page fetches go through the same policy as any request."""

from __future__ import annotations

import asyncio
import json
import threading
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse

from deals import live, services
from tests.factories import DealFactory


@pytest.fixture
def local():
    """A fresh in-process backend for each test, whatever REDIS_URL says."""
    backend = live.LocalBackend(live.hub, size=3)
    live.reset(backend)
    yield backend
    live.reset()


@pytest.fixture
def heard(local):
    """Every announcement made while the test runs, as the browser would parse it."""
    subscription = live.Subscription()
    subscription.open()
    yield lambda: [json.loads(m.data) for m in subscription.pending()]
    subscription.close()


def run_in_own_loop(coroutine) -> None:
    """Run `coroutine` in a thread of its own (the browser tests' Playwright may hold this
    thread's event loop); its failure is raised here."""
    failures = []

    def run():
        try:
            asyncio.run(coroutine)
        except BaseException as error:  # handed back to the test's thread
            failures.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    if failures:
        raise failures[0]


def announce(n: int) -> None:
    for i in range(n):
        live.announce(i + 1, 1, "deal.moved", by_id=None)


# --- what browsers are told ---------------------------------------------------------------


DEAL_FIELDS = {"title", "amount", "currency", "owner", "organization", "stage", "next_step"}


@pytest.mark.django_db(transaction=True)
def test_announcements_carry_ids_and_versions_only(heard, rep, manager, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Secret", amount=Decimal("777"))
    services.move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    deal.refresh_from_db()
    services.update_deal(deal, {"amount": Decimal("900")}, by=rep, expected_version=deal.version)
    deal.refresh_from_db()
    services.reassign_deal(deal, new_owner=teammate, by=manager, expected_version=deal.version)

    payloads = heard()

    assert [p["event"] for p in payloads] == ["deal.moved", "deal.updated", "deal.reassigned"]
    for payload in payloads:
        assert set(payload) == {"deal", "version", "event", "by"}
        assert not DEAL_FIELDS & set(payload)
        assert all(isinstance(payload[k], int) for k in ("deal", "version"))
        assert "Secret" not in json.dumps(payload) and "777" not in json.dumps(payload)
    assert [p["version"] for p in payloads] == [2, 3, 4]


@pytest.mark.django_db
def test_nothing_is_announced_before_commit(
    heard, rep, stages, django_capture_on_commit_callbacks
):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with django_capture_on_commit_callbacks(execute=False):
        services.move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    assert heard() == []


@pytest.mark.django_db
def test_refused_move_announces_nothing(heard, rep, stages, django_capture_on_commit_callbacks):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(services.VersionConflict),
    ):
        services.move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version + 5)
    assert heard() == []


@pytest.mark.django_db
def test_a_move_announces_the_version_it_wrote_without_reading_it_back(
    heard, rep, stages, django_capture_on_commit_callbacks, django_assert_num_queries
):
    deal = DealFactory(owner=rep, stage=stages["lead"], version=4)
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        services.move_deal(deal, stages["qualified"], by=rep, expected_version=4)
    announcing = [c for c in after_commit if "_announce_changes" in c.__code__.co_names]

    with django_assert_num_queries(0):
        for callback in announcing:
            callback()

    assert len(announcing) == 1
    assert [(p["deal"], p["version"]) for p in heard()] == [(deal.pk, 5)]


# --- the hub and replay -------------------------------------------------------------------


def test_every_open_stream_hears_each_announcement(local):
    first, second = live.Subscription(), live.Subscription()
    first.open()
    second.open()
    announce(2)
    assert [m.id for m in first.pending()] == [f"{local.boot}-1", f"{local.boot}-2"]
    assert [m.id for m in second.pending()] == [f"{local.boot}-1", f"{local.boot}-2"]
    first.close()
    second.close()


def test_closed_stream_is_no_longer_fed(local):
    subscription = live.Subscription()
    subscription.open()
    subscription.close()
    announce(1)
    assert subscription.pending() == []


def test_reconnect_replays_what_was_missed(local):
    announce(2)
    subscription = live.Subscription(last_id=f"{local.boot}-1")
    replay = subscription.open()
    assert [m.id for m in replay] == [f"{local.boot}-2"]
    announce(1)
    assert [m.id for m in subscription.pending()] == [f"{local.boot}-3"]
    subscription.close()


def test_reconnect_past_the_buffer_resyncs(local):
    announce(5)  # the buffer keeps 3: message 2 is gone
    replay = live.Subscription(last_id=f"{local.boot}-1").open()
    assert [m.kind for m in replay] == [live.RESYNC]


def test_reconnect_from_another_boot_resyncs(local):
    announce(1)
    replay = live.Subscription(last_id="0ther000-1").open()
    assert [m.kind for m in replay] == [live.RESYNC]
    assert live.frame(replay[0]) == "event: resync\ndata: {}\n\n"


def test_up_to_date_reconnect_replays_nothing(local):
    announce(2)
    assert live.Subscription(last_id=f"{local.boot}-2").open() == []


def test_frame_is_an_sse_event_with_its_id(local):
    message = live.Message("abc-1", '{"deal":1}')
    assert live.frame(message) == 'id: abc-1\nevent: deal\ndata: {"deal":1}\n\n'


def test_announce_never_raises_when_the_backend_fails(local, monkeypatch):
    def broken(announcement):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(local, "publish", broken)
    live.announce(1, 1, "deal.moved", by_id=None)  # a committed write must not fail after


# --- what a page fetches ------------------------------------------------------------------


def card_url(deal, pipeline, **extra):
    query = "&".join(f"{k}={v}" for k, v in {"pipeline": pipeline.pk, **extra}.items())
    return f"{reverse('live_card', args=[deal.pk])}?{query}"


def test_card_renders_for_a_teammate_with_its_column_and_actor(
    client_for, rep, teammate, pipeline, stages, django_assert_num_queries
):
    deal = DealFactory(owner=rep, stage=stages["demo"], title="Visible")
    client = client_for(teammate)
    with django_assert_num_queries(6):  # session, user, card, flags, card before it, actor
        response = client.get(card_url(deal, pipeline, by=rep.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-stage="{stages["demo"].pk}"' in html
    assert f'id="deal-{deal.pk}"' in html and "Visible" in html
    assert f'data-by="{rep.display_name}"' in html


def test_card_is_404_for_another_team(client_for, rep, outsider, pipeline, stages):
    deal = DealFactory(owner=rep, stage=stages["demo"])
    assert client_for(outsider).get(card_url(deal, pipeline)).status_code == 404


def test_card_is_404_once_it_no_longer_matches_the_filters(client_for, rep, pipeline, stages):
    deal = DealFactory(owner=rep, stage=stages["demo"], title="Acme renewal")
    client = client_for(rep)
    assert client.get(card_url(deal, pipeline, q="Acme")).status_code == 200
    assert client.get(card_url(deal, pipeline, q="Globex")).status_code == 404


def test_card_is_404_when_closed(client_for, rep, pipeline, stages):
    deal = DealFactory(owner=rep, stage=stages["lost"])
    assert client_for(rep).get(card_url(deal, pipeline)).status_code == 404


def test_card_requires_login(client, rep, pipeline, stages):
    deal = DealFactory(owner=rep, stage=stages["demo"])
    assert client.get(card_url(deal, pipeline)).status_code == 302


def test_heads_count_only_visible_deals(
    client_for, rep, outsider, pipeline, stages, django_assert_num_queries
):
    DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("100"))
    DealFactory(owner=outsider, stage=stages["lead"], amount=Decimal("5000"))
    client = client_for(rep)
    url = f"{reverse('live_heads')}?pipeline={pipeline.pk}"
    with django_assert_num_queries(5):  # session, user, pipelines, their stages, totals
        html = client.get(url).content.decode()
    assert f'id="totals-{stages["lead"].pk}"' in html
    assert "1 deal<" in html and "5,000" not in html and "5000" not in html


def test_stream_requires_login(client):
    assert client.get(reverse("live_stream")).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_a_stream_gives_its_database_connection_back_as_it_starts(local, client_for, rep):
    """An open board must not hold a connection (or a pool slot) for as long as it stays
    open: Django would close it only when the response closes, at the end of the stream."""
    from django.db import connection

    response = client_for(rep).get(reverse("live_stream"))
    assert connection.connection is not None  # the view read the session and the user
    chunks = iter(response.streaming_content)
    assert next(chunks).decode().startswith("retry: ")
    assert connection.connection is None
    response.close()


@pytest.mark.django_db(transaction=True)
def test_stream_replays_from_last_event_id_then_streams(local, rep, async_client):
    async_client.force_login(rep)
    announce(2)
    run_in_own_loop(_stream_replays_then_streams(local, rep, async_client))


@pytest.mark.django_db(transaction=True)
def test_an_idle_stream_beats_and_says_degraded_while_the_backend_cannot_deliver(
    local, rep, async_client, monkeypatch
):
    from deals.views import live as live_views

    monkeypatch.setattr(live_views, "HEARTBEAT_SECONDS", 0.05)
    async_client.force_login(rep)

    async def beats():
        response = await async_client.get(reverse("live_stream"))
        chunks = aiter(response.streaming_content)
        assert (await anext(chunks)).startswith(b"retry: ")
        assert await anext(chunks) == b": ping\n\n"
        live.hub.healthy = False
        try:
            assert await anext(chunks) == b"event: degraded\ndata: {}\n\n"
        finally:
            live.hub.healthy = True
        await chunks.aclose()

    run_in_own_loop(beats())


@pytest.mark.django_db(transaction=True)
def test_production_handler_writes_the_stream_from_the_loops_feed(local, rep, client):
    """pipeline_crm.asgi's handler: Django's headers, the replay, then batches written by
    the loop's feed (two announcements in one turn of the loop are one write), and the
    stream leaves the hub when the client goes."""
    client.force_login(rep)
    announce(2)
    run_in_own_loop(_production_stream(local, rep, client.cookies["sessionid"].value))


async def _production_stream(local, rep, session):
    from pipeline_crm.asgi import application

    sent: asyncio.Queue[dict] = asyncio.Queue()
    gone = asyncio.Event()
    requested = []

    async def receive():
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": reverse("live_stream"),
        "raw_path": reverse("live_stream").encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"cookie", f"sessionid={session}".encode()),
            (b"last-event-id", f"{local.boot}-1".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    served = asyncio.create_task(application(scope, receive, sent.put))

    async def next_body() -> str:
        message = await asyncio.wait_for(sent.get(), 10)
        assert message["type"] == "http.response.body" and message["more_body"]
        return message["body"].decode()

    start = await asyncio.wait_for(sent.get(), 10)
    assert start["status"] == 200
    assert (b"Content-Type", b"text/event-stream") in start["headers"]
    opening = await next_body()
    assert opening.startswith("retry: ")
    assert f"id: {local.boot}-2\n" in opening and f"id: {local.boot}-1\n" not in opening
    live.announce(42, 7, "deal.moved", by_id=rep.pk)
    live.announce(43, 2, "deal.updated", by_id=rep.pk)
    pushed = await next_body()
    assert pushed.startswith(f"id: {local.boot}-3\nevent: deal\n")
    assert f"id: {local.boot}-4\nevent: deal\n" in pushed
    assert len(live.hub) == 1
    gone.set()
    await asyncio.wait_for(served, 10)
    assert len(live.hub) == 0


async def _stream_replays_then_streams(local, rep, async_client):
    response = await async_client.get(
        reverse("live_stream"), headers={"Last-Event-ID": f"{local.boot}-1"}
    )
    assert response["Content-Type"] == "text/event-stream"
    chunks = aiter(response.streaming_content)
    opening = (await anext(chunks)).decode()
    assert opening.startswith("retry: ")
    assert f"id: {local.boot}-2\n" in opening and f"id: {local.boot}-1\n" not in opening
    live.announce(42, 7, "deal.moved", by_id=rep.pk)
    pushed = (await anext(chunks)).decode()
    assert pushed == (
        f'id: {local.boot}-3\nevent: deal\ndata: {{"deal":42,"version":7,'
        f'"event":"deal.moved","by":{rep.pk}}}\n\n'
    )
    await chunks.aclose()


@pytest.fixture
def redis_backend(settings, monkeypatch):
    """The Redis backend on a stream of the test's own; needs REDIS_URL (CI's Redis pass)."""
    import os

    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL not set: the Redis backend is checked in the Redis pass")
    monkeypatch.setattr(live, "STREAM_KEY", f"test:live:{os.getpid()}")
    backend = live.RedisBackend(live.hub, url)
    backend.client.delete(live.STREAM_KEY)
    live.reset(backend)
    yield backend
    backend.client.delete(live.STREAM_KEY)
    live.reset()


def test_redis_backend_fans_out_through_its_reader(redis_backend):
    import time

    subscription = live.Subscription()
    subscription.open()
    time.sleep(0.3)  # the reader has found the stream's end
    live.announce(7, 3, "deal.moved", by_id=None)
    deadline = time.monotonic() + 3
    received = []
    while not received and time.monotonic() < deadline:
        received = subscription.pending()
        time.sleep(0.02)
    subscription.close()
    assert [json.loads(m.data)["deal"] for m in received] == [7]


def test_redis_backend_replays_after_an_id_and_resyncs_before_its_oldest(redis_backend):
    announce(3)
    ids = [i.decode() for i, _ in redis_backend.client.xrange(live.STREAM_KEY)]
    assert [m.id for m in redis_backend.after(ids[0])] == ids[1:]
    assert redis_backend.after(ids[-1]) == []
    assert redis_backend.after("1-0") is None  # older than anything kept
    assert redis_backend.after("not-an-id") is None


@pytest.mark.django_db(transaction=True)
def test_a_closing_move_is_one_announcement(heard, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=Decimal("10"))
    services.move_deal(deal, stages["won"], by=rep, expected_version=deal.version)
    assert [(p["deal"], p["event"]) for p in heard()] == [(deal.pk, "deal.moved")]


@pytest.mark.django_db(transaction=True)
def test_a_large_batch_is_one_bulk_announcement(heard, rep, stages, monkeypatch):
    from deals import events

    monkeypatch.setattr(live, "BULK_LIMIT", 2)
    deals = DealFactory.create_batch(3, owner=rep, stage=stages["lead"])
    with transaction.atomic():
        events.publish(
            *(events.event("deal.updated", by=rep, source="form", deal=d) for d in deals)
        )
    assert heard() == [{"deal": 0, "version": 0, "event": live.BULK, "by": rep.pk}]


def versions_url(pipeline):
    return f"{reverse('live_versions')}?pipeline={pipeline.pk}"


def test_column_versions_change_with_a_visible_move_only(
    client_for, rep, outsider, pipeline, stages, django_assert_num_queries
):
    mine = DealFactory(owner=rep, stage=stages["lead"])
    theirs = DealFactory(owner=outsider, stage=stages["lead"])
    client = client_for(rep)
    with django_assert_num_queries(5):  # session, user, pipelines, their stages, versions
        first = client.get(versions_url(pipeline))
    tag = first["ETag"]
    assert set(first.json()["columns"]) == {
        str(stages[s].pk) for s in ("lead", "qualified", "demo", "proposal")
    }

    services.move_deal(theirs, stages["qualified"], by=outsider, expected_version=1)
    unchanged = client.get(versions_url(pipeline), headers={"If-None-Match": tag})
    assert unchanged.status_code == 304

    services.move_deal(mine, stages["qualified"], by=rep, expected_version=1)
    changed = client.get(versions_url(pipeline), headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed["ETag"] != tag


def test_stream_says_degraded_while_the_backend_cannot_deliver(monkeypatch):
    from deals.views import live as live_views

    monkeypatch.setattr(live.hub, "healthy", False)
    assert live_views._status() == "event: degraded\ndata: {}\n\n"
    monkeypatch.setattr(live.hub, "healthy", True)
    assert live_views._status() == ": ping\n\n"


# --- where a card lands: after the card before it in its column ---------------------------


def card_after(client, deal, pipeline, **extra):
    html = client.get(card_url(deal, pipeline, **extra)).content.decode()
    return html.split('data-after="', 1)[1].split('"', 1)[0]


def test_card_names_the_card_before_it_in_manual_order(client_for, rep, pipeline, stages):
    first, middle, last = (
        DealFactory(owner=rep, stage=stages["demo"], position=p) for p in (10, 20, 30)
    )
    tie = DealFactory(owner=rep, stage=stages["demo"], position=20)  # after `middle` by id
    DealFactory(owner=rep, stage=stages["lead"], position=15)  # another column
    client = client_for(rep)
    assert card_after(client, first, pipeline) == ""
    assert card_after(client, middle, pipeline) == str(first.pk)
    assert card_after(client, tie, pipeline) == str(middle.pk)
    assert card_after(client, last, pipeline) == str(tie.pk)


def test_card_names_the_card_before_it_under_the_boards_sort(client_for, rep, pipeline, stages):
    big = DealFactory(owner=rep, stage=stages["demo"], amount=Decimal("300"), position=3)
    small = DealFactory(owner=rep, stage=stages["demo"], amount=Decimal("200"), position=1)
    none = DealFactory(owner=rep, stage=stages["demo"], amount=None, position=2)
    client = client_for(rep)
    # Amount: largest first, no amount last.
    assert card_after(client, big, pipeline, sort="amount") == ""
    assert card_after(client, small, pipeline, sort="amount") == str(big.pk)
    assert card_after(client, none, pipeline, sort="amount") == str(small.pk)
    # The same cards in manual order.
    assert card_after(client, none, pipeline) == str(small.pk)
    assert card_after(client, big, pipeline) == str(none.pk)


def test_card_before_is_one_the_viewer_may_see(client_for, rep, outsider, pipeline, stages):
    mine = DealFactory(owner=rep, stage=stages["demo"], position=1)
    DealFactory(owner=outsider, stage=stages["demo"], position=2)  # another team's
    later = DealFactory(owner=rep, stage=stages["demo"], position=3)
    assert card_after(client_for(rep), later, pipeline) == str(mine.pk)


# --- presence: "Ana Ruiz is editing" ------------------------------------------------------


def presence(client, deal, editing):
    return client.post(reverse("live_presence"), {"deal": deal.pk, "editing": editing})


@pytest.mark.django_db
def test_opening_a_menu_announces_ids_only_and_heartbeats_announce_nothing(
    heard, client_for, rep, stages
):
    deal = DealFactory(owner=rep, stage=stages["demo"], title="Secret title")
    client = client_for(rep)
    assert presence(client, deal, "1").status_code == 204
    assert heard() == [{"deal": deal.pk, "version": 0, "event": live.PRESENCE, "by": rep.pk}]
    assert presence(client, deal, "1").status_code == 204  # the heartbeat
    assert heard() == []
    assert presence(client, deal, "0").status_code == 204  # closed
    assert heard() == [{"deal": deal.pk, "version": 0, "event": live.PRESENCE, "by": rep.pk}]


def test_editing_names_the_others_who_have_the_deal_open(
    local, client_for, rep, teammate, stages, django_assert_num_queries
):
    deal = DealFactory(owner=rep, stage=stages["demo"])
    presence(client_for(rep), deal, "1")
    client = client_for(teammate)
    with django_assert_num_queries(4):  # session, user, the deal's visibility, the names
        html = client.get(reverse("live_editing", args=[deal.pk])).content.decode()
    assert f"{rep.display_name} is editing" in html and "hidden" not in html
    # Nobody else: an empty, hidden note; their own presence is not news to the editor.
    mine = client_for(rep).get(reverse("live_editing", args=[deal.pk])).content.decode()
    assert "hidden" in mine and rep.display_name not in mine


def test_presence_ends_without_a_heartbeat(local, rep, teammate, stages, monkeypatch):
    deal = DealFactory(owner=rep, stage=stages["demo"])
    now = [1000.0]
    monkeypatch.setattr(live.time, "time", lambda: now[0])
    live.set_presence(deal.pk, rep.pk, editing=True)
    now[0] += live.PRESENCE_TTL - 1
    assert live.editors(deal.pk) == [rep.pk]
    now[0] += 2
    assert live.editors(deal.pk) == []


def test_presence_of_another_teams_deal_is_404_both_ways(heard, client_for, rep, outsider, stages):
    deal = DealFactory(owner=rep, stage=stages["demo"])
    presence(client_for(rep), deal, "1")
    heard()
    client = client_for(outsider)
    assert presence(client, deal, "1").status_code == 404
    assert heard() == []  # nothing recorded, nothing announced
    assert client.get(reverse("live_editing", args=[deal.pk])).status_code == 404


def test_opening_a_deal_one_may_see_but_not_change_is_403_and_not_announced(
    heard, client_for, rep, teammate, stages
):
    deal = DealFactory(owner=rep, stage=stages["demo"])
    assert presence(client_for(teammate), deal, "1").status_code == 403
    assert heard() == []
    assert live.editors(deal.pk) == []


def test_presence_without_a_deal_is_400(local, client_for, rep):
    response = client_for(rep).post(reverse("live_presence"), {"editing": "1"})
    assert response.status_code == 400


def test_presence_is_kept_in_redis_for_every_process(redis_backend, rep, monkeypatch):
    monkeypatch.setattr(live, "PRESENCE_KEY", f"test:presence:{id(redis_backend)}:{{}}")
    assert redis_backend.present(7, rep.pk, True, 1000.0) is True
    assert redis_backend.present(7, rep.pk, True, 1010.0) is False  # a heartbeat
    assert redis_backend.editors(7, 1020.0) == [rep.pk]
    assert redis_backend.editors(7, 1010.0 + live.PRESENCE_TTL + 1) == []
    assert redis_backend.present(7, rep.pk, False, 1020.0) is True
    assert redis_backend.editors(7, 1020.0) == []
    redis_backend.client.delete(live.PRESENCE_KEY.format(7))


def test_the_page_script_names_every_event_of_the_catalogue():
    """Every event a deal can have (the catalogue webhooks subscribe to) has its words in
    live.js ("moved by Ana Ruiz"); a new event added without them would say "changed"."""
    from pathlib import Path

    from webhooks.services import EVENT_TYPES

    script = Path(__file__).resolve().parents[2].joinpath("static/js/live.js").read_text()
    verbs = script[script.index("var VERBS") : script.index("};", script.index("var VERBS"))]
    assert [name for name in EVENT_TYPES if f'"{name}":' not in verbs] == []


def test_a_stream_that_stops_reading_holds_back_only_its_own_batches(local, monkeypatch):
    """The feed writes to every stream in one turn of the loop: a send that uvicorn holds
    back (flow control) makes later batches wait for it, joined; past the limit they are
    dropped for a resync. Other streams are written as before."""
    from deals.views import live as live_views

    monkeypatch.setattr(live_views, "BACKLOG_LIMIT", 3)

    async def scenario():
        loop = asyncio.get_running_loop()
        held = loop.create_future()
        slow_sent, fast_sent = [], []

        async def slow(message):
            slow_sent.append(message["body"])
            if len(slow_sent) == 1:
                await held

        async def fast(message):
            fast_sent.append(message["body"])

        slow_writer = live_views._Writer(live.Subscription(), slow, loop)
        fast_writer = live_views._Writer(live.Subscription(), fast, loop)
        for n in range(3):
            batch = [live.Message(f"{local.boot}-{n + 1}", f'{{"deal":{n}}}')]
            slow_writer.deliver(batch)
            fast_writer.deliver(batch)
        assert len(fast_sent) == 3 and len(slow_sent) == 1
        held.set_result(None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert slow_sent[1] == b"".join(fast_sent[1:])  # the two that waited, in order

        held = loop.create_future()
        slow_sent.clear()

        async def stuck(message):
            slow_sent.append(message["body"])
            if len(slow_sent) == 1:
                await held

        slow_writer.send = stuck
        for n in range(5):
            slow_writer.deliver([live.Message(f"{local.boot}-{n + 9}", "{}")])
        held.set_result(None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert slow_sent[-1] == live.Message("", "", live.RESYNC).encoded

    run_in_own_loop(scenario())
