"""Forecasts: computed set-based into tables, read back per user.

Three forecasts per pipeline x owner (and the owner's team) x month or quarter of the
expected close date x currency, never adding currencies together:

- weighted: Σ amount x (the deal's probability override, else the stage probability);
- categorical: Σ amount per stage forecast category (commit, best case, pipeline), and
  closed-won (Σ amount of won deals, by the month or quarter they closed in);
- learned: Σ amount x the stage's learned win rate (see `StageWinRate`); a probability
  override is ignored here, as the point is to check the configured numbers.

Open deals count when their stage's category is not "omitted" and they have an expected
close date. A recompute runs a fixed number of statements whatever the number of deals
(see `recompute`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DateField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate, TruncMonth, TruncQuarter
from django.utils import timezone

from common.sql import hold_job_lock, insert_from, insert_select, scratch_table
from deals.models import Deal, StageChange
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
#
# The two statements that read every deal or every closed deal's history are written
# in two levels: an inner query built with the ORM does the one pass over the big table
# with as few sums as it can, and an outer statement applies the stages' facts to its
# few rows. Money is exact decimal arithmetic in PostgreSQL, so Σ(amount x rate) over a
# stage's deals and rate x Σ amount are the same number: regrouping changes no cent.


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _closed_deals(since: dt.datetime) -> QuerySet[Deal, dict[str, Any]]:
    """Deals closed (won or lost) since `since`: their id and whether they were won."""
    return (
        Deal.objects.filter(closed_at__gte=since, stage__kind__in=[StageKind.WON, StageKind.LOST])
        .order_by()
        .values(
            v_deal=F("pk"),
            v_won=ExpressionWrapper(Q(stage__kind=StageKind.WON), output_field=BooleanField()),
        )
    )


def _passages_by_stage(since: dt.datetime) -> tuple[str, list[Any]]:
    """SQL: per stage entered (v_stage), the closed deals that entered it (v_closed) and
    how many of them were won (v_won), each deal counted once however often it entered.

    PostgreSQL reads each closed deal's history through the index on deal and keeps its
    distinct stages (a handful of rows), so nothing grows with the history but the one
    pass; a COUNT(DISTINCT deal) per stage would sort every history row of every closed
    deal instead (2 M rows at 1 M deals, spilled to disk). SQLite has no LATERAL and
    counts the distinct deals.
    """
    closed = _closed_deals(since)
    if connection.vendor == "postgresql":
        deals_sql, params = closed.query.sql_with_params()
        history = _table(StageChange)
        return (
            f"SELECT entered.to_stage_id AS v_stage, COUNT(*) AS v_closed, "
            f"COUNT(*) FILTER (WHERE closed.v_won) AS v_won "
            f"FROM ({deals_sql}) closed CROSS JOIN LATERAL ("
            f"SELECT DISTINCT h.to_stage_id FROM {history} h WHERE h.deal_id = closed.v_deal"
            f") entered GROUP BY entered.to_stage_id",
            list(params),
        )
    passages = (
        StageChange.objects.filter(deal__in=closed.values("v_deal"))
        .order_by()
        .values(v_stage=F("to_stage_id"))
        .annotate(
            v_closed=Count("deal", distinct=True),
            v_won=Count("deal", distinct=True, filter=Q(deal__stage__kind=StageKind.WON)),
        )
    )
    sql, params = passages.query.sql_with_params()
    return sql, list(params)


def recompute_win_rates(*, now: dt.datetime) -> int:
    """Rewrite every open stage's learned win rate from the last 12 months of closes.

    Three statements: delete; per open stage entered by deals now closed with `closed_at`
    in the window, learned = (won + k*p) / (closed + k), p = probability / 100, shrunk
    toward the configured p; then the open stages no closed deal passed through, at p.
    """
    since = now - dt.timedelta(days=settings.FORECAST_HISTORY_DAYS)
    k = settings.FORECAST_SHRINKAGE_K
    StageWinRate.objects.all().delete()
    passages_sql, params = _passages_by_stage(since)
    fields = ("stage", "configured", "closed", "won", "learned", "computed_at")
    learned = insert_from(
        StageWinRate,
        fields,
        f"SELECT stage.id, stage.probability, src.v_closed, src.v_won, "
        f"(src.v_won + (%s * stage.probability) * %s) / (src.v_closed + %s), %s "
        f"FROM ({passages_sql}) src JOIN {_table(Stage)} stage ON stage.id = src.v_stage "
        f"WHERE stage.kind = %s",
        [k, PERCENT.value, k, now, *params, StageKind.OPEN],
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


class MonthOf(TruncMonth):
    """The first day of a date's month.

    PostgreSQL has no DATE_TRUNC for dates: Django's TruncMonth casts the date to a
    timestamp with time zone and truncates it in the session's zone, which costs a tenth
    of the pass over a million deals. Cast to a timestamp without one, the same day comes
    out without the zone arithmetic.
    """

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        sql, params = compiler.compile(self.lhs)
        return f"DATE_TRUNC('month', ({sql})::timestamp)::date", params


def _month() -> Case:
    """Won deals count in the month they closed in; open deals in their expected one."""
    return Case(
        When(stage__kind=StageKind.WON, then=MonthOf(TruncDate("closed_at"))),
        default=MonthOf("expected_close_date"),
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


def _month_cells_by_stage(deals: QuerySet[Deal]) -> tuple[str, list[Any]]:
    """SQL: the one pass over the deals, per month cell and stage: how many, Σ amount and
    Σ amount x probability (the deal's override, else the stage's)."""
    probability = Coalesce("probability_override", "stage__probability")
    rows = (
        deals.order_by()
        .values(
            v_pipeline=F("pipeline_id"),
            v_owner=F("owner_id"),
            v_stage=F("stage_id"),
            v_period=_month(),
            v_currency=F("currency"),
        )
        .annotate(
            v_deals=Count("pk"),
            v_amount=Sum("amount"),
            v_weighted=Sum(ExpressionWrapper(F("amount") * probability, output_field=MONEY)),
        )
    )
    sql, params = rows.query.sql_with_params()
    return sql, list(params)


def _sum_where(
    value: str, value_params: list[Any], kind: str, category: str | None = None
) -> tuple[str, list[Any]]:
    """SQL: Σ `value` over a cell's stage rows of this stage kind (and forecast category),
    0 when there are none."""
    condition, params = "stage.kind = %s", [kind]
    if category is not None:
        condition += " AND stage.forecast_category = %s"
        params.append(category)
    return f"COALESCE(SUM(CASE WHEN {condition} THEN {value} END), 0)", [*params, *value_params]


def _fill_scratch(deals: QuerySet[Deal], now: dt.datetime) -> None:
    """Month cells from the deals, then quarters rolled up from the stored months.

    Per cell: open deals; weighted (Σ amount x probability / 100); learned (Σ amount x the
    stage's learned rate, else its probability; overrides ignored); Σ amount per forecast
    category of open deals; closed-won and won deals.
    """
    by_stage_sql, params = _month_cells_by_stage(deals)
    user = Deal._meta.get_field("owner").related_model
    open_, won = StageKind.OPEN, StageKind.WON
    figures = {
        "open_deals": _sum_where("src.v_deals", [], open_),
        "weighted": _sum_where("src.v_weighted * %s", [PERCENT.value], open_),
        "learned": _sum_where(
            "src.v_amount * COALESCE(rate.learned, stage.probability * %s)",
            [PERCENT.value],
            open_,
        ),
        "commit": _sum_where("src.v_amount", [], open_, ForecastCategory.COMMIT),
        "best_case": _sum_where("src.v_amount", [], open_, ForecastCategory.BEST_CASE),
        "pipeline_amount": _sum_where("src.v_amount", [], open_, ForecastCategory.PIPELINE),
        "closed_won": _sum_where("src.v_amount", [], won),
        "won_deals": _sum_where("src.v_deals", [], won),
    }
    sums = ", ".join(figures[name][0] for name in FIGURES)
    sum_params = [param for name in FIGURES for param in figures[name][1]]
    fields = (
        "pipeline",
        "team",
        "owner",
        "period_kind",
        "period_start",
        "currency",
        "computed_at",
        *FIGURES,
    )
    insert_from(
        ForecastScratch,
        fields,
        f"SELECT src.v_pipeline, usr.team_id, src.v_owner, %s, src.v_period, "
        f"src.v_currency, %s, {sums} "
        f"FROM ({by_stage_sql}) src "
        f"JOIN {_table(Stage)} stage ON stage.id = src.v_stage "
        f"JOIN {_table(user)} usr ON usr.id = src.v_owner "
        f"LEFT JOIN {_table(StageWinRate)} rate ON rate.stage_id = src.v_stage "
        f"GROUP BY src.v_pipeline, usr.team_id, src.v_owner, src.v_period, src.v_currency",
        [PeriodKind.MONTH, now, *sum_params, *params],
    )
    insert_select(
        ForecastScratch,
        ForecastScratch.objects.filter(period_kind=PeriodKind.MONTH),
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


def _analyze(model: type[Model]) -> None:
    """Give PostgreSQL's planner the real size and spread of a freshly filled temporary
    table (autovacuum never analyzes one). On a guess it may merge-join the comparison on
    two of the five key columns and compare each cell with every cell of its period:
    0.35 s instead of 10 ms at 7,000 cells, growing with the square of the cells."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {_table(model)}")


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
    Statements: the lock (PostgreSQL), win rates (three), the scratch table (drop, create,
    index, months, quarters, ANALYZE on PostgreSQL, drop), the two deletes and two inserts
    of the comparison: fifteen, twelve without learning or for one owner (two fewer on
    SQLite).
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
            _analyze(ForecastScratch)
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
