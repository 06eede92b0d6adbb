"""Probes for load balancers and orchestrators: liveness and readiness, answered in JSON.

Both are public (no login) and say nothing about the data or the infrastructure beyond
which check failed; the reasons go to the log.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 1.0


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No I/O, so an outage of the database or Redis does
    not get healthy web processes restarted; /readyz takes them out of rotation instead."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers and has every migration this code expects, and
    Redis answers when it is configured. 200 when all pass, else 503 naming what failed."""
    checks = {"database": database_check()}
    checks["migrations"] = migrations_check() if checks["database"] == "ok" else "unknown"
    checks["redis"] = redis_check() if settings.REDIS_URL else "not configured"
    ready = all(result in {"ok", "not configured"} for result in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def database_check() -> str:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        log.warning("readiness: database unreachable", exc_info=True)
        return "unreachable"
    return "ok"


def migrations_check() -> str:
    """The plan `migrate` would run is empty: a web process started before the migrate
    step finished (or from newer code than the schema) is not ready."""
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        log.warning("readiness: migration state unreadable", exc_info=True)
        return "unknown"
    return f"{len(plan)} unapplied" if plan else "ok"


def redis_check() -> str:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except redis.RedisError:
        log.warning("readiness: Redis unreachable", exc_info=True)
        return "unreachable"
    finally:
        client.close()
    return "ok"
