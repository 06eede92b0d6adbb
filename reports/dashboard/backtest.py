"""Forecast backtest: each past month's forecast as it stood on the month's first day,
worked out from the history, beside what was actually won in the month.

Method (docs/forecast-backtest.md): for a month M starting at D (local midnight of the
1st), a deal counts in M's forecast when its expected close date falls in M and, by its
stage history, it was in an open stage of the pipeline at D (its last stage change
before D). It adds its amount x probability (its override, else the probability of that
stage) to the weighted forecast, and its amount to the category of that stage (commit,
best case, pipeline). What was won in M: deals of the pipeline in a won stage whose close
falls in M. Because it reads the stage history, it works for imported history from the
first day; the weekly snapshots (`ForecastSnapshot`) record the live forecast from now on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from reports.dashboard.filters import DashboardScope
from reports.dashboard.history import (
    DEAL_TABLE,
    HISTORY,
    STAGE,
    _day,
    _dt,
    _fetch,
    _scope_cte,
    as_date,
)
from stages.models import ForecastCategory, StageKind

CENT = Decimal("0.01")
# Months a backtest shows at most: the most recent of the period.
MAX_MONTHS = 120


@dataclass(frozen=True)
class MonthBacktest:
    month: date
    currency: str
    forecast_deals: int = 0
    weighted: Decimal = Decimal("0.00")
    commit: Decimal = Decimal("0.00")
    best_case: Decimal = Decimal("0.00")
    pipeline: Decimal = Decimal("0.00")
    won_deals: int = 0
    won_value: Decimal = Decimal("0.00")


def _money(value: Any) -> Decimal:
    return Decimal("0.00") if value is None else Decimal(str(value)).quantize(CENT)


def _month_start(day: date, later: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + later
    return date(index // 12, index % 12 + 1, 1)


def months_of(scope: DashboardScope) -> list[date]:
    """First days of the months that meet the period and have begun by today, oldest
    first, the most recent MAX_MONTHS of them."""
    last = min(scope.period.last_day, scope.today)
    month = _month_start(scope.period.first_day)
    months = []
    while month <= last:
        months.append(month)
        month = _month_start(month, 1)
    return months[-MAX_MONTHS:]


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _month_of(date_sql: str) -> str:
    """SQL for the first day of the month of `date_sql` (a date)."""
    if connection.vendor == "postgresql":
        return f"CAST(date_trunc('month', CAST({date_sql} AS timestamp)) AS date)"
    return f"date({date_sql}, 'start of month')"


def _local_month(datetime_sql: str) -> tuple[str, tuple[Any, ...]]:
    """SQL (and its parameters) for the first day of the local month of `datetime_sql`."""
    tz = timezone.get_current_timezone_name()
    sql, params = connection.ops.datetime_trunc_sql("month", datetime_sql, (), tz)
    if connection.vendor == "postgresql":
        return f"CAST({sql} AS date)", params
    return f"date({sql})", params


def backtest(scope: DashboardScope) -> list[MonthBacktest]:
    """Per month of the period and currency: the forecast on its first day and the
    outcome (see the module docstring). One statement."""
    months = months_of(scope)
    if not months:
        return []
    cte, params, member = _scope_cte(scope)
    month_rows = " UNION ALL ".join(["SELECT %s AS first_day, %s AS starts_at"] * len(months))
    month_params: list[Any] = []
    for month in months:
        month_params += [_day(month), _dt(_midnight(month))]
    close_month, close_params = _local_month("d.closed_at")
    # Each deal's month by arithmetic, so months join by equality (a hash join) instead
    # of every deal being compared with every month; and each candidate's stage looked up
    # once (materialized: inlined, PostgreSQL looked it up again for the output).
    inline = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    sql = f"""
    WITH {cte},
    months AS ({month_rows}),
    candidates AS {inline}(
        SELECT m.first_day, d.currency, d.amount, d.probability_override,
               (SELECT h.to_stage_id FROM {HISTORY} h
                WHERE h.deal_id = d.id AND h.at < m.starts_at
                ORDER BY h.seq DESC LIMIT 1) AS stage_then
        FROM {DEAL_TABLE} d
        JOIN months m ON {_month_of("d.expected_close_date")} = m.first_day
        WHERE {member.format(deal="d.id")} AND d.created_at < m.starts_at
          AND d.expected_close_date >= %s AND d.expected_close_date < %s
    )
    SELECT 'forecast', c.first_day, c.currency, COUNT(*),
           SUM(c.amount * COALESCE(c.probability_override, s.probability)),
           SUM(CASE WHEN s.forecast_category = %s THEN c.amount END),
           SUM(CASE WHEN s.forecast_category = %s THEN c.amount END),
           SUM(CASE WHEN s.forecast_category = %s THEN c.amount END)
    FROM candidates c JOIN {STAGE} s ON s.id = c.stage_then
    WHERE s.kind = %s AND s.pipeline_id = %s AND s.forecast_category <> %s
    GROUP BY c.first_day, c.currency
    UNION ALL
    SELECT 'won', m.first_day, d.currency, COUNT(*), SUM(d.amount), NULL, NULL, NULL
    FROM {DEAL_TABLE} d JOIN {STAGE} s ON s.id = d.stage_id
    JOIN months m ON {close_month} = m.first_day
    WHERE {member.format(deal="d.id")} AND d.pipeline_id = %s AND s.kind = %s
      AND d.closed_at >= %s AND d.closed_at < %s
    GROUP BY m.first_day, d.currency
    """
    first, following = months[0], _month_start(months[-1], 1)
    params = [
        *params,
        *month_params,
        _day(first),
        _day(following),
        ForecastCategory.COMMIT,
        ForecastCategory.BEST_CASE,
        ForecastCategory.PIPELINE,
        StageKind.OPEN,
        scope.pipeline.pk,
        ForecastCategory.OMITTED,
        *close_params,
        scope.pipeline.pk,
        StageKind.WON,
        _dt(_midnight(first)),
        _dt(_midnight(following)),
    ]
    cells: dict[tuple[date, str], dict[str, Any]] = {}
    for kind, first_day, currency, n, value, commit, best, pipeline in _fetch(sql, params):
        cell = cells.setdefault((as_date(first_day), currency), {})
        if kind == "forecast":
            cell |= {
                "forecast_deals": n,
                "weighted": _money(_money(value) / 100),
                "commit": _money(commit),
                "best_case": _money(best),
                "pipeline": _money(pipeline),
            }
        else:
            cell |= {"won_deals": n, "won_value": _money(value)}
    return [
        MonthBacktest(month=month, currency=currency, **cell)
        for (month, currency), cell in sorted(cells.items())
    ]
