"""B5: the managers' dashboard, per panel and as a whole page.

Uses the dashboard's public entry points (`reports.dashboard.filters.filter_form`, the
`PANELS` registry and `Dashboard(scope).panel(slug)`), as h5's bench/dashboard_bench.py
does, but on this package's data and with its results recorded. Each panel is timed on a
fresh `Dashboard`, so the queries it shares with other panels are paid for in full.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import stats

URL = "/reports/dashboard/"


def five_years(today: Any) -> dict[str, str]:
    """The dashboard's filters for a custom period of the five years up to `today`."""
    first = today.replace(year=today.year - 5) + timedelta(days=1)
    return {"period": "custom", "date_from": first.isoformat(), "date_to": today.isoformat()}


def measure(
    user: Any,
    *,
    runs: int,
    warm: bool = True,
    page: bool = True,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Per panel: median of `runs` (after one warm-up run unless `warm` is off), queries;
    then the whole page through the test client unless `page` is off. `query`: the
    dashboard's filters (the defaults without it)."""
    from reports.dashboard import stays
    from reports.dashboard.filters import filter_form
    from reports.dashboard.panels import PANELS, Dashboard

    # In production the periodic job keeps the dashboard's summaries current; the
    # generated data has never seen it run (the second call, for the manager, adds nothing).
    started = time.perf_counter()
    refreshed = stays.refresh()
    refresh_s = round(time.perf_counter() - started, 2)
    if refreshed.added and connection.vendor == "postgresql":
        # What autovacuum does soon after so many inserts, in production: statistics, and
        # the visibility map that lets the dashboard read the summaries' indexes alone.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE reports_stagestay, reports_stageentry")
    form = filter_form(query or {}, user=user)
    if not form.is_valid():
        raise RuntimeError(f"dashboard filters refused the defaults: {form.errors}")
    scope = form.scope(now=timezone.now())
    panels: dict[str, Any] = {}
    for slug in PANELS:
        timings, counts = [], []
        for _ in range(runs + int(warm)):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                Dashboard(scope).panel(slug)
                timings.append(time.perf_counter() - started)
            counts.append(len(queries))
        timings = timings[int(warm) :]  # the first run warms caches
        panels[slug] = {
            "p50_ms": round(statistics.median(timings) * 1000, 1),
            "max_ms": round(max(timings) * 1000, 1),
            "queries": counts[-1],
        }
    result: dict[str, Any] = {
        "deals_in_scope": scope.deals().count(),
        "panels": panels,
        "stays_refresh": {"added": refreshed.added, "seconds": refresh_s},
    }
    if not page:
        return result
    client = Client()
    client.force_login(user)

    def page() -> None:
        response = client.get(URL, query or {})
        assert response.status_code == 200, response.status_code

    whole = stats.summary(stats.repeat(page, runs=runs, warmup=1))
    with CaptureQueriesContext(connection) as queries:
        page()
    return {**result, "page_p50_ms": whole["p50_ms"], "page_queries": len(queries)}
