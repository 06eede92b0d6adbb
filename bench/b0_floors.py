"""B0 floors: what the hardware and the framework cost before the application does anything.

- a psycopg `SELECT 1` round trip on its own connection;
- the move transaction as bare SQL over psycopg: lock the row, update stage, position and
  version, append the history row, commit (what `move_deal` must do at the least);
- a bare Django "hello" view (bench/urls.py) through the full middleware stack, in-process
  with the test client (the floor for B1/B2) and over HTTP on gunicorn (for B3);
- the authenticated Django floor of a move (bench/urls.py `touch`): a POST through the full
  middleware stack with a logged-in session that locks and updates one deal row, in-process
  like B2, with its Python CPU time; B2 reports the move as a multiple of it.
"""

from __future__ import annotations

import http.client
import time
from typing import Any

import psycopg

from bench import stats
from bench.datagen import Dataset, columns

RUNS = 200


def select_one(conn: psycopg.Connection, *, runs: int = RUNS) -> dict[str, Any]:
    def once() -> None:
        conn.execute("SELECT 1").fetchone()

    return stats.summary(stats.repeat(once, runs=runs, warmup=20))


def _history_insert() -> tuple[str, list[Any]]:
    from deals.models import StageChange

    cols, exprs, defaults = columns(
        StageChange,
        {
            "deal": "v.deal_id",
            "seq": "v.seq",
            "from_stage": "v.from_id",
            "to_stage": "v.to_id",
            "pipeline": "v.pipeline_id",
            "at": "now()",
            "by": "v.by_id",
            "source": "'api'",
        },
    )
    sql = (
        f"INSERT INTO deals_stagechange ({cols}) SELECT {exprs} FROM (SELECT %s::bigint "
        "AS deal_id, %s::int AS seq, %s::bigint AS from_id, %s::bigint AS to_id, "
        "%s::bigint AS pipeline_id, %s::bigint AS by_id) v"
    )
    return sql, defaults


def bare_move(conn: psycopg.Connection, data: Dataset, *, runs: int = RUNS) -> dict[str, Any]:
    """Move `runs` distinct open deals one stage on, in bare SQL; the protocol's minimum.

    The rows written keep every invariant the integrity check verifies (version + 1, the
    next seq, a history row from the old stage to the new one).
    """
    insert, defaults = _history_insert()
    opened = data.open_stage_ids
    picked = conn.execute(
        "SELECT id, owner_id FROM deals_deal WHERE stage_id = ANY(%s) ORDER BY id DESC LIMIT %s",
        [opened, runs + 20],
    ).fetchall()
    queue = iter(picked)

    def once() -> None:
        deal_id, owner_id = next(queue)
        with conn.transaction():
            stage_id, version = conn.execute(
                "SELECT stage_id, version FROM deals_deal WHERE id = %s FOR UPDATE", [deal_id]
            ).fetchone()
            target = opened[(opened.index(stage_id) + 1) % len(opened)]
            conn.execute(
                """
                UPDATE deals_deal SET stage_id = %s, stage_entered_at = now(), closed_at = NULL,
                    position = (SELECT coalesce(min(position), 0) - 1024
                                FROM deals_deal WHERE stage_id = %s),
                    version = version + 1, updated_at = now()
                WHERE id = %s
                """,
                [target, target, deal_id],
            )
            conn.execute(
                insert,
                [*defaults, deal_id, version + 1, stage_id, target, data.pipeline_id, owner_id],
            )

    result = stats.summary(stats.repeat(once, runs=min(runs, len(picked) - 20), warmup=20))
    result["statements"] = 3  # plus BEGIN and COMMIT
    return result


def hello_in_process(client: Any, *, runs: int = RUNS) -> dict[str, Any]:
    def once() -> None:
        response = client.get("/bench/hello/")
        assert response.status_code == 200, response.status_code

    return stats.summary(stats.repeat(once, runs=runs, warmup=20))


def authenticated_floor(client: Any, deal_id: int, *, runs: int = RUNS) -> dict[str, Any]:
    """POST /bench/touch/<deal>/ as the logged-in `client`: p50 and Python CPU p50."""

    def once() -> None:
        response = client.post(f"/bench/touch/{deal_id}/")
        assert response.status_code == 200, response.status_code

    cpu: list[float] = []
    result = stats.summary(stats.repeat(once, runs=runs, warmup=20, cpu=cpu))
    result["python_cpu_p50_ms"] = stats.summary(cpu)["p50_ms"]
    result["python_calls"] = stats.python_calls(once)
    return result


def hello_http(host: str, port: int, *, runs: int = RUNS) -> dict[str, Any]:
    """One request at a time over loopback, a new connection each (gunicorn sync workers
    close the connection after every response)."""

    def once() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/bench/hello/")
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200, response.status

    samples = stats.repeat(once, runs=runs, warmup=20)
    return stats.summary(samples)


def wait_for(host: str, port: int, *, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/bench/hello/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on {host}:{port} did not answer within {seconds} s")
        time.sleep(0.2)
