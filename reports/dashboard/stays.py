"""The summaries behind time in stage, cumulative flow and the funnel.

Deriving a stay's entry time (the deal's previous change) takes a window over every
change since the period began, which at a million history rows costs more than the
rest of those panels together. `refresh` stores each completed stay once, set-based;
the dashboard reads the stored ones and derives only those that ended after the mark
(see `history._exits_ctes`).

The mark is a time, and the refresh looks only at changes newer than it. It never moves
past a time an open transaction could still date a change at (`_settled`), so a move
that commits late is never skipped; but history written with past dates (an import of
the years before, an import's undo, a delete) would never reach the summaries.
Whoever writes such history marks its deals in `deals.RewrittenHistory` in the same
transaction; `catch_up` recomputes those deals from their whole history up to the mark,
and runs in every refresh and before every dashboard read
(`reports.dashboard.panels.Dashboard.stages`). So a summary read always equals the
history it summarises: what is before the mark is complete for every deal, what is
after it is derived from the history at read time.

The same refresh keeps `StageEntry`, each entry into a stage with whether the deal went
on from it (the funnel's conversion), read the same way by `history.funnel`. Whether it
went on depends on the stages' order and kinds, so the mark keeps the `stages_key` it was
worked out with; when the stages change the dashboard stops reading it and the next
refresh works it out again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from deals.models import RewrittenHistory
from reports.dashboard.backtest import CLOSE_MONTH, fill_close_month_stages
from reports.dashboard.history import (
    ENTRY,
    HISTORY,
    RANKED,
    STAGE,
    STAY,
    days_between,
    length_bucket,
    reach,
    stays_ending,
)
from reports.models import StageDay, StageEntryDay, StageLength, StageStayMark
from stages.models import Stage, StageKind

# The mark never passes a time at which a transaction still open could be writing (see
# `_settled`), and stays this far behind both the clock and the oldest open transaction:
# history rows are dated by the application servers' clocks, transactions by the
# database's, and a writer reads the clock a moment before its first statement.
SETTLE = timedelta(minutes=5)


@dataclass(frozen=True)
class StaysRefreshed:
    added: int
    covered_until: datetime


def refresh(*, now: datetime | None = None) -> StaysRefreshed:
    """Add every completed stay that ended before the new mark and is not stored yet,
    and every entry made before it (see `_add_entries`). `added` counts the stays.

    The new mark is `now - SETTLE`, or earlier while a transaction that began before
    that is still open (`_settled`): every change dated before the mark has committed
    when this reads the history, however late its transaction commits.

    Idempotent: a second run at the same time adds nothing. Runs of the job serialise
    on the mark row, which moves forward in the same transaction as the rows it covers.
    When the stages have changed since the entries were stored, they are worked out
    again from the whole history.
    """
    wanted = (now or timezone.now()) - SETTLE
    with transaction.atomic():
        mark, first = StageStayMark.objects.select_for_update().get_or_create(
            pk=1, defaults={"covered_until": wanted}
        )
        with connection.cursor() as cursor:
            claimed = _claim_rewritten(cursor)
            settled = _settled(cursor, wanted)
        cutoff = settled if first else max(settled, mark.covered_until)
        if first:
            where, params = "x.at < %s", [cutoff]
        else:
            # Only the last minutes' changes: every change enters a stage, so the
            # (to_stage, at) index finds them without scanning the whole history.
            where = f"x.to_stage_id IN (SELECT id FROM {STAGE}) AND x.at >= %s AND x.at < %s"
            params = [mark.covered_until, cutoff]
        # A stay already stored (a deal caught up by `catch_up` meanwhile) meets the
        # primary key and is skipped row by row: an anti-join planned against a table that
        # statistics still think empty would scan it once per new row.
        sql = f"""
        INSERT INTO {STAY} (change_id, deal_id, stage_id, entered_at, exited_at, days)
        SELECT t.id, t.deal_id, t.stage_id, t.entry_at, t.exit_at,
               {days_between("t.entry_at", "t.exit_at")}
        FROM ({stays_ending(where)}) t
        WHERE t.stage_id IS NOT NULL
        ON CONFLICT (change_id) DO NOTHING
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [connection.ops.adapt_datetimefield_value(p) for p in params])
            added = max(cursor.rowcount, 0)
            zone = timezone.get_current_timezone_name()
            recount = first or mark.days_zone != zone
            if not recount:
                # The stays stored now are those that ended since the previous mark.
                _count_days(
                    cursor,
                    "st.exited_at >= %s AND st.exited_at < %s",
                    [mark.covered_until, cutoff],
                    sign=1,
                )
            key = stages_key(
                Stage.objects.order_by("id").values_list("id", "pipeline_id", "position", "kind")
            )
            rebuilt = first or mark.stages_key != key
            if rebuilt:
                cursor.execute(f"DELETE FROM {ENTRY}")
                _add_entries(cursor, "x.at < %s", [cutoff], first=True)
            else:
                _add_entries(cursor, where, params, first=False, counted=not recount)
            if claimed and not first:
                _recompute_claimed(cursor, cutoff, days=not recount)
            _release_claimed(cursor, claimed)
            if recount:
                cursor.execute(f"DELETE FROM {DAY}")
                cursor.execute(f"DELETE FROM {LENGTH}")
                _count_days(cursor, "1 = 1", [], sign=1)
                # Months began at another zone's midnights.
                cursor.execute(f"DELETE FROM {CLOSE_MONTH}")
            if recount or rebuilt:
                cursor.execute(f"DELETE FROM {ENTRY_DAY}")
                _count_entries(cursor, "1 = 1", [], sign=1)
            fill_close_month_stages(cursor, cutoff)
        if first or recount or cutoff != mark.covered_until or mark.stages_key != key:
            mark.covered_until = cutoff
            mark.stages_key = key
            mark.days_zone = zone
            mark.save(update_fields=["covered_until", "stages_key", "days_zone"])
    return StaysRefreshed(added=added, covered_until=mark.covered_until)


