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

Each deal's stage at the start of its close month is stored in `CloseMonthStage` for the
months the summaries' mark has passed (`fill_close_month_stages`), so the backtest does
not look up every candidate's history; a deal without a matching row is looked up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from deals.models import RewrittenHistory
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
from reports.models import CloseMonthStage, StageStayMark
from stages.models import ForecastCategory, StageKind

CENT = Decimal("0.01")
# Months a backtest shows at most: the most recent of the period.
MAX_MONTHS = 120
# Months before the mark's that `CloseMonthStage` keeps (older ones are looked up).
STORED_MONTHS = 240
CLOSE_MONTH = CloseMonthStage._meta.db_table
MARK = StageStayMark._meta.db_table
REWRITTEN = RewrittenHistory._meta.db_table


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


def _month_rows(months: list[date]) -> tuple[str, list[Any]]:
    """`months` as rows (first_day, starts_at) to join with, and their parameters."""
    sql = " UNION ALL ".join(["SELECT %s AS first_day, %s AS starts_at"] * len(months))
    params: list[Any] = []
    for month in months:
        params += [_day(month), _dt(_midnight(month))]
    return sql, params


def _stage_at(deal: str, starts_at: str) -> str:
    """SQL: the to-stage of `deal`'s last change (by seq) before `starts_at`."""
    return f"""(SELECT h.to_stage_id FROM {HISTORY} h
                WHERE h.deal_id = {deal} AND h.at < {starts_at}
                ORDER BY h.seq DESC LIMIT 1)"""


def fill_close_month_stages(cursor: Any, until: datetime) -> None:
    """Store (or replace) the `CloseMonthStage` row of every deal whose close month began
    before `until` (the summaries' new mark) and that has no row for that month: a new
    month, a new deal, a changed close date, a deal the catch-up emptied. Every change
    dated before such a month's start has committed (see `stays._settled`), and a later
    backdated one marks the deal, so the row stays equal to its history."""
    last = _month_start(timezone.localtime(until).date())
    # The month `until` is in began before it.
    months = [_month_start(last, -back) for back in range(STORED_MONTHS, -1, -1)]
    rows, params = _month_rows(months)
    sql = f"""
    INSERT INTO {CLOSE_MONTH} (deal_id, month, stage_id)
    SELECT d.id, m.first_day, {_stage_at("d.id", "m.starts_at")}
    FROM {DEAL_TABLE} d
    JOIN ({rows}) m ON {_month_of("d.expected_close_date")} = m.first_day
    WHERE NOT EXISTS (
        SELECT 1 FROM {CLOSE_MONTH} b WHERE b.deal_id = d.id AND b.month = m.first_day
    )
    ON CONFLICT (deal_id) DO UPDATE SET month = excluded.month, stage_id = excluded.stage_id
    """
    cursor.execute(sql, params)


def backtest(scope: DashboardScope, *, stored: bool = True) -> list[MonthBacktest]:
    """Per month of the period and currency: the forecast on its first day and the
    outcome (see the module docstring). One statement. `stored=False` ignores
    `CloseMonthStage` and looks every stage up in the history."""
    months = months_of(scope)
    if not months:
        return []
    cte, params, member = _scope_cte(scope)
    month_rows, month_params = _month_rows(months)
    close_month, close_params = _local_month("d.closed_at")
    # Each deal's month by arithmetic, so months join by equality (a hash join) instead
    # of every deal being compared with every month; and each candidate's stage read
    # once (materialized: inlined, PostgreSQL looked it up again for the output): from
    # `CloseMonthStage` when its row is for that month, counted in this time zone and no
    # deal's history is waiting for the catch-up (checked once: the page catches up
    # before it reads, so markers are rarely there), else from the history. The
    # stored rows are read once (materialized) and hashed: PostgreSQL underestimates the
    # candidates (a join on a computed month) and would probe the rows one by one.
    inline = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    sql = f"""
    WITH {cte},
    months AS ({month_rows}),
    stored AS {inline}(
        SELECT b.deal_id, b.month, b.stage_id FROM {CLOSE_MONTH} b
        WHERE {"1 = 1" if stored else "1 = 0"}
          AND EXISTS (SELECT 1 FROM {MARK} k WHERE k.days_zone = %s)
          AND NOT EXISTS (SELECT 1 FROM {REWRITTEN})
    ),
    candidates AS {inline}(
        SELECT m.first_day, d.currency, d.amount, d.probability_override,
               CASE WHEN b.month = m.first_day THEN b.stage_id
                    ELSE {_stage_at("d.id", "m.starts_at")} END AS stage_then
        FROM {DEAL_TABLE} d
        LEFT JOIN stored b ON b.deal_id = d.id
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
        timezone.get_current_timezone_name(),
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
