"""Stage-history reads: funnel and conversion, time in stage, cumulative flow.

SQL with window functions that SQLite (3.25+) and PostgreSQL share. Percentiles are
`percentile_cont` (linear interpolation between the two nearest ranks): PostgreSQL's
own, and on SQLite, which has none, the same arithmetic over ROW_NUMBER and COUNT
windows, so both databases give the same figures. Every statement starts from `scope`,
the ids `visible_to` lets the dashboard count, reads only the changes since the period
began, and returns aggregate rows only (stages, stages x days). Time in stage and
cumulative flow read the completed stays stored by `reports.dashboard.stays` up to its
mark, and derive only the later ones from the history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from deals.models import Deal, StageChange
from reports.dashboard.filters import DashboardScope, Period
from reports.models import StageDay, StageEntry, StageEntryDay, StageLength, StageStay
from stages.models import Stage, StageKind

HISTORY = StageChange._meta.db_table
STAGE = Stage._meta.db_table
DEAL_TABLE = Deal._meta.db_table
STAY = StageStay._meta.db_table
ENTRY = StageEntry._meta.db_table
ENTRY_DAY = StageEntryDay._meta.db_table

# Every stage with its place in its pipeline (1 = first), closed stages included.
RANKED = f"""(SELECT id, pipeline_id, kind,
                     ROW_NUMBER() OVER (PARTITION BY pipeline_id ORDER BY position, id) AS rank
              FROM {STAGE})"""
WON_REACH = 1000000


def reach(stage: str, pipeline: str) -> str:
    """SQL for how far entering `stage` (an alias of RANKED) takes a deal of `pipeline`:
    a won stage beats everything, an open stage of the pipeline counts its place, and
    anything else (lost, another pipeline's open stage) nothing. An entry went on when
    a later change reached further (DESIGN: stage conversion)."""
    return (
        f"(CASE WHEN {stage}.kind = '{StageKind.WON}' THEN {WON_REACH}"
        f" WHEN {stage}.kind = '{StageKind.OPEN}' AND {stage}.pipeline_id = {pipeline}"
        f" THEN {stage}.rank ELSE 0 END)"
    )


def as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def as_date(value: Any) -> date:
    """SQLite returns dates as text, PostgreSQL as date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _dt(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _day(value: date) -> Any:
    return connection.ops.adapt_datefield_value(value)


def days_between(start_sql: str, end_sql: str) -> str:
    """SQL for the fractional days from `start_sql` to `end_sql` (two timestamps)."""
    if connection.vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM ({end_sql} - {start_sql}))::float8 / 86400.0)"
    return f"(julianday({end_sql}) - julianday({start_sql}))"


# Length buckets of `StageLength`: whole days up to this many days, then this many days.
FINE_DAYS = 30


def length_bucket(days_sql: str) -> str:
    """SQL for the length bucket of a stay of `days_sql` (>= 0) days: its whole days below
    FINE_DAYS, then the start of its FINE_DAYS/3-day span. Non-decreasing in the days, so
    the buckets in order hold the stays in order; `bucket_of` is the same in Python."""
    whole = "floor({})" if connection.vendor == "postgresql" else "CAST({} AS INTEGER)"
    wide = FINE_DAYS // 3
    return (
        f"(CASE WHEN {days_sql} < {FINE_DAYS} THEN {whole.format(days_sql)}"
        f" ELSE {whole.format(f'{days_sql} / {wide}')} * {wide} END)"
    )


def bucket_of(days: float) -> int:
    """`length_bucket` in Python (negative lengths, never counted, get their floor)."""
    wide = FINE_DAYS // 3
    return math.floor(days) if days < FINE_DAYS else math.floor(days / wide) * wide


def _weight(quantile: float) -> str:
    """Weight of the row at 0-based rank `idx` of `n` in percentile_cont(`quantile`).

    The percentile sits at fractional rank q*(n-1); the rows on either side share it by
    distance, so SUM(value * weight) is the linearly interpolated percentile.
    """
    distance = f"ABS(idx - {quantile} * (n - 1))"
    return f"(CASE WHEN {distance} < 1 THEN 1 - {distance} ELSE 0 END)"


def _scope_cte(scope: DashboardScope) -> tuple[str, list[Any], str]:
    """`scope AS (...)`: the ids of the deals this dashboard may count, from visible_to.

    Also returns the condition `{deal}` must meet, ready to format with a column. When
    visible_to restricts nothing (an admin, unfiltered) the condition is left out, so the
    database scans the history by time instead of probing it deal by deal.
    """
    deals = scope.deals().values("id")
    sql, params = deals.query.sql_with_params()
    member = "{deal} IN (SELECT id FROM scope)" if deals.query.where else "1 = 1"
    return f"scope AS ({sql})", list(params), member


