"""Grouped reads for the panels that need no stage history, one statement each.

Each reads only what `scope.deals()` (visible_to) lets it and returns aggregate rows:
stages x currencies, reps x currencies, criteria. Stage-history reads are in history.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    Count,
    DecimalField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce

from deals.models import (
    Activity,
    GateEvent,
    GateOutcome,
    RewrittenHistory,
    StageChange,
    StalledFlag,
)
from reports.dashboard import history, stays
from reports.dashboard.filters import DashboardScope, Period
from reports.models import StageStayMark
from stages.models import Stage, StageKind

CENT = Decimal("0.01")


def money(value: Any) -> Decimal:
    """A sum from the database as an exact Decimal (SQLite hands back floats)."""
    if value is None:
        return Decimal("0.00")
    return Decimal(str(value)).quantize(CENT)


def _stalled_q(today: date) -> Q:
    """Stalled now: any stalled rule fires and the owner has not snoozed it."""
    flagged = Exists(StalledFlag.objects.filter(deal=OuterRef("pk")))
    return Q(flagged) & (Q(snoozed_until__isnull=True) | Q(snoozed_until__lt=today))


# amount * probability in percent; divided by 100 in Python so SQLite's integer
# division cannot truncate it.
WEIGHTED_X100 = ExpressionWrapper(
    F("amount") * Coalesce("probability_override", "stage__probability"),
    output_field=DecimalField(max_digits=20, decimal_places=2),
)


def _closed_in(kind: str, period: Period) -> Q:
    return Q(stage__kind=kind, closed_at__gte=period.start, closed_at__lt=period.end)


# --- pipeline now -------------------------------------------------------------------------


@dataclass(frozen=True)
class StageMoney:
    stage_id: int
    currency: str
    deals: int
    value: Decimal
    weighted: Decimal
    stalled: int
    stalled_value: Decimal


def pipeline_now(scope: DashboardScope) -> list[StageMoney]:
    """Open deals per stage and currency now: count, value, weighted value, stalled."""
    stalled = _stalled_q(scope.today)
    rows = (
        scope.deals()
        .filter(pipeline=scope.pipeline, stage__kind=StageKind.OPEN)
        .values("stage_id", "currency")
        .annotate(
            n=Count("pk"),
            value=Sum("amount"),
            weighted=Sum(WEIGHTED_X100),
            stalled=Count("pk", filter=stalled),
            stalled_value=Sum("amount", filter=stalled),
        )
        .order_by("stage_id", "currency")
    )
    return [
        StageMoney(
            stage_id=row["stage_id"],
            currency=row["currency"],
            deals=row["n"],
            value=money(row["value"]),
            weighted=money(money(row["weighted"]) / 100),
            stalled=row["stalled"],
            stalled_value=money(row["stalled_value"]),
        )
        for row in rows
    ]


def stuck_deals(scope: DashboardScope, stage_id: int, *, limit: int = 5) -> list[Any]:
    """The longest-waiting open deals in one stage (the bottleneck's "deals stuck there")."""
    return list(
        scope.deals()
        .filter(pipeline=scope.pipeline, stage_id=stage_id)
        .select_related("owner")
        .order_by("stage_entered_at", "id")[:limit]
    )


# --- win rate, cycle, velocity ------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """One period's closed deals for one currency."""

    currency: str
    won: int
    lost: int
    won_value: Decimal
    won_with_amount: int
    cycle_total: timedelta
    open_at_end: int


def outcomes(scope: DashboardScope) -> dict[str, list[Outcomes]]:
    """Won, lost, won value, cycle time and open deals per currency, for both periods.

    A deal counts as won (lost) in a period when it sits in a won (lost) stage and was
    closed within it. Open deals are those open at the end of the period (or now, if
    sooner): created before, not closed by then.
    """
    cycle = ExpressionWrapper(F("closed_at") - F("created_at"), output_field=DurationField())
    annotations: dict[str, Any] = {}
    for name, period in (("cur", scope.period), ("prev", scope.previous)):
        won = _closed_in(StageKind.WON, period)
        cutoff = min(period.end, scope.now)
        annotations |= {
            f"{name}_won": Count("pk", filter=won),
            f"{name}_lost": Count("pk", filter=_closed_in(StageKind.LOST, period)),
            f"{name}_won_value": Sum("amount", filter=won),
            f"{name}_won_with_amount": Count("amount", filter=won),
            f"{name}_cycle": Sum(cycle, filter=won),
            f"{name}_open": Count(
                "pk",
                filter=Q(created_at__lt=cutoff)
                & (Q(closed_at__isnull=True) | Q(closed_at__gte=cutoff)),
            ),
        }
    rows = (
        scope.deals()
        .filter(pipeline=scope.pipeline)
        .values("currency")
        .annotate(**annotations)
        .order_by("currency")
    )
    result: dict[str, list[Outcomes]] = {"cur": [], "prev": []}
    for row in rows:
        for name in result:
            result[name].append(
                Outcomes(
                    currency=row["currency"],
                    won=row[f"{name}_won"],
                    lost=row[f"{name}_lost"],
                    won_value=money(row[f"{name}_won_value"]),
                    won_with_amount=row[f"{name}_won_with_amount"],
                    cycle_total=row[f"{name}_cycle"] or timedelta(0),
                    open_at_end=row[f"{name}_open"],
                )
            )
    return result


# --- movement -----------------------------------------------------------------------------


def movement(
    scope: DashboardScope,
    *,
    stays_until: datetime | None = None,
    entries_until: datetime | None = None,
) -> dict[str, int]:
    """Stage changes in the period by direction (each change counts once).

    new: a deal was created; advanced / regressed: from an open stage to a later / an
    earlier open stage of the pipeline (reopening a closed deal counts as regressed);
    won / lost: into a won / lost stage.

    `stays_until`: the summaries' mark, given when `StageEntryDay` counts the stored
    entries in the current time zone; then, when every deal counts (an admin,
    unfiltered), the changes before it are read from those per-day counts
    (`_movement_from_days`). `entries_until`: the mark of `StageEntry`, given when it
    holds every change before it; then any other scope (a manager, a team, an owner)
    reads the changes before it from the stored entries of its deals, which PostgreSQL
    finds by deal in one index without the history table (`_movement_from_entries`).
    """
    if stays_until is not None and stays_until > scope.period.start and history.everyone(scope):
        return _movement_from_days(scope, stays_until)
    if entries_until is not None and entries_until > scope.period.start:
        return _movement_from_entries(scope, entries_until)
    later = Q(to_stage__position__gt=F("from_stage__position")) | Q(
        to_stage__position=F("from_stage__position"), to_stage_id__gt=F("from_stage_id")
    )
    between_open = Q(
        from_stage__kind=StageKind.OPEN,
        to_stage__kind=StageKind.OPEN,
        from_stage__pipeline=F("to_stage__pipeline"),
    )
    reopened = Q(to_stage__kind=StageKind.OPEN) & ~Q(from_stage__kind=StageKind.OPEN)
    return StageChange.objects.filter(
        deal__in=scope.deals().values("pk"),
        pipeline=scope.pipeline,
        at__gte=scope.period.start,
        at__lt=scope.period.end,
    ).aggregate(
        new=Count("pk", filter=Q(from_stage__isnull=True)),
        advanced=Count("pk", filter=between_open & later),
        regressed=Count(
            "pk",
            filter=(between_open & ~later) | (reopened & Q(from_stage__isnull=False)),
        ),
        won=Count("pk", filter=Q(to_stage__kind=StageKind.WON)),
        lost=Count("pk", filter=Q(to_stage__kind=StageKind.LOST)),
    )


def _movement_from_days(scope: DashboardScope, mark: datetime) -> dict[str, int]:
    """`movement` for every deal: the changes before the mark counted per day, from-stage
    and to-stage in `StageEntryDay` (every change is an entry into its to-stage), those
    after it read from the history; then the same directions as `movement`, judged per
    (from, to) pair."""
    sql = f"""
    WITH moves AS (
        SELECT from_stage AS from_id, stage_id AS to_id, SUM(entered) AS n
        FROM {history.ENTRY_DAY}
        WHERE pipeline_id = %s AND day >= %s AND day <= %s
        GROUP BY from_stage, stage_id
        UNION ALL
        {_moves_since_mark()}
    )
    {_DIRECTIONS}
    """
    pipeline = scope.pipeline.pk
    period = scope.period
    params = [
        pipeline,
        history._day(period.first_day),
        history._day(period.last_day),
        *_since_mark_params(scope, mark),
    ]
    return _directions(sql, params)


def _movement_from_entries(scope: DashboardScope, mark: datetime) -> dict[str, int]:
    """`movement` for the deals in scope: the changes before the mark from `StageEntry`
    (one row per change: its from-stage, to-stage and pipeline), those after it from the
    history; then the same directions as `movement`."""
    cte, scope_params, member = history._scope_cte(scope)
    sql = f"""
    WITH {cte},
    moves AS (
        SELECT COALESCE(e.from_stage_id, 0) AS from_id, e.stage_id AS to_id, COUNT(*) AS n
        FROM {history.ENTRY} e
        WHERE {member.format(deal="e.deal_id")} AND e.pipeline_id = %s
          AND e.entered_at >= %s AND e.entered_at < %s
        GROUP BY 1, 2
        UNION ALL
        {_moves_since_mark(member.format(deal="x.deal_id"))}
    )
    {_DIRECTIONS}
    """
    pipeline = scope.pipeline.pk
    period = scope.period
    params = [
        *scope_params,
        pipeline,
        history._dt(period.start),
        history._dt(min(mark, period.end)),
        *_since_mark_params(scope, mark),
    ]
    return _directions(sql, params)


def _moves_since_mark(member: str = "") -> str:
    """SQL: (from-stage or 0, to-stage, count) of the history's changes of the deals
    `member` admits (all when empty) from the summaries' mark to the period's end, which
    no summary holds yet; params from `_since_mark_params`."""
    admitted = f"{member} AND " if member else ""
    return f"""SELECT COALESCE(x.from_stage_id, 0), x.to_stage_id, COUNT(*)
        FROM {history.HISTORY} x
        WHERE {admitted}x.pipeline_id = %s
          AND x.to_stage_id IN (SELECT id FROM {history.STAGE})
          AND x.at >= %s AND x.at < %s
        GROUP BY 1, 2"""


def _since_mark_params(scope: DashboardScope, mark: datetime) -> list[Any]:
    return [
        scope.pipeline.pk,
        history._dt(max(mark, scope.period.start)),
        history._dt(scope.period.end),
    ]


def _directions(sql: str, params: list[Any]) -> dict[str, int]:
    row = history._fetch(sql, params)[0]
    names = ("new", "advanced", "regressed", "won", "lost")
    return {name: int(value or 0) for name, value in zip(names, row, strict=True)}


_OPEN, _WON, _LOST = StageKind.OPEN, StageKind.WON, StageKind.LOST
_BETWEEN_OPEN = f"f.kind = '{_OPEN}' AND t.kind = '{_OPEN}' AND f.pipeline_id = t.pipeline_id"
_LATER = "(t.position > f.position OR (t.position = f.position AND t.id > f.id))"
# The directions of the (from, to) pairs counted in `moves` (see `movement`).
_DIRECTIONS = f"""
    SELECT
        SUM(CASE WHEN m.from_id = 0 THEN m.n ELSE 0 END),
        SUM(CASE WHEN {_BETWEEN_OPEN} AND {_LATER} THEN m.n ELSE 0 END),
        SUM(CASE WHEN ({_BETWEEN_OPEN} AND NOT {_LATER})
                   OR (t.kind = '{_OPEN}' AND f.kind <> '{_OPEN}') THEN m.n ELSE 0 END),
        SUM(CASE WHEN t.kind = '{_WON}' THEN m.n ELSE 0 END),
        SUM(CASE WHEN t.kind = '{_LOST}' THEN m.n ELSE 0 END)
    FROM moves m JOIN {history.STAGE} t ON t.id = m.to_id
    LEFT JOIN {history.STAGE} f ON f.id = m.from_id
"""


# --- gate report --------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRow:
    stage_id: int
    criterion_id: int | None
    requirement: str
    blocked: int
    overridden: int
    deals: int


def gate_report(scope: DashboardScope) -> list[GateRow]:
    """Blocked attempts and overrides per entry criterion in the period (gate telemetry)."""
    rows = (
        GateEvent.objects.filter(
            deal__in=scope.deals().values("pk"),
            stage__pipeline=scope.pipeline,
            at__gte=scope.period.start,
            at__lt=scope.period.end,
        )
        .values("stage_id", "criterion_id", "requirement")
        .annotate(
            blocked=Count("pk", filter=Q(outcome=GateOutcome.BLOCKED)),
            overridden=Count("pk", filter=Q(outcome=GateOutcome.OVERRIDDEN)),
            deals=Count("deal_id", distinct=True),
        )
        .order_by("-blocked", "-overridden", "stage__position", "requirement")
    )
    return [
        GateRow(
            stage_id=row["stage_id"],
            criterion_id=row["criterion_id"],
            requirement=row["requirement"],
            blocked=row["blocked"],
            overridden=row["overridden"],
            deals=row["deals"],
        )
        for row in rows
    ]


# --- per rep ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepMoney:
    owner_id: int
    name: str
    currency: str
    open_value: Decimal
    weighted: Decimal
    won: int
    won_value: Decimal
    lost: int
    stalled: int


def rep_deals(scope: DashboardScope) -> list[RepMoney]:
    """Per owner and currency: open and weighted value now; won and lost in the period."""
    is_open = Q(stage__kind=StageKind.OPEN)
    won = _closed_in(StageKind.WON, scope.period)
    rows = (
        scope.deals()
        .filter(pipeline=scope.pipeline)
        .values("owner_id", "currency")
        .annotate(
            **_NAMES,
            open_value=Sum("amount", filter=is_open),
            weighted=Sum(WEIGHTED_X100, filter=is_open),
            won=Count("pk", filter=won),
            won_value=Sum("amount", filter=won),
            lost=Count("pk", filter=_closed_in(StageKind.LOST, scope.period)),
            stalled=Count("pk", filter=is_open & _stalled_q(scope.today)),
        )
        .order_by("owner_id", "currency")
    )
    return [
        RepMoney(
            owner_id=row["owner_id"],
            name=_name(row),
            currency=row["currency"],
            open_value=money(row["open_value"]),
            weighted=money(money(row["weighted"]) / 100),
            won=row["won"],
            won_value=money(row["won_value"]),
            lost=row["lost"],
            stalled=row["stalled"],
        )
        for row in rows
    ]


def rep_activities(scope: DashboardScope) -> dict[int, tuple[str, int]]:
    """Activities completed in the period on this pipeline's deals, per person who did them."""
    rows = (
        Activity.objects.filter(
            deal__in=scope.deals().filter(pipeline=scope.pipeline).values("pk"),
            done=True,
            done_at__gte=scope.period.start,
            done_at__lt=scope.period.end,
        )
        .values("owner_id")
        .annotate(**_NAMES, n=Count("pk"))
        .order_by()
    )
    return {row["owner_id"]: (_name(row), row["n"]) for row in rows}


# The owner's names, one value per owner: aggregated rather than grouped by, so the rows
# are grouped by integers alone (grouping 100,000 deals by three text columns too
# sorted them on disk).
_NAMES = {
    "owner_username": Min("owner__username"),
    "owner_first_name": Min("owner__first_name"),
    "owner_last_name": Min("owner__last_name"),
}


def _name(row: dict[str, Any]) -> str:
    full = f"{row['owner_first_name']} {row['owner_last_name']}".strip()
    return full or row["owner_username"]


def stages_of(scope: DashboardScope) -> list[Stage]:
    """The pipeline's stages in order, each carrying the summaries' marks, fetched with
    them to save a round trip (reports.dashboard.stays): `stays_until` for the completed
    stays and `entries_until` for the entries, None when the stages have changed since
    the entries were worked out. Every pipeline's stages are read to tell. `rewritten`:
    some deal's history was rewritten since the summaries last caught up (see
    `stays.catch_up`)."""
    mark = StageStayMark.objects.filter(pk=1)
    stages = list(
        Stage.objects.annotate(
            stays_until=Subquery(mark.values("covered_until")),
            stages_key=Subquery(mark.values("stages_key")),
            days_zone=Subquery(mark.values("days_zone")),
            rewritten=Exists(RewrittenHistory.objects.all()),
        ).order_by("position", "id")
    )
    current = stays.stages_key((s.pk, s.pipeline_id, s.position, s.kind) for s in stages)
    mine = [stage for stage in stages if stage.pipeline_id == scope.pipeline.pk]
    for stage in mine:
        stage.entries_until = stage.stays_until if stage.stages_key == current else None
    return mine
