"""B6: the public API, in-process through DRF's test client with a personal token.

A rep lists 100 deals (one cursor page) and moves their own open deals one stage on
(If-Match carries the version). Server time p50/p95/p99 and the SQL statements each
request runs, which must not grow with the number of deals.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from bench import stats
from bench.b2_move import rep_open_deals
from bench.datagen import Dataset


def _client(user: Any) -> APIClient:
    from api import tokens
    from api.models import TokenScope

    secret = tokens.create_token(by=user, name="bench", scope=TokenScope.READ_WRITE).secret
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _statements(request: Any, times: int = 5) -> int:
    counts = []
    for _ in range(times):
        with CaptureQueriesContext(connection) as queries:
            request()
        counts.append(len(queries))
    return int(statistics.median(counts))


def measure(user: Any, data: Dataset, *, runs: int) -> dict[str, Any]:
    client = _client(user)

    def list_page() -> None:
        response = client.get("/api/v1/deals/?page_size=100")
        assert response.status_code == 200, response.status_code

    listing = stats.summary(stats.repeat(list_page, runs=runs, warmup=3))
    listing["statements"] = _statements(list_page)

    state = {pk: [stage, version] for pk, stage, version in rep_open_deals(user.pk, data)}
    cycle = itertools.cycle(list(state))
    opened = data.open_stage_ids
    statuses: list[int] = []

    def move() -> None:
        deal_id = next(cycle)
        stage_id, version = state[deal_id]
        target = opened[(opened.index(stage_id) + 1) % len(opened)]
        response = client.post(
            f"/api/v1/deals/{deal_id}/move/",
            {"stage": target},
            format="json",
            HTTP_IF_MATCH=f'"{version}"',
        )
        statuses.append(response.status_code)
        if response.status_code == 200:
            state[deal_id] = [target, version + 1]

    moving = stats.summary(stats.repeat(move, runs=runs, warmup=5))
    moving["statements"] = _statements(move)
    moving["not_200"] = sum(1 for status in statuses if status != 200)
    return {"list_100": listing, "move": moving}