def stays_ending(where: str) -> str:
    """SELECT every change meeting `where` (alias `x`) with the stay it ends, if any.

    Columns: id, deal_id, stage_id (the from-stage, null for a deal's first change),
    entry_at, exit_at. Each change ends the stay in its from-stage, a stay that began at
    the deal's previous change. History is append-only, so a deal's changes that meet a
    "since" condition are the tail of its history: the previous change is the one before
    in that tail (LAG) or, for the first of the tail, the last one before it, found
    through the (deal, seq) index.
    """
    return f"""
        SELECT x.id, x.deal_id, x.from_stage_id AS stage_id, x.at AS exit_at,
               CASE WHEN x.from_stage_id IS NOT NULL THEN COALESCE(
                   LAG(x.at) OVER (PARTITION BY x.deal_id ORDER BY x.seq),
                   (SELECT p.at FROM {HISTORY} p
                    WHERE p.deal_id = x.deal_id AND p.seq < x.seq
                    ORDER BY p.seq DESC LIMIT 1)) END AS entry_at
        FROM {HISTORY} x
        WHERE {where}"""


def _exits_ctes(
    member: str,
    period: Period,
    stays_until: datetime | None,
    *,
    until: bool,
    uncounted: Sequence[int] | None = None,
) -> tuple[str, list[Any]]:
    """`since` and `exits` CTEs: every stay in a stage that ended since the period began.

    Stays that ended before `stays_until` (the summary's mark, None if it was never
    built) are read from `StageStay`, kept by `reports.dashboard.stays.refresh`; the
    later ones are derived from the history here, from the mark or the period's start,
    whichever is later. The two parts meet at the mark, so each stay counts once and the
    figures never wait for the job. With `until` only stays that ended before the
    period's end are read. With `uncounted` (the ids of the pipeline's won and lost
    stages) only the stored stays the caller does not read from `StageDay` are read:
    those in these stages, and those that ended before they began. Returns the SQL and
    its parameters.
    """
    start, end = _dt(period.start), _dt(period.end)
    ended = [end] if until else []
    summary = stays_until is not None and stays_until > period.start
    live_from = _dt(stays_until) if summary else start
    # After the mark the history holds only the last minutes' changes: every change enters
    # a stage, so the (to_stage, at) index finds them without scanning the whole table.
    recent = f" AND x.to_stage_id IN (SELECT id FROM {STAGE})" if summary else ""
    live = stays_ending(
        f"{member.format(deal='x.deal_id')}{recent} AND x.at >= %s"
        + (" AND x.at < %s" if until else "")
    )
    sql = f"""
    since AS ({live}
    ),
    exits AS (
        SELECT stage_id, entry_at, exit_at, {days_between("entry_at", "exit_at")} AS days
        FROM since WHERE stage_id IS NOT NULL"""
    params = [live_from, *ended]
    if summary and uncounted is not None:
        # Two branches, each through its own index: stays in the closed stages (few;
        # their ids written out, so the planner sees how few from its statistics), and
        # stays in open stages that ended before they began (the partial index).
        closed = ", ".join(str(int(pk)) for pk in uncounted) or "NULL"
        sql += f"""
        UNION ALL
        SELECT st.stage_id, st.entered_at, st.exited_at, st.days
        FROM {STAY} st
        WHERE st.stage_id IN ({closed}) AND st.exited_at >= %s AND st.exited_at < %s
          {"AND st.exited_at < %s" if until else ""}
        UNION ALL
        SELECT st.stage_id, st.entered_at, st.exited_at, st.days
        FROM {STAY} st JOIN {STAGE} k ON k.id = st.stage_id AND k.kind = '{StageKind.OPEN}'
        WHERE st.entered_at > st.exited_at AND st.exited_at >= %s AND st.exited_at < %s
          {"AND st.exited_at < %s" if until else ""}"""
        params += [start, live_from, *ended, start, live_from, *ended]
    elif summary:
        sql += f"""
        UNION ALL
        SELECT st.stage_id, st.entered_at, st.exited_at, st.days
        FROM {STAY} st
        WHERE {member.format(deal="st.deal_id")} AND st.exited_at >= %s AND st.exited_at < %s
          {"AND st.exited_at < %s" if until else ""}"""
        params += [start, live_from, *ended]
    return sql + "\n    )", params


def _percentiles(sample: str, source: str) -> str:
    """Count, median, p75 and maximum of `source(stage_id, days)` per stage, each row
    labelled `sample`. One statement per source (joined with UNION ALL) sorts each set
    of samples by stage alone, rather than all of them by label and stage.

    PostgreSQL has percentile_cont; elsewhere the same interpolation is computed from
    each value's rank (ROW_NUMBER) among its group's count (COUNT), see `_weight`.
    """
    if connection.vendor == "postgresql":
        return f"""
    SELECT '{sample}', stage_id, COUNT(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY days),
           percentile_cont(0.75) WITHIN GROUP (ORDER BY days),
           MAX(days)
    FROM {source}
    GROUP BY stage_id"""
    return f"""
    SELECT '{sample}', stage_id, MAX(n), SUM(days * {_weight(0.5)}),
           SUM(days * {_weight(0.75)}), MAX(days)
    FROM (
        SELECT stage_id, days,
               ROW_NUMBER() OVER (PARTITION BY stage_id ORDER BY days) - 1 AS idx,
               COUNT(*) OVER (PARTITION BY stage_id) AS n
        FROM {source}
    ) ranked
    GROUP BY stage_id"""


