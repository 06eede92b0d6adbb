"""The outbox: work recorded with the move, dispatched after commit, never lost or blocking."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from common import outbox
from common.models import OutboxMessage
from deals import events
from deals.models import Event, StalledFlag, StalledRule
from deals.services import move_deal
from pipeline_crm.celery import app
from reports.models import Forecast
from tests.factories import ActivityFactory, DealFactory


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def redis_client_loaded():
    # A web process imports the Redis client once; the first publish must not be timed
    # with that import (seconds on a loaded machine).
    import kombu.transport.redis  # noqa: F401


@pytest.fixture
def broker_down():
    """Celery pointed at a port where nothing listens: every publish is refused."""
    before = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = f"redis://127.0.0.1:{closed_port()}/0"
    yield
    app.conf.task_always_eager, app.conf.broker_url = before


@pytest.fixture
def broker_silent():
    """A broker that accepts connections and never answers (a hung server, a bad proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    before = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    yield
    app.conf.task_always_eager, app.conf.broker_url = before
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def timed_move(deal, stage, user, capture):
    """Move, then run the after-commit hand-off as a committed request would.

    Returns the seconds the hand-off took: what the broker adds to the request (the
    move's own transaction costs the same whatever the broker does).
    """
    with capture() as callbacks:
        move_deal(deal, stage, by=user, expected_version=deal.version)
    started = time.monotonic()
    # Work the hand-off itself schedules (in-process) runs too, as after a real commit.
    with capture(execute=True):
        for callback in callbacks:
            callback()
    return time.monotonic() - started


def test_move_records_follow_up_in_its_transaction(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    move_deal(deal, stages["qualified"], by=rep, expected_version=1)
    event = Event.objects.get()
    assert event.name == "deal.moved"
    assert event.payload["deal_id"] == deal.pk and event.payload["owner_id"] == rep.pk
    assert event.handled_at is None


def test_enqueue_rolled_back_with_its_transaction_leaves_nothing(
    db, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        outbox.enqueue("deals.refresh_stalled", deal_id=1)
        raise RuntimeError("request failed")
    assert OutboxMessage.objects.count() == 0
    assert callbacks == []


def test_after_commit_in_process_the_move_clears_flags_and_recomputes_forecast(
    rep, stages, eager, django_capture_on_commit_callbacks
):
    stages["lead"].rotting_days = 2
    stages["lead"].save()
    deal = DealFactory(
        owner=rep,
        stage=stages["lead"],
        stage_entered_at=timezone.now() - timedelta(days=9),
        expected_close_date=timezone.localdate() + timedelta(days=20),
    )
    ActivityFactory(deal=deal)
    StalledFlag.objects.create(deal=deal, rule=StalledRule.IN_STAGE_TOO_LONG)
    timed_move(deal, stages["qualified"], rep, django_capture_on_commit_callbacks)
    assert not StalledFlag.objects.exists()
    assert Forecast.objects.filter(owner=rep).exists()
    assert not Event.objects.filter(handled_at__isnull=True).exists()


def test_move_with_broker_refusing_answers_quickly_and_keeps_the_work(
    rep, stages, broker_down, django_capture_on_commit_callbacks
):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    seconds = timed_move(deal, stages["qualified"], rep, django_capture_on_commit_callbacks)
    assert seconds < 1.0
    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]
    assert Event.objects.get().handled_at is None  # kept for the drain


def test_move_with_broker_hanging_answers_within_a_second(
    rep, stages, broker_silent, django_capture_on_commit_callbacks
):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    seconds = timed_move(deal, stages["qualified"], rep, django_capture_on_commit_callbacks)
    assert seconds < 1.0
    assert Event.objects.get().handled_at is None


def test_drain_dispatches_what_the_broker_refused_once_it_is_back(
    rep, stages, broker_down, django_capture_on_commit_callbacks
):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    StalledFlag.objects.create(deal=deal, rule=StalledRule.IN_STAGE_TOO_LONG)
    timed_move(deal, stages["qualified"], rep, django_capture_on_commit_callbacks)
    Event.objects.update(at=timezone.now() - timedelta(minutes=5))
    app.conf.task_always_eager = True  # the broker is back (here: in-process)
    with django_capture_on_commit_callbacks(execute=True):
        assert events.redispatch() == 1
    assert Event.objects.get(name="deal.moved").handled_at is not None
    assert not StalledFlag.objects.filter(rule=StalledRule.IN_STAGE_TOO_LONG).exists()


def test_drain_leaves_fresh_rows_to_their_own_after_commit_dispatch(db, eager):
    OutboxMessage.objects.create(task="deals.refresh_stalled", payload={"deal_id": 1})
    assert outbox.drain() == 0
    assert OutboxMessage.objects.get().dispatched_at is None


def test_drain_twice_dispatches_each_row_once(db, eager, monkeypatch):
    OutboxMessage.objects.create(
        task="deals.refresh_stalled",
        payload={"deal_id": 1},
        created_at=timezone.now() - timedelta(minutes=1),
    )
    calls = []
    monkeypatch.setattr("deals.tasks.stalled.refresh_flags", lambda **kwargs: calls.append(kwargs))
    assert outbox.drain() == 1
    assert outbox.drain() == 0
    assert calls == [{"deal_ids": [1]}]


def test_drain_forgets_rows_finished_long_ago(db, eager):
    old = timezone.now() - timedelta(days=8)
    OutboxMessage.objects.create(
        task="deals.refresh_stalled", created_at=old, dispatched_at=old, finished_at=old
    )
    outbox.drain()
    assert not OutboxMessage.objects.exists()


def test_failing_task_stays_pending_for_a_retry(db, eager, monkeypatch):
    message = OutboxMessage.objects.create(task="deals.refresh_stalled", payload={"deal_id": 1})

    def boom(**kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr("deals.tasks.stalled.refresh_flags", boom)
    assert outbox.dispatch([message.pk]) == 0
    message.refresh_from_db()
    assert message.dispatched_at is None and message.attempts == 1


class FakeBroker:
    """Stands in for the broker connection: counts connections opened and messages sent."""

    def __init__(self, fail_sends: int = 0) -> None:
        self.opened: list[object] = []
        self.released: list[object] = []
        self.sent: list[tuple[str, object]] = []
        self.fail_sends = fail_sends

    def connection_for_write(self, **kwargs):
        broker = self

        class Connection:
            def release(self) -> None:
                broker.released.append(self)

        connection = Connection()
        self.opened.append(connection)
        return connection

    def send_task(self, name, *, kwargs, producer, retry):
        if self.fail_sends:
            self.fail_sends -= 1
            raise ConnectionError("broker went away")
        self.sent.append((name, producer))


@pytest.fixture
def fake_broker(monkeypatch):
    broker = FakeBroker()
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "broker_url", "redis://fake-broker:6379/0")
    monkeypatch.setattr(app, "connection_for_write", broker.connection_for_write)
    monkeypatch.setattr(app, "send_task", broker.send_task)
    monkeypatch.setattr(app.amqp, "Producer", lambda connection: ("producer", connection))
    outbox._kept.clear()
    yield broker
    outbox._kept.clear()


def test_dispatch_keeps_one_broker_connection_for_later_moves(db, fake_broker):
    first = OutboxMessage.objects.create(task="deals.after_move", payload={"deal_id": 1})
    second = OutboxMessage.objects.create(task="deals.after_move", payload={"deal_id": 2})
    assert outbox.dispatch([first.pk]) == 1
    assert outbox.dispatch([second.pk]) == 1
    assert len(fake_broker.opened) == 1
    assert [producer for _, producer in fake_broker.sent] == [
        ("producer", fake_broker.opened[0])
    ] * 2


def test_a_kept_connection_that_died_gets_one_fresh_try(db, fake_broker):
    first = OutboxMessage.objects.create(task="deals.after_move", payload={"deal_id": 1})
    second = OutboxMessage.objects.create(task="deals.after_move", payload={"deal_id": 2})
    outbox.dispatch([first.pk])
    fake_broker.fail_sends = 1  # the broker restarted: the kept connection is dead
    assert outbox.dispatch([second.pk]) == 1
    assert len(fake_broker.opened) == 2
    assert fake_broker.released == [fake_broker.opened[0]]
    assert OutboxMessage.objects.filter(dispatched_at__isnull=True).count() == 0


def test_a_fresh_connection_that_fails_is_not_retried(db, fake_broker):
    message = OutboxMessage.objects.create(task="deals.after_move", payload={"deal_id": 1})
    fake_broker.fail_sends = 2
    assert outbox.dispatch([message.pk]) == 0
    assert len(fake_broker.opened) == 1
    message.refresh_from_db()
    assert message.dispatched_at is None and message.attempts == 1
