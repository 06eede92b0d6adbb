"""/healthz and /readyz: liveness without I/O, readiness of database, migrations, Redis."""

from __future__ import annotations

import socket

import pytest
from django.db import OperationalError, connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.test.utils import CaptureQueriesContext


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_liveness_answers_ok_without_any_query(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_liveness_is_not_cached(db):
    response = Client().get("/healthz")

    assert "no-store" in response["Cache-Control"]


def test_readiness_answers_ready_when_database_is_migrated(db, settings):
    settings.REDIS_URL = ""

    response = Client().get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "not configured"},
    }


def test_readiness_costs_the_same_statements_every_time(db, settings):
    settings.REDIS_URL = ""
    client = Client()
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            client.get("/readyz")
        counts.append(len(queries))

    assert counts[0] == counts[1] <= 3


def test_readiness_fails_while_a_migration_is_unapplied(db, settings):
    settings.REDIS_URL = ""
    MigrationRecorder.Migration.objects.filter(app="deals").order_by("-id").first().delete()

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["migrations"] == "1 unapplied"


def test_readiness_fails_when_the_database_is_unreachable(db, settings, monkeypatch):
    settings.REDIS_URL = ""

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(connection, "cursor", refuse)
        response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "unreachable",
        "migrations": "unknown",
        "redis": "not configured",
    }


def test_readiness_fails_when_configured_redis_is_unreachable(db, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unreachable"
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.redis
def test_readiness_pings_configured_redis(db, settings):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://127.0.0.1:6379/0 (CI does)")

    response = Client().get("/readyz")

    assert response.json()["checks"]["redis"] == "ok"


def test_failure_answer_names_the_check_but_not_the_error(db, settings):
    settings.REDIS_URL = f"redis://user:secret@127.0.0.1:{free_port()}/0"

    body = Client().get("/readyz").content.decode()

    assert "secret" not in body and "refused" not in body.lower()
