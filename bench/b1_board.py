"""B1: the board page, in-process through the test client (server time, no network).

For each user: p50/p95 of GET "/", the number of SQL queries, the HTML size, and the
same SQL replayed directly over psycopg (every statement the request ran, with its
parameters bound, results fetched): the floor the page cannot go below.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench import stats

URL = "/"


def capture(client: Client, url: str) -> tuple[list[str], int]:
    """The SQL one request runs, and its response size in bytes."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return [q["sql"] for q in queries.captured_queries], len(response.content)


def replay(
    conn: psycopg.Connection, statements: list[str], *, runs: int, warmup: int = 3
) -> dict[str, Any]:
    def once() -> None:
        with conn.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
                if cursor.description is not None:
                    cursor.fetchall()

    return stats.summary(stats.repeat(once, runs=runs, warmup=warmup))


def measure(user: Any, raw: psycopg.Connection, *, runs: int, url: str = URL) -> dict[str, Any]:
    client = Client()
    client.force_login(user)

    def once() -> None:
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    cpu: list[float] = []
    # One warm-up when runs are few and slow (the largest sizes), three otherwise.
    warmup = 1 if runs <= 5 else 3
    timing = stats.summary(stats.repeat(once, runs=runs, warmup=warmup, cpu=cpu))
    statements, size = capture(client, url)
    floor = replay(raw, statements, runs=runs, warmup=warmup)
    return {
        **timing,
        "python_cpu_p50_ms": stats.summary(cpu)["p50_ms"],
        "queries": len(statements),
        "html_bytes": size,
        "sql_floor_p50_ms": floor["p50_ms"],
        "ratio_to_sql": stats.ratio(timing["p50_ms"], floor["p50_ms"]),
    }
