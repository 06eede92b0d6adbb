"""Forecasts: computed set-based into tables, read back per user.

Three forecasts per pipeline x owner (and the owner's team) x month or quarter of the
expected close date x currency, never adding currencies together:

- weighted: Σ amount x (the deal's probability override, else the stage probability);
- categorical: Σ amount per stage forecast category (commit, best case, pipeline), and
  closed-won (Σ amount of won deals, by the month or quarter they closed in);
- learned: Σ amount x the stage's learned win rate (see `StageWinRate`); a probability
  override is ignored here, as the point is to check the configured numbers.

Open deals count when their stage's category is not "omitted" and they have an expected
close date. A full recompute is five statements whatever the number of deals (win rates:
delete + insert; forecast: delete + one INSERT ... SELECT per period kind); a recompute
for one owner after a move is three.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    DateField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate, TruncMonth, TruncQuarter
from django.utils import timezone

from deals.models import Deal, StageChange
from deals.sql import hold_job_lock, insert_select, scratch_table
from reports.models import (
    Forecast,
    ForecastScratch,
    ForecastSnapshot,
    PeriodKind,
    StageWinRate,
)
from stages.models import ForecastCategory, Stage, StageKind

JOB_LOCK = "reports.forecasts"
PERCENT = Value(Decimal("0.01"))
ZERO = Value(Decimal("0"))
RATE = DecimalField(max_digits=7, decimal_places=6)
MONEY = DecimalField(max_digits=20, decimal_places=2)
# Past periods are folded into one bucket on the page, keyed by this date.
PAST_DUE = dt.date(1, 1, 1)
MONTHS_SHOWN = 6

FIGURES = (
    "open_deals",
    "weighted",
    "learned",
    "commit",
    "best_case",
    "pipeline_amount",
    "closed_won",
    "won_deals",
)


# --- computation (the job) -----------------------------------------------------------


def learned_rate(*, won: Any, closed: Any, probability: Any) -> ExpressionWrapper:
    """(won + k*p) / (closed + k), p = probability / 100: shrunk toward the configured p."""
    k = Value(settings.FORECAST_SHRINKAGE_K)
    return ExpressionWrapper((won + k * probability * PERCENT) / (closed + k), output_field=RATE)


def recompute_win_rates(*, now: dt.datetime) -> int:
    """Rewrite every open stage's learned win rate from the last 12 months of closes.

    Two statements: per stage, from the history rows (StageChange.to_stage) of deals now
    closed with `closed_at` in the window, the distinct deals and how many were won; then
    the open stages no closed deal passed through, at their configured probability.
    """
    since = now - dt.timedelta(days=settings.FORECAST_HISTORY_DAYS)
    passages = StageChange.objects.filter(
        to_stage__kind=StageKind.OPEN,
        deal__closed_at__gte=since,
        deal__stage__kind__in=[StageKind.WON, StageKind.LOST],
    )
    closed = Count("deal", distinct=True)
    won = Count("deal", distinct=True, filter=Q(deal__stage__kind=StageKind.WON))
    probability = F("to_stage__probability")
    StageWinRate.objects.all().delete()
    learned = insert_select(
        StageWinRate,
        passages,
        {
            "stage": F("to_stage_id"),
            "configured": probability,
            "computed_at": Value(now),
        },
        aggregates={
            "closed": closed,
            "won": won,
            "learned": learned_rate(
                won=won, closed=closed, probability=F("to_stage__probability")
            ),
        },
    )
    no_history = Stage.objects.filter(kind=StageKind.OPEN).exclude(
        Exists(StageWinRate.objects.filter(stage=OuterRef("pk")))
    )
    configured = insert_select(
        StageWinRate,
        no_history,
        {
            "stage": F("pk"),
            "configured": F("probability"),
            "closed": Value(0),
            "won": Value(0),
            "learned": ExpressionWrapper(F("probability") * PERCENT, output_field=RATE),
            "computed_at": Value(now),
        },
    )
    return learned + configured


def _period(kind: str) -> Case:
    """Won deals count in the period they closed in; open deals in their expected one."""
    trunc = TruncMonth if kind == PeriodKind.MONTH else TruncQuarter
    return Case(
        When(stage__kind=StageKind.WON, then=trunc(TruncDate("closed_at"))),
        default=trunc("expected_close_date"),
        output_field=DateField(),
    )


def forecast_source() -> QuerySet[Deal]:
    """The deals a forecast is made of: forecastable open deals and won deals."""
    forecastable = (
        Q(stage__kind=StageKind.OPEN)
        & ~Q(stage__forecast_category=ForecastCategory.OMITTED)
        & Q(expected_close_date__isnull=False)
    )
    return Deal.objects.filter(
        forecastable | Q(stage__kind=StageKind.WON, closed_at__isnull=False)
    )


def _money_sum(expression: Any, condition: Q) -> Coalesce:
    return Coalesce(
        Sum(expression, filter=condition, output_field=MONEY), ZERO, output_field=MONEY
    )


def _figures() -> dict[str, Any]:
    is_open = Q(stage__kind=StageKind.OPEN)
    is_won = Q(stage__kind=StageKind.WON)
    probability = Coalesce("probability_override", "stage__probability")
    rate = Coalesce(
        F("stage__win_rate__learned"), F("stage__probability") * PERCENT, output_field=RATE
    )

    def category(name: str) -> Q:
        return is_open & Q(stage__forecast_category=name)

    return {
        "open_deals": Count("pk", filter=is_open),
        "weighted": _money_sum(
            ExpressionWrapper(F("amount") * probability * PERCENT, output_field=MONEY), is_open
        ),
        "learned": _money_sum(ExpressionWrapper(F("amount") * rate, output_field=MONEY), is_open),
        "commit": _money_sum("amount", category(ForecastCategory.COMMIT)),
        "best_case": _money_sum("amount", category(ForecastCategory.BEST_CASE)),
        "pipeline_amount": _money_sum("amount", category(ForecastCategory.PIPELINE)),
        "closed_won": _money_sum("amount", is_won),
        "won_deals": Count("pk", filter=is_won),
    }


def _fill_scratch(deals: QuerySet[Deal], now: dt.datetime) -> None:
    """Month cells from the deals (the one pass over them), then quarters rolled up."""
    month = PeriodKind.MONTH
    insert_select(
        ForecastScratch,
        deals,
        {
            "pipeline": F("pipeline_id"),
            "team": F("owner__team_id"),
            "owner": F("owner_id"),
            "period_kind": Value(month),
            "period_start": _period(month),
            "currency": F("currency"),
            "computed_at": Value(now),
        },
        aggregates=_figures(),
    )
    insert_select(
        ForecastScratch,
        ForecastScratch.objects.filter(period_kind=month),
        {
            "pipeline": F("pipeline_id"),
            "team": F("team_id"),
            "owner": F("owner_id"),
            "period_kind": Value(PeriodKind.QUARTER),
            "period_start": TruncQuarter("period_start"),
            "currency": F("currency"),
            "computed_at": Value(now),
        },
        aggregates={name: Sum(name) for name in FIGURES},
    )


KEY = ("pipeline_id", "owner_id", "period_kind", "period_start", "currency")


def _same_key(model: type[Forecast] | type[ForecastScratch]) -> Any:
    return model.objects.filter(**{name: OuterRef(name) for name in KEY})


@dataclass
class RecomputeResult:
    """Rows written: cells whose figures changed are deleted and inserted again."""

    win_rates: int = 0
    deleted: int = 0
    inserted: dict[str, int] = field(default_factory=dict)


def recompute(
    *, now: dt.datetime | None = None, owner_id: int | None = None, learn: bool = True
) -> RecomputeResult:
    """Bring the forecast tables in line with the deals, set-based, in one transaction.

    Everything (win rates first, unless `learn` is off: they move slowly and cost the most,
    so the hourly run keeps last night's), or only `owner_id`'s rows after a move.
    The new cells are computed into a scratch table (one pass over the deals; quarters are
    rolled up from months); one DELETE removes stored cells that vanished or whose figures
    differ, another drops the unchanged cells from the scratch table, and one INSERT per
    period kind writes the rest. A second run therefore writes nothing, and `computed_at`
    says when a cell last changed. No statement reads the table it fills, so no plan can
    go quadratic on a freshly emptied table.
    Readers keep seeing the previous figures until commit; a job lock queues concurrent
    recomputes, so they cannot collide on the unique cells.
    """
    now = now or timezone.now()
    result = RecomputeResult()
    with transaction.atomic():
        hold_job_lock(JOB_LOCK)
        deals = forecast_source()
        rows = Forecast.objects.all()
        if owner_id is None:
            if learn:
                result.win_rates = recompute_win_rates(now=now)
        else:
            deals = deals.filter(owner_id=owner_id)
            rows = rows.filter(owner_id=owner_id)
        with scratch_table(ForecastScratch, like=Forecast, key=KEY):
            _fill_scratch(deals, now)
            team = Coalesce("team_id", Value(0))
            same_figures = {
                "team_key": Coalesce(OuterRef("team_id"), Value(0)),
                **{name: OuterRef(name) for name in FIGURES},
            }
            # Stored cells that vanished or changed go; new cells that are already stored
            # as they are go from the scratch table; what is left there is written.
            unchanged = _same_key(ForecastScratch).alias(team_key=team).filter(**same_figures)
            result.deleted, _ = rows.exclude(Exists(unchanged)).delete()
            stored = _same_key(Forecast).alias(team_key=team).filter(**same_figures)
            ForecastScratch.objects.filter(Exists(stored)).delete()
            columns = {
                "pipeline": F("pipeline_id"),
                "team": F("team_id"),
                "owner": F("owner_id"),
                **{name: F(name) for name in ("period_kind", "period_start", "currency")},
                **{name: F(name) for name in (*FIGURES, "computed_at")},
            }
            for kind in PeriodKind.values:
                result.inserted[kind] = insert_select(
                    Forecast, ForecastScratch.objects.filter(period_kind=kind), columns
                )
    return result


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def period_start(day: dt.date, kind: str) -> dt.date:
    if kind == PeriodKind.QUARTER:
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return day.replace(day=1)


def take_snapshot(*, now: dt.datetime | None = None) -> int:
    """Copy the current and future periods' forecast into this week's snapshot.

    Two statements; taking it again within the same week replaces that week's rows, so
    the weekly job is idempotent.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    taken_on = week_start(today)
    current = Q(
        period_kind=PeriodKind.MONTH, period_start__gte=period_start(today, PeriodKind.MONTH)
    ) | Q(
        period_kind=PeriodKind.QUARTER, period_start__gte=period_start(today, PeriodKind.QUARTER)
    )
    copied = ["pipeline_id", "team_id", "owner_id", "period_kind", "period_start", "currency"]
    with transaction.atomic():
        hold_job_lock(JOB_LOCK)
        ForecastSnapshot.objects.filter(taken_on=taken_on).delete()
        return insert_select(
            ForecastSnapshot,
            Forecast.objects.filter(current),
            {
                **{name.removesuffix("_id"): F(name) for name in copied},
                **{name: F(name) for name in FIGURES},
                "computed_at": F("computed_at"),
                "taken_on": Value(taken_on),
            },
        )


# --- reads (the page and its export) -------------------------------------------------


def periods(today: dt.date, kind: str) -> list[dt.date]:
    """Starts of the periods shown: the next six months, or the quarters covering them."""
    month = today.replace(day=1)
    starts = []
    for offset in range(MONTHS_SHOWN):
        year, index = divmod(month.month - 1 + offset, 12)
        starts.append(period_start(dt.date(month.year + year, index + 1, 1), kind))
    return sorted(set(starts))


def period_end(start: dt.date, kind: str) -> dt.date:
    months = 3 if kind == PeriodKind.QUARTER else 1
    year, index = divmod(start.month - 1 + months, 12)
    return dt.date(start.year + year, index + 1, 1)


def _sums() -> dict[str, Sum]:
    # Aliases differ from the model's field names, which annotations may not reuse.
    return {f"sum_{name}": Sum(name) for name in FIGURES}


def _figures_of(row: dict[str, Any]) -> dict[str, Any]:
    """An aggregated row with its sums under the figures' own names (None → 0)."""
    return {
        **{k: v for k, v in row.items() if not k.startswith("sum_")},
        **{name: row[f"sum_{name}"] or 0 for name in FIGURES},
    }


def by_period(rows: QuerySet[Forecast], starts: list[dt.date], kind: str) -> list[dict[str, Any]]:
    """Per shown period and currency, in one grouped query, after a past-due bucket: open
    deals whose expected close date has gone by (closed-won of past periods is history
    and left out).
    """
    first, end = starts[0], period_end(starts[-1], kind)
    bucket = Case(
        When(period_start__lt=first, then=Value(PAST_DUE)),
        default=F("period_start"),
        output_field=DateField(),
    )
    sums = _sums()
    sums["sum_closed_won"] = Sum("closed_won", filter=Q(period_start__gte=first))
    sums["sum_won_deals"] = Sum("won_deals", filter=Q(period_start__gte=first))
    grouped = (
        rows.filter(period_kind=kind, period_start__lt=end)
        .annotate(bucket=bucket)
        .values("bucket", "currency")
        .annotate(**sums, last_computed=Max("computed_at"))
        .order_by("bucket", "currency")
    )
    lines = [_figures_of(row) for row in grouped]
    return [line for line in lines if line["bucket"] != PAST_DUE or line["open_deals"]]


def by_owner(rows: QuerySet[Forecast], starts: list[dt.date], kind: str) -> list[dict[str, Any]]:
    """Per owner and currency over the shown periods, in one grouped query."""
    end = period_end(starts[-1], kind)
    grouped = (
        rows.filter(period_kind=kind, period_start__gte=starts[0], period_start__lt=end)
        .values("owner_id", "owner__username", "owner__first_name", "owner__last_name", "currency")
        .annotate(**_sums())
        .order_by("owner__last_name", "owner__first_name", "owner__username", "currency")
    )
    return [_figures_of(row) for row in grouped]


def export_rows(rows: QuerySet[Forecast], starts: list[dt.date], kind: str) -> QuerySet[Forecast]:
    """The stored cells behind the page, one query with their names."""
    end = period_end(starts[-1], kind)
    return (
        rows.filter(period_kind=kind, period_start__gte=starts[0], period_start__lt=end)
        .select_related("pipeline", "team", "owner")
        .order_by(
            "period_start", "pipeline__position", "pipeline_id", "owner__username", "currency"
        )
    )


def stage_rates(pipeline_id: int | None = None) -> QuerySet[Stage]:
    """Open stages with their configured and learned rates (a stage not yet computed has
    no `win_rate` row; the learned forecast then uses the configured probability)."""
    stages = Stage.objects.open().active().select_related("pipeline", "win_rate")
    if pipeline_id is not None:
        stages = stages.filter(pipeline_id=pipeline_id)
    return stages.filter(pipeline__is_archived=False).order_by(
        "pipeline__position", "pipeline_id", "position", "id"
    )
