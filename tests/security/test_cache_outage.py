"""A cache outage never fails a request the database can serve.

The cache holds only the rate limiter's counters (common/ratelimit.py is its one user).
With Redis stopped, every board move, fix-and-move and search used to answer 500: the
limiter's cache call raised. Now the limiter counts in the process while the cache is
away, logs that it does, and tries the cache again a few seconds later.

Two ways to lose the cache: a port nothing listens on (runs everywhere), and a private
redis-server these tests start and stop by pid (tests/security/processes.py), never the
shared one.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
import redis as redis_client
from django.test import Client
from django.urls import reverse

from common import ratelimit
from pipeline_crm.celery import app
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory
from tests.security.processes import RedisServer, free_port

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def counters_of_this_test(monkeypatch):
    """Local counters and the cache's retry time are per process: start each test afresh."""
    monkeypatch.setattr(ratelimit, "_local", ratelimit._LocalCounters())


@pytest.fixture
def cache_at(settings) -> Callable[[str], None]:
    """Point the cache (and the broker, which a Redis outage takes away too) at `url`."""
    before = (app.conf.task_always_eager, app.conf.broker_url)

    def point(url: str) -> None:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "OPTIONS": settings.CACHES["default"].get(
                    "OPTIONS", {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
                ),
            }
        }
        app.conf.task_always_eager = False
        app.conf.broker_url = url

    yield point
    app.conf.task_always_eager, app.conf.broker_url = before


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH (CI has it)")
    server = RedisServer(free_port(6391))
    server.start()
    yield server
    server.stop()


def dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def requests_a_rep_makes(rep, stages) -> dict[str, Callable[[], int]]:
    """A board move, a fix-and-move and a search, each returning its status."""
    client = Client()
    client.force_login(rep)
    CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )
    moved = DealFactory(owner=rep, stage=stages["qualified"], title="Moved")
    fixed = DealFactory(owner=rep, stage=stages["lead"], title="Fixed")

    def move() -> int:
        data = {"stage": stages["demo"].pk, "version": moved.version, "source": "board"}
        return client.post(reverse("deal_move", args=[moved.pk]), data, headers=HTMX).status_code

    def fix_and_move() -> int:
        data = {
            "stage": stages["qualified"].pk,
            "version": fixed.version,
            "source": "board",
            "expected_close_date": "2031-03-31",
        }
        url = reverse("deal_fix_move", args=[fixed.pk])
        return client.post(url, data, headers=HTMX).status_code

    def search() -> int:
        return client.get(reverse("search"), {"q": "Moved"}).status_code

    return {"move": move, "fix-and-move": fix_and_move, "search": search}


def outage_warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if "rate limit cache unavailable" in r.getMessage()
    ]


def test_moves_fix_and_move_and_search_answer_while_the_cache_is_unreachable(
    cache_at, rep, stages, caplog
):
    cache_at(dead_redis_url())
    requests = requests_a_rep_makes(rep, stages)

    with caplog.at_level(logging.WARNING, logger="common.ratelimit"):
        statuses = {name: send() for name, send in requests.items()}

    assert statuses == {"move": 200, "fix-and-move": 200, "search": 200}
    # Said once, not once per request: the cache is retried after a few seconds.
    assert len(outage_warnings(caplog)) == 1
    assert "counting in this process" in outage_warnings(caplog)[0]


def test_rate_limits_still_hold_in_the_process_while_the_cache_is_down(
    cache_at, rep, stages, settings, monkeypatch
):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search": (2, 60)}
    # One fixed window, whatever the wall clock says.
    frozen = SimpleNamespace(time=lambda: 1_800_000_000.0)
    monkeypatch.setattr(ratelimit, "time", frozen)
    cache_at(dead_redis_url())
    search = requests_a_rep_makes(rep, stages)["search"]

    assert [search(), search(), search()] == [200, 200, 429]


def test_redis_stopped_mid_session_then_back(redis, cache_at, rep, stages, caplog, monkeypatch):
    """The real thing: counters in a live Redis, Redis stopped, requests served, Redis
    back, counting returns to it once the retry interval has passed."""
    cache_at(redis.url)
    requests = requests_a_rep_makes(rep, stages)
    counters = redis_client.Redis.from_url(redis.url)
    try:
        assert requests["search"]() == 200
        assert counters.keys("*ratelimit:search*"), "the counter should live in Redis"
    finally:
        counters.close()

    redis.stop()
    timings = {}
    with caplog.at_level(logging.WARNING, logger="common.ratelimit"):
        for name, send in requests.items():
            started = time.monotonic()
            assert send() == 200, name
            timings[name] = time.monotonic() - started
    assert len(outage_warnings(caplog)) == 1

    redis.start()
    monkeypatch.setattr(ratelimit._local, "cache_down_until", 0.0)
    assert requests["search"]() == 200
    counters = redis_client.Redis.from_url(redis.url)
    try:
        assert counters.keys("*ratelimit:search*"), "counting should be back in Redis"
    finally:
        counters.close()
    print(
        "\nRedis stopped: "
        + ", ".join(f"{name} 200 in {seconds * 1000:.0f} ms" for name, seconds in timings.items())
    )


def test_a_counter_found_without_an_expiry_gets_one(redis, cache_at, rep, stages):
    """A counter left without an expiry (expired or evicted between two commands, or
    written by an older version) is given the window's expiry by the next request: no
    rate-limit key stays in Redis for good."""
    cache_at(redis.url)
    search = requests_a_rep_makes(rep, stages)["search"]
    counters = redis_client.Redis.from_url(redis.url)
    try:
        assert search() == 200
        [key] = counters.keys("*ratelimit:search*")
        counters.persist(key)
        assert counters.ttl(key) == -1

        assert search() == 200

        assert int(counters.get(key)) == 2
        assert 0 < counters.ttl(key) <= 60
    finally:
        counters.close()