def _settled(cursor: Any, wanted: datetime) -> datetime:
    """The latest mark no open transaction can still write history before: `wanted`, or
    SETTLE before the start of the oldest transaction still open, if that is earlier.

    A writer dates its history row after its transaction began (a move reads the clock
    once it holds the deal's row lock), so a change dated before this mark belongs to a
    transaction that had ended when this looked: committed, the history read that
    follows sees it. A transaction open now dates its rows after the mark, where the
    dashboard derives them from the history at read time. No cost to the writers: they
    take no lock and read nothing, and a long transaction (an import batch) only holds
    the mark back, which makes panels derive more, never miss anything.

    PostgreSQL: `pg_stat_activity`, which shows the sessions of the application's own
    role (history is written by it). The statistics snapshot is cleared first, as it is
    otherwise kept for the rest of a transaction. SQLite: writers run one at a time
    (settings: transaction_mode IMMEDIATE, so a transaction holds the write lock from its
    start) and this refresh holds it, so no transaction is open elsewhere.
    """
    if connection.vendor != "postgresql":
        return wanted
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute(
        """SELECT min(xact_start) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND backend_type = 'client backend' AND xact_start IS NOT NULL"""
    )
    oldest = cursor.fetchone()[0]
    return wanted if oldest is None else min(wanted, oldest - SETTLE)


