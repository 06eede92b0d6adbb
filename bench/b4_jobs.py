"""B4: the periodic jobs, set-based, against a naive per-deal ORM loop.

Stalled check (`deals.stalled.refresh_flags`) and forecast recompute
(`reports.forecasts.recompute`), each: the first run over the generated data (no flags,
no forecast rows yet), then a second run for the same instant, which must find nothing
to change. Time and SQL statements of each. The naive loop does the same job one deal
at a time with the ORM on a sample of deals, inside a transaction that is rolled back;
the ratio compares time per deal (naive per sampled deal ÷ set-based per deal in the
database).
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import stats


def _timed(fn: Any) -> tuple[Any, float, int]:
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - started
    return result, elapsed, len(queries)


def _sample(size: int) -> list[int]:
    """`size` deals spread evenly over the table (every n-th id)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM deals_deal")
        step = max(1, cursor.fetchone()[0] // size)
        cursor.execute(
            "SELECT id FROM deals_deal WHERE mod(id, %s) = 0 ORDER BY id LIMIT %s", [step, size]
        )
        return [row[0] for row in cursor.fetchall()]


def naive_stalled(deal_ids: list[int], now: dt.datetime) -> None:
    """The stalled rules the way a first version would write them: per deal, per rule,
    with the notice the job sends for each new flag (the set-based run does both)."""
    from deals.models import Deal, Notification, StalledFlag, StalledRule
    from stages.models import StageKind

    today = timezone.localdate(now)
    cutoff = now - dt.timedelta(days=settings.STALLED_NO_ACTIVITY_DAYS)
    for deal_id in deal_ids:
        deal = Deal.objects.get(pk=deal_id)
        stage = deal.stage
        firing = set()
        snoozed = deal.snoozed_until is not None and deal.snoozed_until >= today
        if stage.kind == StageKind.OPEN and not snoozed:
            days = (now - deal.stage_entered_at).days
            if stage.rotting_days and days > stage.rotting_days:
                firing.add(StalledRule.IN_STAGE_TOO_LONG)
            recent = deal.activities.filter(Q(done_at__gt=cutoff) | Q(created_at__gt=cutoff))
            if deal.created_at <= cutoff and not recent.exists():
                firing.add(StalledRule.NO_RECENT_ACTIVITY)
            if not deal.activities.filter(done=False, due_at__gte=now).exists():
                firing.add(StalledRule.NO_NEXT_STEP)
            if deal.expected_close_date and deal.expected_close_date < today:
                firing.add(StalledRule.CLOSE_DATE_PASSED)
            if deal.close_date_pushes >= settings.STALLED_SLIPPING_PUSHES:
                firing.add(StalledRule.CLOSE_DATE_SLIPPING)
        existing = set(deal.stalled_flags.values_list("rule", flat=True))
        for rule in firing - existing:
            # The job's whole work per new flag: the flag, and its owner's notice.
            StalledFlag.objects.create(deal=deal, rule=rule, flagged_at=now, notified_at=now)
            label = StalledRule(rule).label.lower()
            Notification.objects.get_or_create(
                dedupe_key=f"stalled:{deal.pk}:{rule}:{today.isoformat()}",
                user_id=deal.owner_id,
                defaults={
                    "deal": deal,
                    "kind": "stalled",
                    "text": f"“{deal.title}” is stalled: {label}",
                    "created_at": now,
                },
            )
        for rule in existing - firing:
            StalledFlag.objects.filter(deal=deal, rule=rule).delete()


def naive_forecast(deal_ids: list[int], now: dt.datetime) -> None:
    """Forecast cells accumulated one deal at a time with get_or_create and save."""
    from deals.models import Deal
    from reports.forecasts import period_start
    from reports.models import Forecast, PeriodKind, StageWinRate
    from stages.models import StageKind

    for deal_id in deal_ids:
        deal = Deal.objects.get(pk=deal_id)
        stage = deal.stage
        is_open = stage.kind == StageKind.OPEN
        if is_open and (stage.forecast_category == "omitted" or not deal.expected_close_date):
            continue
        if stage.kind == StageKind.LOST or (not is_open and deal.closed_at is None):
            continue
        day = deal.expected_close_date if is_open else timezone.localdate(deal.closed_at)
        rate = StageWinRate.objects.filter(stage=stage).first()
        learned = rate.learned if rate else Decimal(stage.probability) / 100
        amount = deal.amount or Decimal(0)
        probability = deal.probability_override or stage.probability
        for kind in PeriodKind.values:
            cell, _ = Forecast.objects.get_or_create(
                pipeline_id=deal.pipeline_id,
                owner_id=deal.owner_id,
                period_kind=kind,
                period_start=period_start(day, kind),
                currency=deal.currency,
                defaults={"team_id": deal.owner.team_id, "computed_at": now},
            )
            if is_open:
                cell.open_deals += 1
                cell.weighted += amount * probability / 100
                cell.learned += amount * learned
                if stage.forecast_category == "commit":
                    cell.commit += amount
                elif stage.forecast_category == "best_case":
                    cell.best_case += amount
                else:
                    cell.pipeline_amount += amount
            else:
                cell.closed_won += amount
                cell.won_deals += 1
            cell.save()


def _naive(loop: Any, deal_ids: list[int]) -> float:
    """Seconds per deal of `loop` over `deal_ids`; everything it wrote is rolled back."""
    now = timezone.now()
    with transaction.atomic():
        started = time.perf_counter()
        loop(deal_ids, now)
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed / len(deal_ids)


def _forecast_checksum() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT md5(coalesce(string_agg(row(pipeline_id, team_id, owner_id, period_kind,
                period_start, currency, open_deals, weighted, learned, commit, best_case,
                pipeline_amount, closed_won, won_deals)::text, ',' ORDER BY pipeline_id,
                owner_id, period_kind, period_start, currency), ''))
            FROM reports_forecast
            """
        )
        return cursor.fetchone()[0]


def measure(*, sample: int) -> dict[str, Any]:
    from deals import stalled
    from deals.models import Deal
    from reports import forecasts

    deals = Deal.objects.count()
    ids = _sample(sample)
    out: dict[str, Any] = {"deals": deals, "naive_sample": len(ids)}

    # Both runs judge the same instant: a second run must then change nothing at all
    # (with a later clock, deals may rightly cross a threshold in between).
    now = timezone.now()
    naive = _naive(naive_stalled, ids)
    first, t1, q1 = _timed(lambda: stalled.refresh_flags(now=now))
    second, t2, q2 = _timed(lambda: stalled.refresh_flags(now=now))
    out["stalled"] = {
        "first_s": round(t1, 3),
        "first_statements": q1,
        "first_added": sum(first.added.values()),
        "first_cleared": sum(first.cleared.values()),
        "first_notified": first.notified,
        "second_s": round(t2, 3),
        "second_statements": q2,
        "second_rows_changed": second.changed,
        "naive_ms_per_deal": round(naive * 1000, 3),
        "set_us_per_deal": round(t1 / deals * 1e6, 3),
        "speedup_per_deal": stats.ratio(naive, t1 / deals),
    }

    naive = _naive(naive_forecast, ids)
    first, t1, q1 = _timed(lambda: forecasts.recompute(now=now))
    before = _forecast_checksum()
    second, t2, q2 = _timed(lambda: forecasts.recompute(now=now))
    out["forecast"] = {
        "first_s": round(t1, 3),
        "first_statements": q1,
        "first_rows": sum(first.inserted.values()),
        "second_s": round(t2, 3),
        "second_statements": q2,
        # Forecast cells deleted and inserted by the second run (ideally none); the
        # stage win rates (a handful of rows) are counted apart.
        "second_rows_changed": second.deleted + sum(second.inserted.values()),
        "second_win_rate_rows": second.win_rates,
        "second_content_changed": _forecast_checksum() != before,
        "naive_ms_per_deal": round(naive * 1000, 3),
        "set_us_per_deal": round(t1 / deals * 1e6, 3),
        "speedup_per_deal": stats.ratio(naive, t1 / deals),
    }
    return out