def _percentiles_of_stages(sample: str, source: str, stage_ids: Sequence[int]) -> str:
    """What `_percentiles` gives, on PostgreSQL, for the stages `stage_ids` only: one
    pass over `source` with each stage's aggregates FILTERed, instead of sorting every
    row by stage first (at 900,000 stays that sort spilled to disk and cost more than
    the percentiles). Each stage's two percentiles come from one sort of its days
    (`percentile_cont` over an array of fractions); stages without rows are left out,
    as GROUP BY leaves them."""
    columns, values = [], []
    for i, pk in enumerate(int(pk) for pk in stage_ids):
        only = f"FILTER (WHERE stage_id = {pk})"
        columns += [
            f"COUNT(*) {only} AS n{i}",
            f"percentile_cont(ARRAY[0.5, 0.75]) WITHIN GROUP (ORDER BY days) {only} AS q{i}",
            f"MAX(days) {only} AS m{i}",
        ]
        values.append(f"({pk}, a.n{i}, a.q{i}, a.m{i})")
    return f"""
    SELECT '{sample}', v.stage_id, v.n, v.q[1], v.q[2], v.longest
    FROM (SELECT {", ".join(columns)} FROM {source}) a
    CROSS JOIN LATERAL (VALUES {", ".join(values)}) v(stage_id, n, q, longest)
    WHERE v.n > 0"""