def catch_up() -> int:
    """Recompute the summaries of the deals whose history was rewritten (see the module
    docstring), up to the mark; returns how many markers it consumed.

    The dashboard calls it before reading the summaries when any marker is waiting, so
    an import shows in every panel as soon as it commits. Serialised with the refresh on
    the mark row; without a mark nothing is summarised yet, and the first refresh works
    everything out from the whole history.
    """
    with transaction.atomic():
        mark = StageStayMark.objects.select_for_update().filter(pk=1).first()
        if mark is None:
            return 0
        with connection.cursor() as cursor:
            claimed = _claim_rewritten(cursor)
            if claimed:
                # Days counted in another time zone are not kept: the next refresh
                # counts them again (and until then the dashboard does not read them).
                days = mark.days_zone == timezone.get_current_timezone_name()
                _recompute_claimed(cursor, mark.covered_until, days=days)
                _release_claimed(cursor, claimed)
                if not days and mark.days_zone:
                    mark.days_zone = ""
                    mark.save(update_fields=["days_zone"])
    return claimed


REWRITTEN = RewrittenHistory._meta.db_table
CLAIMED = f"(SELECT deal_id FROM {REWRITTEN} WHERE claimed = TRUE)"


def _claim_rewritten(cursor: Any) -> int:
    """Claim the markers committed so far: markers committed while this transaction
    recomputes are left for the next one, which will then see their history."""
    cursor.execute(f"UPDATE {REWRITTEN} SET claimed = TRUE WHERE claimed = FALSE")
    return max(cursor.rowcount, 0)


def _release_claimed(cursor: Any, claimed: int) -> None:
    if claimed:
        cursor.execute(f"DELETE FROM {REWRITTEN} WHERE claimed = TRUE")


def _recompute_claimed(cursor: Any, until: datetime, *, days: bool) -> None:
    """Replace the claimed deals' stays and entries by those of their whole history
    before `until`. A deal's rows depend on its own history only (its previous change,
    its later changes) and on the stages' order, so this is exact for each of them; a
    deal that is gone simply loses its rows."""
    if days:
        _count_days(cursor, f"st.deal_id IN {CLAIMED}", [], sign=-1)
        _count_entries(cursor, f"e.deal_id IN {CLAIMED}", [], sign=-1)
    cursor.execute(f"DELETE FROM {STAY} WHERE deal_id IN {CLAIMED}")
    cursor.execute(f"DELETE FROM {ENTRY} WHERE deal_id IN {CLAIMED}")
    # The next refresh stores them again (`fill_close_month_stages`).
    cursor.execute(f"DELETE FROM {CLOSE_MONTH} WHERE deal_id IN {CLAIMED}")
    where = f"x.deal_id IN {CLAIMED} AND x.at < %s"
    sql = f"""
    INSERT INTO {STAY} (change_id, deal_id, stage_id, entered_at, exited_at, days)
    SELECT t.id, t.deal_id, t.stage_id, t.entry_at, t.exit_at,
           {days_between("t.entry_at", "t.exit_at")}
    FROM ({stays_ending(where)}) t
    WHERE t.stage_id IS NOT NULL
    """
    cursor.execute(sql, [connection.ops.adapt_datetimefield_value(until)])
    if days:
        _count_days(cursor, f"st.deal_id IN {CLAIMED}", [], sign=1)
    _add_entries(cursor, where, [until], first=True)
    if days:
        _count_entries(cursor, f"e.deal_id IN {CLAIMED}", [], sign=1)


DAY = StageDay._meta.db_table
LENGTH = StageLength._meta.db_table
ENTRY_DAY = StageEntryDay._meta.db_table


