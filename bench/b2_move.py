"""B2: one move at a time, POSTed as the board's drop (htmx) through the test client.

A rep moves their own open deals one stage on. Server time p50/p99, the SQL statements
one move runs (the transaction, the outbox hand-off and the two re-rendered columns),
and the ratios to B0's bare-SQL move and authenticated Django floor.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench import stats
from bench.datagen import Dataset


class MoveDriver:
    """Knows each deal's stage and version, so every POST is a valid, fresh move."""

    def __init__(self, client: Client, data: Dataset, deals: list[tuple[int, int, int]]) -> None:
        self.client = client
        self.opened = data.open_stage_ids
        self.state = {deal_id: [stage_id, version] for deal_id, stage_id, version in deals}
        self.cycle = itertools.cycle(list(self.state))
        self.moves: list[tuple[int, int, int, int]] = []

    def move(self) -> int:
        deal_id = next(self.cycle)
        stage_id, version = self.state[deal_id]
        target = self.opened[(self.opened.index(stage_id) + 1) % len(self.opened)]
        response = self.client.post(
            f"/deals/{deal_id}/move/",
            {"stage": target, "version": version, "source": "board"},
            headers={"HX-Request": "true"},
        )
        if response.status_code == 200:
            self.state[deal_id] = [target, version + 1]
            self.moves.append((deal_id, stage_id, target, version + 1))
        return response.status_code


def rep_open_deals(user_id: int, data: Dataset) -> list[tuple[int, int, int]]:
    from deals.models import Deal

    return list(
        Deal.objects.filter(owner_id=user_id, stage_id__in=data.open_stage_ids)
        .order_by("id")
        .values_list("id", "stage_id", "version")[:500]
    )


def measure(
    user: Any,
    data: Dataset,
    *,
    runs: int,
    floor_p50_ms: float,
    django_floor_p50_ms: float = 0,
    django_floor: dict[str, Any] | None = None,
) -> dict[str, Any]:
    client = Client()
    client.force_login(user)
    driver = MoveDriver(client, data, rep_open_deals(user.pk, data))
    statuses: list[int] = []

    def once() -> None:
        statuses.append(driver.move())

    cpu: list[float] = []
    timing = stats.summary(stats.repeat(once, runs=runs, warmup=10, cpu=cpu))
    counts = []
    for _ in range(5):
        with CaptureQueriesContext(connection) as queries:
            statuses.append(driver.move())
        counts.append(len(queries))
    calls = stats.python_calls(once)
    failed = sum(1 for status in statuses if status != 200)
    python_cpu = stats.summary(cpu)["p50_ms"]
    floor = django_floor or {}
    return {
        **timing,
        "python_cpu_p50_ms": python_cpu,
        "python_calls": calls,
        # The same ratio in load-independent terms (calls) and in CPU time.
        "calls_to_django_floor": stats.ratio(calls, floor.get("python_calls", 0)),
        "cpu_to_django_floor": stats.ratio(python_cpu, floor.get("python_cpu_p50_ms", 0)),
        "statements": int(statistics.median(counts)),
        "statements_range": [min(counts), max(counts)],
        "ratio_to_bare_sql": stats.ratio(timing["p50_ms"], floor_p50_ms),
        "ratio_to_django_floor": stats.ratio(timing["p50_ms"], django_floor_p50_ms),
        "not_200": failed,
        "deals_cycled": len(driver.state),
    }