def _fetch(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- funnel and conversion ----------------------------------------------------------------


@dataclass(frozen=True)
class StageFunnel:
    stage_id: int
    entered: int
    converted: int


def funnel(
    scope: DashboardScope,
    *,
    entries_until: datetime | None = None,
    entries_counted: bool = False,
) -> list[StageFunnel]:
    """Per stage: deals that entered it in the period, and how many of those went on.

    "Went on" (DESIGN: stage conversion) = a later change of the same deal entered a later
    open stage of the pipeline, or a won stage. A deal that entered a stage twice in the
    period counts once, from its first entry. Skipped stages are simply not entered.

    `entries_until`: the entries summary's mark (`StageEntry`, kept by
    `reports.dashboard.stays.refresh`), None if it was never built or the stages changed
    since. Entries before the mark are read from it; without it, from the history.
    `entries_counted`: `StageEntryDay` counts the stored entries in the current time
    zone. Then, when every deal counts (an admin, unfiltered) and the period runs to the
    mark or later, they are read from those per-day counts (`_funnel_from_days`).
    """
    if entries_until is None or entries_until <= scope.period.start:
        return _funnel_from_history(scope)
    if entries_counted and everyone(scope) and scope.period.end >= entries_until:
        return _funnel_from_days(scope, entries_until)
    return _funnel_from_summary(scope, entries_until)


def everyone(scope: DashboardScope) -> bool:
    """Whether visible_to restricts nothing (an admin, unfiltered): only then can the
    per-day summaries, which count every deal, stand for the deals in scope."""
    return not scope.deals().query.where


def _funnel_from_history(scope: DashboardScope) -> list[StageFunnel]:
    """Only changes since the period began are read: each gets the best stage the deal
    reached after it (a running MAX over its later changes, in which won beats every open
    stage and lost or other pipelines count for nothing), and each deal's first entry
    into a stage since then (ROW_NUMBER) is its first entry in the period if it came
    before the end.
    """
    cte, params, member = _scope_cte(scope)
    sql = f"""
    WITH {cte},
    ordered AS (
        SELECT id, CASE
                   WHEN kind = %s THEN 1000000
                   WHEN kind = %s AND pipeline_id = %s
                   THEN ROW_NUMBER() OVER (PARTITION BY pipeline_id ORDER BY position, id)
                   ELSE 0 END AS reach
        FROM {STAGE}
    ),
    since AS (
        SELECT sc.to_stage_id, sc.pipeline_id, sc.at,
               MAX(o.reach) OVER (PARTITION BY sc.deal_id ORDER BY sc.seq DESC
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS best,
               ROW_NUMBER() OVER (PARTITION BY sc.deal_id, sc.to_stage_id ORDER BY sc.seq)
                   AS nth
        FROM {HISTORY} sc JOIN ordered o ON o.id = sc.to_stage_id
        WHERE {member.format(deal="sc.deal_id")} AND sc.at >= %s
    )
    SELECT e.to_stage_id, COUNT(*) AS entered,
           SUM(CASE WHEN e.best > o.reach THEN 1 ELSE 0 END) AS converted
    FROM since e JOIN ordered o ON o.id = e.to_stage_id
    WHERE e.nth = 1 AND e.pipeline_id = %s AND e.at < %s
    GROUP BY e.to_stage_id
    """
    params += [
        StageKind.WON,
        StageKind.OPEN,
        scope.pipeline.pk,
        _dt(scope.period.start),
        scope.pipeline.pk,
        _dt(scope.period.end),
    ]
    return [StageFunnel(row[0], row[1], row[2] or 0) for row in _fetch(sql, params)]


def _funnel_from_summary(scope: DashboardScope, mark: datetime) -> list[StageFunnel]:
    """Entries before the mark come from `StageEntry`: first in the period when the deal
    had not entered the stage since the period began (`previous_at`), converted when the
    summary says so or a change after the mark reached further. Entries after the mark
    (the last minutes) are derived from the history as `_funnel_from_history` does, with
    the deal's previous entry into the stage found through the (deal, seq) index.
    """
    cte, params, member = _scope_cte(scope)
    pipeline = int(scope.pipeline.pk)
    start, end = _dt(scope.period.start), _dt(scope.period.end)
    sql = f"""
    WITH {cte}, {_recent_entries(member, pipeline)},
    entries AS (
        SELECT e.stage_id,
               CASE WHEN e.went_on OR r.best > o.reach THEN 1 ELSE 0 END AS went_on
        FROM {ENTRY} e JOIN ordered o ON o.id = e.stage_id
        LEFT JOIN reached r ON r.deal_id = e.deal_id
        WHERE {member.format(deal="e.deal_id")} AND e.pipeline_id = %s
          AND e.entered_at >= %s AND e.entered_at < %s
          AND (e.previous_at IS NULL OR e.previous_at < %s)
        UNION ALL
        SELECT to_stage_id, CASE WHEN best > reach THEN 1 ELSE 0 END
        FROM recent
        WHERE pipeline_id = %s AND at < %s AND (previous_at IS NULL OR previous_at < %s)
    )
    SELECT stage_id, COUNT(*), SUM(went_on) FROM entries GROUP BY stage_id
    """
    params += [
        _dt(mark),
        pipeline,
        start,
        _dt(min(mark, scope.period.end)),
        start,
        pipeline,
        end,
        start,
    ]
    return [StageFunnel(row[0], row[1], row[2] or 0) for row in _fetch(sql, params)]


def _recent_entries(member: str, pipeline: int) -> str:
    """`ordered`, `recent` and `reached` CTEs for the entries after the mark (parameter:
    the mark): the last minutes' changes, each with the best stage the deal reached after
    it and its previous entry into the same stage (through the (deal, seq) index)."""
    return f"""
    ordered AS (
        SELECT id, {reach("r", str(pipeline))} AS reach FROM {RANKED} r
    ),
    -- After the mark the history holds only the last minutes' changes: every change
    -- enters a stage, so the (to_stage, at) index finds them.
    recent AS (
        SELECT x.deal_id, x.to_stage_id, x.pipeline_id, x.at, o.reach,
               MAX(o.reach) OVER (PARTITION BY x.deal_id ORDER BY x.seq DESC
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS best,
               (SELECT p.at FROM {HISTORY} p
                WHERE p.deal_id = x.deal_id AND p.to_stage_id = x.to_stage_id
                  AND p.seq < x.seq
                ORDER BY p.seq DESC LIMIT 1) AS previous_at
        FROM {HISTORY} x JOIN ordered o ON o.id = x.to_stage_id
        WHERE {member.format(deal="x.deal_id")} AND x.to_stage_id IN (SELECT id FROM {STAGE})
          AND x.at >= %s
    ),
    reached AS (
        SELECT deal_id, MAX(reach) AS best FROM recent GROUP BY deal_id
    )"""


def _funnel_from_days(scope: DashboardScope, mark: datetime) -> list[StageFunnel]:
    """The funnel of every deal for a period that runs to the mark or later, the stored
    entries read from `StageEntryDay`: the entries made on the period's days, less the
    re-entries whose previous entry was on one of them too (not a deal's first entry
    since the period began; all made before the mark, so before the period's end).
    Stored entries not gone on whose deal went further after the mark, and the entries
    after the mark, are read as `_funnel_from_summary` reads them.
    """
    pipeline = int(scope.pipeline.pk)
    first, last = _day(scope.period.first_day), _day(scope.period.last_day)
    start, end = _dt(scope.period.start), _dt(scope.period.end)
    sql = f"""
    WITH {_recent_entries("1 = 1", pipeline)},
    entries AS (
        SELECT stage_id, SUM(entered) AS entered, SUM(went_on) AS went_on
        FROM {ENTRY_DAY} WHERE pipeline_id = %s AND day >= %s AND day <= %s
        GROUP BY stage_id
        UNION ALL
        SELECT stage_id, -SUM(reentered), -SUM(reentered_went_on)
        FROM {ENTRY_DAY} WHERE pipeline_id = %s AND day >= %s
        GROUP BY stage_id
        UNION ALL
        SELECT e.stage_id, 0, 1
        FROM reached r JOIN {ENTRY} e ON e.deal_id = r.deal_id
        JOIN ordered o ON o.id = e.stage_id
        WHERE e.pipeline_id = %s AND NOT e.went_on AND r.best > o.reach
          AND e.entered_at >= %s AND e.entered_at < %s
          AND (e.previous_at IS NULL OR e.previous_at < %s)
        UNION ALL
        SELECT to_stage_id, 1, CASE WHEN best > reach THEN 1 ELSE 0 END
        FROM recent
        WHERE pipeline_id = %s AND at < %s AND (previous_at IS NULL OR previous_at < %s)
    )
    SELECT stage_id, SUM(entered), SUM(went_on) FROM entries GROUP BY stage_id
    """
    params = [
        _dt(mark),
        pipeline,
        first,
        last,
        pipeline,
        first,
        pipeline,
        start,
        _dt(mark),
        start,
        pipeline,
        end,
        start,
    ]
    return [
        StageFunnel(row[0], int(row[1]), int(row[2] or 0)) for row in _fetch(sql, params) if row[1]
    ]


# --- time in stage ------------------------------------------------------------------------


@dataclass(frozen=True)
class StageTimes:
    stage_id: int
    count: int
    median: float | None
    p75: float | None
    longest: float | None


def time_in_stage(
    scope: DashboardScope,
    *,
    stays_until: datetime | None = None,
    stage_ids: Sequence[int] = (),
    lengths_counted: bool = False,
) -> tuple[list[StageTimes], list[StageTimes]]:
    """(completed stays, deals still waiting), per open stage, in days.

    Completed stays are those that ended (the deal's next change) within the period:
    exit - entry. Waiting deals are the open deals in the stage now: now - entry.
    `stays_until`: the completed-stays summary's mark (see `_exits_ctes`).
    `stage_ids`: the pipeline's open stages, when known; PostgreSQL then computes the
    percentiles stage by stage in one pass (`_percentiles_of_stages`).
    `lengths_counted`: `StageLength` counts the stored stays in the current time zone.
    Then, when every deal counts (an admin, unfiltered), the completed stays' figures
    come from those counts and the few buckets that hold them (`_done_from_lengths`).
    """
    cte, params, member = _scope_cte(scope)
    counted = (
        lengths_counted
        and bool(stage_ids)
        and member == "1 = 1"
        and stays_until is not None
        and stays_until > scope.period.start
    )
    if connection.vendor == "postgresql" and stage_ids:
        done_sql = _percentiles_of_stages("done", "done", stage_ids)
        open_sql = _percentiles_of_stages("open", "waiting", stage_ids)
    else:
        done_sql, open_sql = _percentiles("done", "done"), _percentiles("open", "waiting")
    done: list[StageTimes] = []
    if counted:
        assert stays_until is not None
        done = _done_from_lengths(scope, stays_until, stage_ids)
        sql = f"""
        WITH {cte},
        waiting AS (
            SELECT d.stage_id, {days_between("d.stage_entered_at", "%s")} AS days
            FROM {DEAL_TABLE} d JOIN {STAGE} s ON s.id = d.stage_id
            WHERE d.pipeline_id = %s AND s.kind = %s
        )
        {open_sql}
        """
        params += [_dt(scope.now), scope.pipeline.pk, StageKind.OPEN]
    else:
        exits, stay_params = _exits_ctes(member, scope.period, stays_until, until=True)
        params += stay_params
        sql = f"""
        WITH {cte}, {exits},
        done AS (
            SELECT e.stage_id, e.days
            FROM exits e JOIN {STAGE} s ON s.id = e.stage_id
            WHERE s.pipeline_id = %s AND s.kind = %s
        ),
        waiting AS (
            SELECT d.stage_id, {days_between("d.stage_entered_at", "%s")} AS days
            FROM {DEAL_TABLE} d JOIN {STAGE} s ON s.id = d.stage_id
            WHERE {member.format(deal="d.id")} AND d.pipeline_id = %s AND s.kind = %s
        )
        {done_sql}
        UNION ALL
        {open_sql}
        """
        params += [
            scope.pipeline.pk,
            StageKind.OPEN,
            _dt(scope.now),
            scope.pipeline.pk,
            StageKind.OPEN,
        ]
    waiting: list[StageTimes] = []
    for sample, stage_id, n, median, p75, longest in _fetch(sql, params):
        times = StageTimes(stage_id, n, as_float(median), as_float(p75), as_float(longest))
        (done if sample == "done" else waiting).append(times)
    return done, waiting


def _done_from_lengths(
    scope: DashboardScope, mark: datetime, stage_ids: Sequence[int]
) -> list[StageTimes]:
    """The completed stays' count, median, p75 and longest per open stage, exactly as
    `_percentiles` gives them, without sorting every stay of the period.

    Three statements: (1) the stays not in `StageLength`, one by one: those after the
    mark (from the history), the stored ones that ended before they began or have no
    entry; (2) `StageLength`'s counts per stage and length bucket over the period's
    days; (3) the stored stays of only the buckets that hold a wanted rank. Buckets are
    ordered like the lengths they hold (`length_bucket`), so the k-th length of a stage
    is the right one within the bucket where the running count passes k.
    """
    ids = [int(pk) for pk in stage_ids]
    listed = ", ".join(str(pk) for pk in ids)
    start = _dt(scope.period.start)
    stored_end = _dt(min(mark, scope.period.end))
    exits, params = _exits_ctes("1 = 1", scope.period, mark, until=True, uncounted=[])
    sql = f"""
    WITH {exits}
    SELECT stage_id, days FROM exits WHERE stage_id IN ({listed})
    UNION ALL
    SELECT st.stage_id, st.days FROM {STAY} st
    WHERE st.stage_id IN ({listed}) AND st.days IS NULL
      AND st.exited_at >= %s AND st.exited_at < %s
    """
    loose: dict[int, list[float | None]] = {pk: [] for pk in ids}
    for stage_id, value in _fetch(sql, [*params, start, stored_end]):
        loose[stage_id].append(as_float(value))
    counts: dict[int, dict[int, int]] = {pk: {} for pk in ids}
    rows = (
        StageLength.objects.filter(
            stage_id__in=ids,
            day__gte=scope.period.first_day,
            day__lte=scope.period.last_day,
        )
        .values_list("stage_id", "bucket")
        .annotate(stays=Sum("stays"))
    )
    for stage_id, bucket, stays in rows.order_by():
        if stays:
            counts[stage_id][bucket] = stays
    # Which stored values the ranks each stage needs are: the value at a rank within a
    # bucket of stored stays alone (read through the (stage, days) index, the database
    # stepping over the lower ones), or every value of a bucket that also holds loose ones.
    plans = {pk: _Ranks(counts[pk], loose[pk]) for pk in ids}
    wanted = sorted({(pk, *need) for pk, plan in plans.items() for need in plan.stored()})
    found: dict[tuple[int, int, int | None], list[float]] = {key: [] for key in wanted}
    if wanted:
        parts, part_params = [], []
        for pk, b, within in wanted:
            width = 1 if b < FINE_DAYS else FINE_DAYS // 3
            one = "" if within is None else f"ORDER BY st.days LIMIT 1 OFFSET {int(within)}"
            parts.append(
                f"""SELECT {pk}, {b}, {-1 if within is None else int(within)}, v.days FROM (
                SELECT st.days FROM {STAY} st
                WHERE st.stage_id = {pk} AND st.days >= {b - 1} AND st.days < {b + width + 1}
                  AND {length_bucket("st.days")} = {b}
                  AND st.exited_at >= %s AND st.exited_at < %s
                  AND st.entered_at <= st.exited_at {one}) v"""
            )
            part_params += [start, stored_end]
        for stage_id, b, within, value in _fetch(" UNION ALL ".join(parts), part_params):
            key = (stage_id, int(b), None if within < 0 else int(within))
            found[key].append(float(value))
    result = []
    for pk in ids:
        times = plans[pk].times(pk, found)
        if times is not None:
            result.append(times)
    return result


class _Ranks:
    """One stage's lengths as bucket counts (stored, counted) plus loose values (the
    rest): which buckets hold the median, p75 and maximum, and then their values."""

    def __init__(self, counts: dict[int, int], loose: list[float | None]) -> None:
        self.counts = counts
        self.nulls = sum(1 for v in loose if v is None)
        self.loose: dict[int, list[float]] = {}
        for v in loose:
            if v is not None:
                self.loose.setdefault(bucket_of(v), []).append(v)
        self.buckets = sorted(set(counts) | set(self.loose))
        self.sizes = [counts.get(b, 0) + len(self.loose.get(b, [])) for b in self.buckets]
        self.n = sum(self.sizes)
        self.ranks: list[int] = []
        if self.n:
            for q in (0.5, 0.75):
                pos = q * (self.n - 1)
                self.ranks += [math.floor(pos), math.ceil(pos)]
            self.ranks.append(self.n - 1)

    def _where(self, rank: int) -> tuple[int, int]:
        """(bucket, rank within it) of the 0-based `rank`."""
        before = 0
        for b, size in zip(self.buckets, self.sizes, strict=True):
            if rank < before + size:
                return b, rank - before
            before += size
        raise IndexError(rank)

    def stored(self) -> set[tuple[int, int | None]]:
        """(bucket, rank within it) of each wanted rank in a bucket of stored stays only,
        (bucket, None) for a bucket of stored and loose stays, whose values are all read."""
        needs: set[tuple[int, int | None]] = set()
        for b, within in map(self._where, self.ranks):
            if self.counts.get(b):
                needs.add((b, None if b in self.loose else within))
        return needs

    def times(
        self, pk: int, found: dict[tuple[int, int, int | None], list[float]]
    ) -> StageTimes | None:
        if not self.n and not self.nulls:
            return None
        if not self.n:
            return StageTimes(pk, self.nulls, None, None, None)

        ordered: dict[int, list[float]] = {}

        def value(rank: int) -> float:
            b, within = self._where(rank)
            if self.counts.get(b) and b not in self.loose:
                return found[(pk, b, within)][0]
            if b not in ordered:
                ordered[b] = sorted(found.get((pk, b, None), []) + self.loose.get(b, []))
            return ordered[b][within]

        figures = []
        for q in (0.5, 0.75):
            pos = q * (self.n - 1)
            low, high = math.floor(pos), math.ceil(pos)
            first = value(low)
            figures.append(first if low == high else first + (pos - low) * (value(high) - first))
        return StageTimes(pk, self.n + self.nulls, figures[0], figures[1], value(self.n - 1))


# --- cumulative flow ----------------------------------------------------------------------


def cumulative_flow(
    scope: DashboardScope,
    *,
    stays_until: datetime | None = None,
    counted_except: Sequence[int] | None = None,
) -> dict[int, dict[date, int]]:
    """Deals in each stage at the end of each day of the period (up to today).

    Open stages start from the deals already in them; won and lost stages count only
    deals that entered them within the period, so they grow as deals close.
    Returns, per stage, the count on each day where it changed (carry it forward).
    `stays_until`: the completed-stays summary's mark (see `_exits_ctes`).
    `counted_except`: given when `StageDay` counts the stored stays in the current time
    zone, the ids of the pipeline's won and lost stages. Then, when every deal counts
    (an admin, unfiltered), the open stages' stored stays are read from those per-day
    counts (`_counted_events`) instead of one by one.
    """
    last_day = min(scope.period.last_day, scope.today)
    cte, params, member = _scope_cte(scope)
    tz = timezone.get_current_timezone_name()
    entry_day, entry_params = connection.ops.datetime_cast_date_sql("sp.entry_at", (), tz)
    exit_day, exit_params = connection.ops.datetime_cast_date_sql("sp.exit_at", (), tz)
    counted = (
        counted_except is not None
        and member == "1 = 1"
        and stays_until is not None
        and stays_until > scope.period.start
    )
    exits, stay_params = _exits_ctes(
        member,
        scope.period,
        stays_until,
        until=False,
        uncounted=counted_except if counted else None,
    )
    params += stay_params
    counted_sql, counted_params = _counted_events(scope, last_day) if counted else ("", [])
    # Read twice below (entries, exits): PostgreSQL would otherwise store every span
    # first; inlined, the exits' copy drops the current stays (no exit) at planning.
    # Only when the counts replace the stored stays: a manager's spans probe the stays
    # deal by deal, and doing that twice cost more than storing them (176 -> 630 ms).
    inline = "NOT MATERIALIZED " if counted and connection.vendor == "postgresql" else ""
    sql = f"""
    WITH {cte}, {exits},
    stays AS (
        SELECT stage_id, entry_at, exit_at FROM exits
        UNION ALL
        -- The stay each deal is in now has no exit yet: it is the deal's own stage.
        SELECT d.stage_id, d.stage_entered_at, NULL
        FROM {DEAL_TABLE} d
        WHERE {member.format(deal="d.id")}
    ),
    spans AS {inline}(
        SELECT st.stage_id, st.entry_at, st.exit_at
        FROM stays st JOIN {STAGE} s ON s.id = st.stage_id
        WHERE s.pipeline_id = %s AND st.entry_at < %s
          AND (s.kind = %s OR st.entry_at >= %s)
    ),
    -- Count entries and exits per stage and day first: the running sum then adds up a
    -- few rows per day instead of one per stay.
    events AS (
        SELECT stage_id, {entry_day} AS on_day, COUNT(*) AS delta
        FROM (SELECT stage_id, CASE WHEN entry_at < %s THEN %s ELSE entry_at END AS entry_at
              FROM spans) sp
        GROUP BY 1, 2
        UNION ALL
        SELECT stage_id, {exit_day}, -COUNT(*)
        FROM spans sp
        WHERE exit_at IS NOT NULL AND exit_at < %s
        GROUP BY 1, 2{counted_sql}
    )
    SELECT stage_id, on_day, SUM(SUM(delta)) OVER (PARTITION BY stage_id ORDER BY on_day)
    FROM events
    GROUP BY stage_id, on_day
    """
    # A deal counts on a day when it is in the stage at that day's end (midnight after).
    cutoff = Period(scope.period.first_day, last_day, "").end
    params += [
        scope.pipeline.pk,
        _dt(cutoff),
        StageKind.OPEN,
        _dt(scope.period.start),
        *entry_params,
        _dt(scope.period.start),
        _dt(scope.period.start),
        *exit_params,
        _dt(cutoff),
        *counted_params,
    ]
    flow: dict[int, dict[date, int]] = {}
    for stage_id, day, count in _fetch(sql, params):
        flow.setdefault(stage_id, {})[as_date(day)] = int(count)
    return flow


def _counted_events(scope: DashboardScope, last_day: date) -> tuple[str, list[Any]]:
    """`UNION ALL` branches of the flow's events from `StageDay`, for the stored stays
    of the pipeline's open stages (those it counts), from the first day S to `last_day`
    L. A stay is in the flow when it ended on S or later and began by L: on S it adds
    those that began by then less those that had ended before (a counted stay never
    ends before it begins, so those began before S too); after S, each day adds those
    that began and, from S on, takes away those that ended.
    """
    first = scope.period.first_day
    on_first = "CAST(%s AS date)" if connection.vendor == "postgresql" else "%s"
    open_stages = f"JOIN {STAGE} s ON s.id = sd.stage_id AND s.pipeline_id = %s AND s.kind = %s"
    day_table = StageDay._meta.db_table
    sql = f"""
        UNION ALL
        SELECT sd.stage_id, {on_first},
               SUM(sd.entered) - SUM(CASE WHEN sd.day < %s THEN sd.exited ELSE 0 END)
        FROM {day_table} sd {open_stages}
        WHERE sd.day <= %s
        GROUP BY sd.stage_id
        UNION ALL
        SELECT sd.stage_id, sd.day, SUM(sd.entered)
        FROM {day_table} sd {open_stages}
        WHERE sd.day > %s AND sd.day <= %s
        GROUP BY 1, 2
        UNION ALL
        SELECT sd.stage_id, sd.day, -SUM(sd.exited)
        FROM {day_table} sd {open_stages}
        WHERE sd.day >= %s AND sd.day <= %s
        GROUP BY 1, 2"""
    pipeline, kind = scope.pipeline.pk, StageKind.OPEN
    params = [
        _day(first),
        _day(first),
        pipeline,
        kind,
        _day(first),
        pipeline,
        kind,
        _day(first),
        _day(last_day),
        pipeline,
        kind,
        _day(first),
        _day(last_day),
    ]
    return sql, params


# --- sales cycle --------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleTimes:
    count: int
    mean: float | None
    median: float | None


def cycle_times(scope: DashboardScope) -> dict[tuple[str, str], CycleTimes]:
    """Days from creation to close of the pipeline's deals closed in each period: count,
    mean and median, of the won deals and of all closed deals (won or lost).

    Keys: ("cur" | "prev", "won" | "closed"); a sample with no deals is missing.
    """
    cte, params, member = _scope_cte(scope)
    periods = (("cur", scope.period), ("prev", scope.previous))
    start = min(period.start for _, period in periods)
    end = max(period.end for _, period in periods)
    samples = []
    sample_params: list[Any] = []
    for name, period in periods:
        within = "closed_at >= %s AND closed_at < %s"
        samples.append(
            f"SELECT '{name}:won' AS stage_id, days FROM closed WHERE won = 1 AND {within}"
        )
        samples.append(f"SELECT '{name}:closed', days FROM closed WHERE {within}")
        sample_params += [_dt(period.start), _dt(period.end)] * 2
    sql = f"""
    WITH {cte},
    closed AS (
        SELECT d.closed_at, CASE WHEN s.kind = %s THEN 1 ELSE 0 END AS won,
               {days_between("d.created_at", "d.closed_at")} AS days
        FROM {DEAL_TABLE} d JOIN {STAGE} s ON s.id = d.stage_id
        WHERE {member.format(deal="d.id")} AND d.pipeline_id = %s AND s.kind IN (%s, %s)
          AND d.closed_at >= %s AND d.closed_at < %s
    ),
    samples AS ({" UNION ALL ".join(samples)})
    {_percentiles("median", "samples")}
    UNION ALL
    SELECT 'mean', stage_id, COUNT(*), AVG(days), NULL, NULL FROM samples GROUP BY stage_id
    """
    params += [
        StageKind.WON,
        scope.pipeline.pk,
        StageKind.WON,
        StageKind.LOST,
        _dt(start),
        _dt(end),
        *sample_params,
    ]
    medians: dict[str, float | None] = {}
    means: dict[str, tuple[int, float | None]] = {}
    for sample, key, n, value, _p75, _longest in _fetch(sql, params):
        if sample == "mean":
            means[key] = (int(n), as_float(value))
        else:
            medians[key] = as_float(value)
    result = {}
    for key, (n, mean) in means.items():
        name, kind = key.split(":")
        result[(name, kind)] = CycleTimes(n, mean, medians.get(key))
    return result