def _count_days(cursor: Any, where: str, params: list[Any], *, sign: int) -> None:
    """Add (`sign` 1) or take away (-1) the stored stays meeting `where` (alias `st`) in
    `StageDay`: per stage, the days they began and ended, in the current time zone; and
    in `StageLength`, per stage, day they ended and length bucket. Stays without an
    entry, or that ended before they began, are not counted."""
    tz = timezone.get_current_timezone_name()
    entry_day, entry_params = connection.ops.datetime_cast_date_sql("st.entered_at", (), tz)
    exit_day, exit_params = connection.ops.datetime_cast_date_sql("st.exited_at", (), tz)
    counted = f"({where}) AND st.entered_at IS NOT NULL AND st.entered_at <= st.exited_at"
    sql = f"""
    INSERT INTO {DAY} (stage_id, day, entered, exited)
    SELECT stage_id, day, SUM(entered), SUM(exited) FROM (
        SELECT st.stage_id, {entry_day} AS day, {sign} AS entered, 0 AS exited
        FROM {STAY} st WHERE {counted}
        UNION ALL
        SELECT st.stage_id, {exit_day}, 0, {sign}
        FROM {STAY} st WHERE {counted}
    ) e
    WHERE 1 = 1
    GROUP BY stage_id, day
    ON CONFLICT (stage_id, day) DO UPDATE
    SET entered = {DAY}.entered + excluded.entered, exited = {DAY}.exited + excluded.exited
    """
    adapted = [connection.ops.adapt_datetimefield_value(p) for p in params]
    cursor.execute(sql, [*entry_params, *adapted, *exit_params, *adapted])
    sql = f"""
    INSERT INTO {LENGTH} (stage_id, day, bucket, stays)
    SELECT st.stage_id, {exit_day}, {length_bucket("st.days")}, SUM({sign})
    FROM {STAY} st WHERE {counted}
    GROUP BY 1, 2, 3
    ON CONFLICT (stage_id, day, bucket) DO UPDATE
    SET stays = {LENGTH}.stays + excluded.stays
    """
    cursor.execute(sql, [*exit_params, *adapted])


def _count_entries(
    cursor: Any, where: str, params: list[Any], *, sign: int, went_only: bool = False
) -> None:
    """Add (`sign` 1) or take away (-1) the stored entries meeting `where` (alias `e`) in
    `StageEntryDay`, in the current time zone: each on its day, and a re-entry also on
    the day of its previous entry. With `went_only` only their went-on counts change
    (entries about to go on, see `_add_entries`)."""
    tz = timezone.get_current_timezone_name()
    entry_day, entry_params = connection.ops.datetime_cast_date_sql("e.entered_at", (), tz)
    previous_day, previous_params = connection.ops.datetime_cast_date_sql("e.previous_at", (), tz)
    went = str(sign) if went_only else f"CASE WHEN e.went_on THEN {sign} ELSE 0 END"
    entered = 0 if went_only else sign
    sql = f"""
    INSERT INTO {ENTRY_DAY}
        (pipeline_id, day, stage_id, from_stage, entered, went_on, reentered, reentered_went_on)
    SELECT pipeline_id, day, stage_id, from_stage, SUM(a), SUM(b), SUM(c), SUM(d) FROM (
        SELECT e.pipeline_id, {entry_day} AS day, e.stage_id,
               COALESCE(e.from_stage_id, 0) AS from_stage,
               {entered} AS a, {went} AS b, 0 AS c, 0 AS d
        FROM {ENTRY} e WHERE {where}
        UNION ALL
        SELECT e.pipeline_id, {previous_day}, e.stage_id, COALESCE(e.from_stage_id, 0),
               0, 0, {entered}, {went}
        FROM {ENTRY} e WHERE ({where}) AND e.previous_at IS NOT NULL
    ) c
    WHERE 1 = 1
    GROUP BY pipeline_id, day, stage_id, from_stage
    ON CONFLICT (pipeline_id, day, stage_id, from_stage) DO UPDATE
    SET entered = {ENTRY_DAY}.entered + excluded.entered,
        went_on = {ENTRY_DAY}.went_on + excluded.went_on,
        reentered = {ENTRY_DAY}.reentered + excluded.reentered,
        reentered_went_on = {ENTRY_DAY}.reentered_went_on + excluded.reentered_went_on
    """
    adapted = [connection.ops.adapt_datetimefield_value(p) for p in params]
    cursor.execute(sql, [*entry_params, *adapted, *previous_params, *adapted])


