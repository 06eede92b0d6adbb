"""The completed-stays summary behind time in stage and cumulative flow.

Deriving a stay's entry time (the deal's previous change) takes a window over every
change since the period began, which at a million history rows costs more than the
rest of those panels together. `refresh` stores each completed stay once, set-based;
the dashboard reads the stored ones and derives only those that ended after the mark
(see `history._exits_ctes`), so a stale or empty summary makes it slower, never wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from reports.dashboard.history import STAGE, STAY, stays_ending
from reports.models import StageStayMark

# A move's history row carries the time it was written, and its transaction commits
# moments later. Each refresh only covers stays that ended at least this long ago, and
# looks again this far back, so a change that commits late is still picked up.
SETTLE = timedelta(minutes=5)


@dataclass(frozen=True)
class StaysRefreshed:
    added: int
    covered_until: datetime


def refresh(*, now: datetime | None = None) -> StaysRefreshed:
    """Add every completed stay that ended before `now - SETTLE` and is not stored yet.

    Idempotent: a second run at the same time adds nothing. Runs of the job serialise
    on the mark row, which moves forward in the same transaction as the stays it covers.
    """
    cutoff = (now or timezone.now()) - SETTLE
    with transaction.atomic():
        mark, first = StageStayMark.objects.select_for_update().get_or_create(
            pk=1, defaults={"covered_until": cutoff}
        )
        if first:
            where, params = "x.at < %s", [cutoff]
        else:
            # Only the last minutes' changes: every change enters a stage, so the
            # (to_stage, at) index finds them without scanning the whole history.
            where = f"x.to_stage_id IN (SELECT id FROM {STAGE}) AND x.at >= %s AND x.at < %s"
            params = [mark.covered_until - SETTLE, cutoff]
        # Stays already stored (the look back over SETTLE) meet the primary key and are
        # skipped row by row: an anti-join planned against a table that statistics still
        # think empty would scan it once per new row.
        sql = f"""
        INSERT INTO {STAY} (change_id, deal_id, stage_id, entered_at, exited_at)
        SELECT t.id, t.deal_id, t.stage_id, t.entry_at, t.exit_at
        FROM ({stays_ending(where)}) t
        WHERE t.stage_id IS NOT NULL
        ON CONFLICT (change_id) DO NOTHING
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [connection.ops.adapt_datetimefield_value(p) for p in params])
            added = max(cursor.rowcount, 0)
        if cutoff > mark.covered_until:
            mark.covered_until = cutoff
            mark.save(update_fields=["covered_until"])
    return StaysRefreshed(added=added, covered_until=mark.covered_until)
