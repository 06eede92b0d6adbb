"""Faults with the real services: the broker goes away, a worker dies mid-task, the
database drops every connection and refuses new ones. Nothing is lost or done twice.

Needs PostgreSQL (workers and the app server are other processes and must see committed
rows) and Redis (REDIS_URL set, as in CI); elsewhere every test skips, saying why. The
Redis these tests stop is a private redis-server they start on a port of their own, and
the database "restart" is simulated in front of PostgreSQL (terminated backends, then a
proxy that drops connections and refuses new ones); the shared services are never
touched. Figures (latencies, recovery times) are printed; run with -s to see them.
"""

from __future__ import annotations

import os
import signal
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
import redis as redis_client
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from common import outbox
from common.models import OutboxMessage
from deals import events
from deals.models import Event, EventReceipt, Notification, StalledFlag
from deals.services import move_deal
from deals.stalled import JOB_LOCK
from pipeline_crm.celery import app
from tests.factories import DealFactory
from tests.security.processes import (
    AppServer,
    RedisServer,
    TcpProxy,
    Worker,
    database_url,
    free_port,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

MOVES_WHILE_DOWN = 5


@pytest.fixture(autouse=True)
def real_services(db) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://127.0.0.1:6379/0 (CI does)")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port(6390))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def publish_to() -> Iterator[Callable[[str], None]]:
    """Make this process publish to a given broker, as the web process would."""
    before = (app.conf.task_always_eager, app.conf.broker_url)

    def point(url: str) -> None:
        app.conf.task_always_eager = False
        app.conf.broker_url = url

    yield point
    app.conf.task_always_eager, app.conf.broker_url = before


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def raw_connection() -> psycopg.Connection:
    """A connection of the test's own, outside Django, to hold locks from."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        autocommit=True,
    )


def waiting_on(lock: str) -> int:
    """Backends of the test database waiting for a lock: 'advisory' or a table name."""
    condition = "l.locktype = 'advisory'" if lock == "advisory" else "c.relname = %s"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_database d ON d.oid = l.database "
            f"WHERE NOT l.granted AND d.datname = current_database() AND {condition}",
            [] if lock == "advisory" else [lock],
        )
        return cursor.fetchone()[0]


def unsettled(server: RedisServer) -> int:
    """Messages the broker still holds: queued, or delivered but not acknowledged."""
    client = redis_client.Redis.from_url(server.url)
    try:
        return client.llen("celery") + client.hlen("unacked")
    finally:
        client.close()


def quiet_deal(owner, stages):
    """An open deal with nothing scheduled, created yesterday (a deal created today is never
    stalled): after its next move, the stalled job flags "no next step" and notifies its
    owner (one notification per deal, ever)."""
    return DealFactory(
        owner=owner, stage=stages["lead"], created_at=timezone.now() - timedelta(days=1)
    )


# --- the broker goes away while users move deals -----------------------------------------


def test_moves_succeed_while_redis_is_down_and_the_work_runs_once_it_is_back(
    redis, publish_to, workers, rep, stages
):
    workers.append(Worker(redis.url))
    workers[0].start()
    publish_to(redis.url)
    client = Client()
    client.force_login(rep)

    def move(deal) -> int:
        data = {"stage": stages["qualified"].pk, "version": deal.version}
        url = reverse("deal_move", args=[deal.pk])
        return client.post(url, data, headers={"HX-Request": "true"}).status_code

    # A process that has served before: one move while all is well, its work done.
    warm = quiet_deal(rep, stages)
    assert move(warm) == 200
    assert wait_for(lambda: Notification.objects.filter(deal=warm).exists(), seconds=60)
    deals = [quiet_deal(rep, stages) for _ in range(MOVES_WHILE_DOWN)]
    notices = Notification.objects.filter(deal__in=deals)

    redis.stop()
    timings = []
    for deal in deals:
        started = time.monotonic()
        assert move(deal) == 200
        timings.append(time.monotonic() - started)

    assert max(timings) < 1.0, timings
    moved = Event.objects.filter(name="deal.moved", deal_id__in=[d.pk for d in deals])
    assert moved.filter(handled_at__isnull=True).count() == MOVES_WHILE_DOWN
    assert notices.count() == 0

    back = time.monotonic()
    redis.start()
    moved.update(at=timezone.now() - timedelta(minutes=5))
    assert events.redispatch() == MOVES_WHILE_DOWN  # what beat's periodic drain does
    assert wait_for(lambda: notices.count() == MOVES_WHILE_DOWN, seconds=60)
    assert wait_for(lambda: not moved.filter(handled_at__isnull=True).exists(), seconds=60)
    recovered = time.monotonic() - back

    # At-least-once delivery: the same events handed over again change nothing.
    receipts = EventReceipt.objects.filter(event__in=moved).count()
    moved.update(handled_at=None)
    assert events.redispatch() == MOVES_WHILE_DOWN
    assert wait_for(lambda: not moved.filter(handled_at__isnull=True).exists(), seconds=60)
    assert wait_for(lambda: unsettled(redis) == 0, seconds=30)
    assert EventReceipt.objects.filter(event__in=moved).count() == receipts
    assert notices.count() == MOVES_WHILE_DOWN
    assert StalledFlag.objects.filter(deal__in=deals).count() == MOVES_WHILE_DOWN
    print(
        f"\nRedis down: {MOVES_WHILE_DOWN} moves, slowest {max(timings) * 1000:.0f} ms; "
        f"all follow-up work done {recovered:.1f} s after Redis returned; "
        f"a second delivery of every event added no notification"
    )


def test_outbox_work_lost_with_a_redis_restart_is_dispatched_again(
    redis, publish_to, workers, rep, stages
):
    # The worker is down; the message waits in Redis, which restarts without persistence.
    publish_to(redis.url)
    deal = quiet_deal(rep, stages)
    with transaction.atomic():
        outbox.enqueue("deals.refresh_stalled", deal_id=deal.pk)
    message = OutboxMessage.objects.get()
    assert message.dispatched_at is not None  # the broker took it
    assert message.finished_at is None  # but it is not done
    redis.stop()
    redis.start()
    assert unsettled(redis) == 0  # gone with the restart

    workers.append(Worker(redis.url))
    workers[0].start()
    OutboxMessage.objects.update(
        dispatched_at=timezone.now() - outbox.REDELIVER_AFTER - timedelta(seconds=1)
    )
    started = time.monotonic()
    assert outbox.drain() == 1  # what beat's periodic drain does
    assert wait_for(lambda: OutboxMessage.objects.get().finished_at is not None, seconds=60)
    assert Notification.objects.filter(deal=deal).count() == 1
    print(
        f"\nRedis restarted without persistence: the lost outbox message was sent again by "
        f"the drain and finished {time.monotonic() - started:.1f} s later"
    )


# --- a worker killed mid-task ------------------------------------------------------------


class Interruption:
    """Holds the processing of one deal.moved event inside its second consumer.

    Consumers run one after the other (by name), each in its own transaction with its
    receipt: `automations` and `forecasts` first (committed), then `stalled_flags`, whose
    refresh waits for the stalled job's advisory lock, held here, after writing its
    receipt (uncommitted).
    """

    def __init__(self) -> None:
        self.locks = raw_connection()
        self.key = zlib.crc32(JOB_LOCK.encode())

    def hold_start(self) -> None:
        self.locks.execute("SELECT pg_advisory_lock(%s)", [self.key])

    def hold_second_consumer(self) -> None:
        assert wait_for(lambda: waiting_on("advisory") == 1), "the consumer never started"
        first = {"automations": 1, "forecasts": 1}
        assert wait_for(lambda: receipts() == first), "first consumers not done"

    def release(self) -> None:
        self.locks.execute("SELECT pg_advisory_unlock(%s)", [self.key])

    def close(self) -> None:
        self.locks.close()


def receipts() -> dict[str, int]:
    """Committed receipts per consumer."""
    rows = EventReceipt.objects.values_list("consumer", flat=True)
    return {name: list(rows).count(name) for name in set(rows)}


@pytest.fixture
def interruption() -> Iterator[Interruption]:
    held = Interruption()
    yield held
    held.close()


def assert_done_exactly_once(redis: RedisServer, owner) -> None:
    assert wait_for(lambda: Event.objects.filter(handled_at__isnull=False).exists(), seconds=60)
    assert wait_for(lambda: unsettled(redis) == 0, seconds=30)
    assert Notification.objects.filter(user=owner).count() == 1
    assert StalledFlag.objects.count() == 1
    # Every consumer of deal.moved, webhooks and automations included, committed exactly
    # once; the flags' refresh published one deal.stalled, which the fan-out and the
    # automations took once too.
    expected = {"automations": 2, "forecasts": 1, "stalled_flags": 1, "webhooks": 2}
    assert wait_for(lambda: receipts() == expected, seconds=60), receipts()
    assert Event.objects.filter(name="deal.stalled").count() == 1


def test_pool_process_killed_mid_task_is_rerun_at_once_with_one_effect(
    redis, publish_to, workers, interruption, rep, stages
):
    worker = Worker(redis.url, pool="prefork")
    workers.append(worker)
    worker.start()
    publish_to(redis.url)
    deal = quiet_deal(rep, stages)
    interruption.hold_start()
    move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    interruption.hold_second_consumer()

    (child,) = worker.children()
    killed = time.monotonic()
    os.kill(child, signal.SIGKILL)  # a process this test started, by its pid
    # acks_late + reject_on_worker_lost: the message goes back to the queue at once and
    # a new pool process runs the task again, while the dead one's transaction is undone.
    interruption.release()

    assert_done_exactly_once(redis, rep)
    print(
        f"\npool process killed mid-task: task re-run, done "
        f"{time.monotonic() - killed:.1f} s later"
    )


def test_worker_killed_mid_task_redelivers_after_restart_with_one_effect(
    redis, publish_to, workers, interruption, rep, stages
):
    first = Worker(redis.url)
    workers.append(first)
    first.start()
    publish_to(redis.url)
    deal = quiet_deal(rep, stages)
    interruption.hold_start()
    move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    interruption.hold_second_consumer()

    first.stop(kill=True)  # kill -9: no warm shutdown, no acknowledgement
    killed = time.monotonic()
    interruption.release()
    # The dead worker's transaction is rolled back; its message waits, unacknowledged.
    assert wait_for(lambda: waiting_on("advisory") == 0)
    assert wait_for(lambda: Notification.objects.count() == 0)
    assert receipts() == {"automations": 1, "forecasts": 1}
    assert unsettled(redis) == 1

    second = Worker(redis.url)
    workers.append(second)
    second.start()

    assert_done_exactly_once(redis, rep)
    print(
        f"\nworker killed mid-task: redelivered to the restarted worker and done "
        f"{time.monotonic() - killed:.1f} s after the kill (visibility timeout 3 s)"
    )


# --- the database restarts ---------------------------------------------------------------


def test_database_outage_answers_503_and_the_app_recovers_by_itself(rep, stages):
    client = Client()
    client.force_login(rep)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    db = connection.settings_dict
    proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    proxy.start()
    server = AppServer(database_url(port=proxy.port))
    server.start()
    try:
        status, page, _ = server.get("/", cookie=cookie)
        assert status == 200 and stages["lead"].name in page

        # 1. Every connection to the database is cut (what a restart does to them).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchall(), "the app server held no connection to cut"
        started = time.monotonic()
        status, _, _ = server.get("/", cookie=cookie)
        reconnect = time.monotonic() - started
        # CONN_HEALTH_CHECKS: the dead connection is noticed and replaced, no error.
        assert status == 200

        # 2. The database is down: connections dropped, new ones refused.
        proxy.stop()
        answers = []
        outage_started = time.monotonic()
        while time.monotonic() - outage_started < 2:
            started = time.monotonic()
            status, page, headers = server.get("/", cookie=cookie)
            answers.append(time.monotonic() - started)
            assert status == 503, (status, page[:300])
            assert "cannot reach its database" in page
            assert headers.get("Retry-After") == "5"
            time.sleep(0.2)

        # 3. It is back: the very next request is served, no restart of the app.
        proxy.start()
        back = time.monotonic()
        statuses = []
        assert wait_for(
            lambda: statuses.append(server.get("/", cookie=cookie)[0]) or (statuses[-1] == 200),
            seconds=10,
        )
        recovered = time.monotonic() - back
        assert statuses[0] == 200
        print(
            f"\ndatabase outage: reconnect after cut connections {reconnect * 1000:.0f} ms "
            f"(answered 200); {len(answers)} requests during the outage all 503, slowest "
            f"{max(answers) * 1000:.0f} ms; first request after it came back answered 200 "
            f"in {recovered * 1000:.0f} ms"
        )
    finally:
        server.stop()
        proxy.stop()
