"""Real Celery: a worker process consumes what a move enqueued; the broker can go away.

Needs PostgreSQL (the worker is another process and must see committed rows) and Redis
(REDIS_URL). CI runs the suite once with both; elsewhere these tests skip, saying why.
Each test uses its own Redis database number so stray messages of other tests (the
suite runs with REDIS_URL set) cannot reach the worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import kombu.transport.redis  # noqa: F401 - imported up front, not inside a timed hand-off
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from deals import events
from deals.models import Event, StalledFlag, StalledRule
from deals.services import move_deal
from pipeline_crm.celery import app
from reports.models import Forecast
from tests.factories import DealFactory

ROOT = Path(__file__).resolve().parent.parent
WORKER_DB = 13  # a Redis database of our own on the configured server
pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def redis_url(db: int, port: int | None = None) -> str:
    parts = urlsplit(settings.REDIS_URL)
    netloc = parts.netloc if port is None else f"{parts.hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, f"/{db}", "", ""))


def redis_reachable() -> bool:
    parts = urlsplit(settings.REDIS_URL)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def real_stack(transactional_db) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://127.0.0.1:6379/0 (CI does)")
    assert redis_reachable(), f"REDIS_URL is set but {settings.REDIS_URL} does not answer"


def database_url() -> str:
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{user}{password}@{host}/{db['NAME']}"


@pytest.fixture
def publish_to() -> Iterator[Callable[[str], None]]:
    """Make this process publish to a given broker URL, as the web process would."""
    before = (app.conf.task_always_eager, app.conf.broker_url)

    def point(url: str) -> None:
        app.conf.task_always_eager = False
        app.conf.broker_url = url

    yield point
    app.conf.task_always_eager, app.conf.broker_url = before


@pytest.fixture
def worker(real_stack) -> Iterator[subprocess.Popen[bytes]]:
    """`celery worker` in its own process, on the test database and our Redis database."""
    broker = redis_url(WORKER_DB)
    purge = [sys.executable, "-m", "celery", "-A", "pipeline_crm", "purge", "-f"]
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker,
        "DJANGO_SETTINGS_MODULE": "pipeline_crm.settings",
    }
    subprocess.run(purge, cwd=ROOT, env=env, check=True, capture_output=True, timeout=30)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "pipeline_crm",
        "worker",
        "--pool=solo",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    # Shown by pytest only when the test failed.
    sys.stdout.write(output.decode(errors="replace"))


def wait_for(check: Callable[[], bool], *, seconds: float = 40) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def stale_deal(owner, stages):
    """An open deal flagged 'in stage too long' that has a forecast to compute."""
    stages["lead"].rotting_days = 2
    stages["lead"].save()
    deal = DealFactory(
        owner=owner,
        stage=stages["lead"],
        amount=Decimal("1000"),
        expected_close_date=timezone.localdate() + timedelta(days=10),
        stage_entered_at=timezone.now() - timedelta(days=9),
    )
    StalledFlag.objects.create(deal=deal, rule=StalledRule.IN_STAGE_TOO_LONG)
    return deal


def still_stale(deal) -> bool:
    return StalledFlag.objects.filter(deal=deal, rule=StalledRule.IN_STAGE_TOO_LONG).exists()


def test_worker_consumes_the_work_a_move_enqueued(worker, publish_to, rep, stages):
    deal = stale_deal(rep, stages)
    publish_to(redis_url(WORKER_DB))
    move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    # Committed (transactional test): the hand-off already ran and reached Redis; the
    # worker ran both consumers of the deal.moved event: flags cleared, forecast computed.
    assert wait_for(lambda: not still_stale(deal))
    assert wait_for(lambda: Forecast.objects.filter(owner=rep, weighted=Decimal("200")).exists())
    assert wait_for(lambda: Event.objects.get(name="deal.moved").handled_at is not None)


class Proxy:
    """A TCP forwarder to Redis on a port of its own: stopped, the broker is unreachable."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: socket.socket | None = None
        self.stop = threading.Event()

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.server.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        if self.server is not None:
            self.server.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def time_handoffs(monkeypatch) -> list[float]:
    """Seconds each after-commit hand-off takes: what the broker adds to a request."""
    seconds: list[float] = []
    dispatch = events.dispatch

    def timed(event_ids):
        started = time.monotonic()
        try:
            return dispatch(event_ids)
        finally:
            seconds.append(time.monotonic() - started)

    monkeypatch.setattr(events, "dispatch", timed)
    return seconds


def test_move_with_broker_down_answers_quickly_and_its_work_runs_once_it_is_back(
    worker, publish_to, rep, stages, monkeypatch
):
    parts = urlsplit(settings.REDIS_URL)
    proxy = Proxy((parts.hostname, parts.port or 6379))
    deal = stale_deal(rep, stages)
    publish_to(redis_url(WORKER_DB, port=proxy.port))  # nothing listens there yet

    handoffs = time_handoffs(monkeypatch)
    move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    assert len(handoffs) == 1 and handoffs[0] < 1.0
    assert Event.objects.get(name="deal.moved").handled_at is None
    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]

    proxy.start()
    try:
        Event.objects.update(at=timezone.now() - timedelta(minutes=5))
        assert events.redispatch() == 1  # what beat's periodic drain does
        assert wait_for(lambda: not still_stale(deal))
        assert wait_for(lambda: Forecast.objects.filter(owner=rep).exists())
    finally:
        proxy.close()