def stages_key(stages: Iterable[tuple[int, int, int, str]]) -> str:
    """A digest of every stage's (id, pipeline, position, kind): what decides which
    stage is later than which, so what `StageEntry.went_on` depends on."""
    text = ";".join(f"{i}:{p}:{pos}:{kind}" for i, p, pos, kind in sorted(stages))
    return hashlib.sha256(text.encode()).hexdigest()


def _add_entries(
    cursor: Any, where: str, params: list[Any], *, first: bool, counted: bool = False
) -> None:
    """Store the entries of the changes meeting `where` (alias `x`), then mark as gone on
    the stored entries those changes took further. With `counted` (later runs only),
    `StageEntryDay` counts the new entries and the entries that went on, in the same
    transaction.

    On the first run `where` holds the whole history up to the cutoff, so a deal's
    previous entry into the stage and its later changes are all among the rows (LAG and
    a running MAX). Later runs read the last minutes only: the previous entry is looked
    up through the (deal, seq) index, and the older entries these changes took further
    are updated. A change's pipeline is its to-stage's (deals.services), so the running
    MAX over a deal's later changes in the same pipeline is how far it got there.
    """
    later = (
        "OVER (PARTITION BY x.deal_id{} ORDER BY x.seq DESC"
        " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    previous = (
        "LAG(x.at) OVER (PARTITION BY x.deal_id, x.to_stage_id ORDER BY x.seq)"
        if first
        else f"""(SELECT p.at FROM {HISTORY} p
                 WHERE p.deal_id = x.deal_id AND p.to_stage_id = x.to_stage_id
                   AND p.seq < x.seq
                 ORDER BY p.seq DESC LIMIT 1)"""
    )
    own = reach("r", "x.pipeline_id")
    won = f"CASE WHEN r.kind = '{StageKind.WON}' THEN 1 ELSE 0 END"
    sql = f"""
    INSERT INTO {ENTRY} (change_id, deal_id, stage_id, pipeline_id, from_stage_id, seq,
                         entered_at, previous_at, went_on)
    SELECT x.id, x.deal_id, x.to_stage_id, x.pipeline_id, x.from_stage_id, x.seq, x.at,
           {previous},
           CASE WHEN COALESCE(MAX({own}) {later.format(", x.pipeline_id")}, 0) > {own}
                  OR (COALESCE(MAX({won}) {later.format("")}, 0) = 1
                      AND r.kind <> '{StageKind.WON}')
                THEN TRUE ELSE FALSE END
    FROM {HISTORY} x JOIN {RANKED} r ON r.id = x.to_stage_id
    WHERE {where}
    ON CONFLICT (change_id) DO NOTHING
    """
    adapted = [connection.ops.adapt_datetimefield_value(p) for p in params]
    cursor.execute(sql, adapted)
    if first:
        return
    if counted:
        _count_entries(
            cursor, f"e.change_id IN (SELECT x.id FROM {HISTORY} x WHERE {where})", params, sign=1
        )
    going_on = """{e}.went_on = FALSE
      AND {e}.deal_id IN (SELECT x.deal_id FROM {history} x WHERE {where})
      AND EXISTS (
          SELECT 1 FROM {history} x
          JOIN {ranked} r ON r.id = x.to_stage_id
          JOIN {ranked} s ON s.id = {e}.stage_id
          WHERE {where} AND x.deal_id = {e}.deal_id AND x.seq > {e}.seq
            AND {further}
      )"""

    def went_on(e: str) -> str:
        further = f"{reach('r', f'{e}.pipeline_id')} > {reach('s', f'{e}.pipeline_id')}"
        return going_on.format(e=e, history=HISTORY, where=where, ranked=RANKED, further=further)

    if counted:
        # The same condition as the update below, read first: these entries' days gain
        # a went-on each.
        _count_entries(cursor, went_on("e"), params + params, sign=1, went_only=True)
    cursor.execute(f"UPDATE {ENTRY} SET went_on = TRUE WHERE {went_on(ENTRY)}", adapted + adapted)
