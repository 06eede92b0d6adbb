"""The move's fixed-shape statements (lock, related rows, update, history), SQL written once.

A move runs the same few statements every time; the ORM would build and compile each
afresh (see common/statements.py). These are the statements `services` uses for every
deal action that locks a deal, and for the move's own writes. The rules stay in
`services` and `accounts.policy`: this module only reads and writes rows.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import connection

from accounts.models import User
from common.statements import MAX_ID, Rows, quote, run, run_all
from contacts.models import Organization
from deals.models import Activity, Deal, StageChange, StalledFlag
from stages.models import Stage

if TYPE_CHECKING:
    from collections.abc import Sequence

DEALS = Rows(Deal)
STAGES = Rows(Stage)
USERS = Rows(User)
ORGANIZATIONS = Rows(Organization)
HISTORY = Rows(StageChange)
NEXT_ACTIVITY = Rows(Activity, ["due_at", "subject", "type"])
FLAGS = Rows(StalledFlag)
POSITION_GAP = 1024


@cache
def _lock_sql() -> str:
    # The row alone (no join: a locking query re-checks its joins against the joined rows
    # as they were before it waited, and a deal moved meanwhile would drop out).
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return f"SELECT {DEALS.columns()} FROM {DEALS.table} WHERE id = %s{lock}"


def lock(deal_id: int) -> Deal | None:
    """Deal `deal_id`, its row locked until the transaction ends; None if there is none."""
    if not 0 < deal_id <= MAX_ID:
        return None
    row = run(_lock_sql(), [deal_id])
    return None if row is None else DEALS.instance(row)  # type: ignore[return-value]


@cache
def _related_sql() -> str:
    return (
        f"SELECT {STAGES.columns('s')}, {USERS.columns('u')}, {ORGANIZATIONS.columns('o')} "
        f"FROM {STAGES.table} s CROSS JOIN {USERS.table} u "
        f"LEFT JOIN {ORGANIZATIONS.table} o ON o.id = %s WHERE s.id = %s AND u.id = %s"
    )


def load_related(deal: Deal) -> None:
    """Read the deal's stage, owner and organization (what a move and its card use) in one
    statement, and attach them to `deal`."""
    row = run(_related_sql(), [deal.organization_id, deal.stage_id, deal.owner_id])
    if row is None:  # the foreign keys are PROTECTed: only a broken database gets here
        raise Deal.DoesNotExist(f"deal {deal.pk}'s stage or owner is missing")
    stage_end = len(STAGES)
    user_end = stage_end + len(USERS)
    deal.stage = STAGES.instance(row[:stage_end])  # type: ignore[assignment]
    deal.owner = USERS.instance(row[stage_end:user_end])  # type: ignore[assignment]
    if deal.organization_id is not None:
        deal.organization = ORGANIZATIONS.instance(row[user_end:])  # type: ignore[assignment]


@cache
def _update_sql(names: tuple[str, ...], top: bool) -> str:
    by_name = {f.attname: f for f in DEALS.fields}
    sets = [f"{quote(by_name[name].column)} = %s" for name in names]
    if top:
        # Top of the new column, worked out inside the UPDATE (no round trip).
        sets.append(
            f"position = COALESCE((SELECT MIN(c.position) FROM {DEALS.table} c "
            f"WHERE c.stage_id = %s AND c.id <> %s), {POSITION_GAP}) - {POSITION_GAP}"
        )
    else:
        sets.append("position = %s")
    return f"UPDATE {DEALS.table} SET {', '.join(sets)} WHERE id = %s RETURNING position"


def update(deal: Deal, names: Sequence[str], *, position: int | None) -> None:
    """Write `deal`'s fields `names` (attnames) and its position: `position`, or the top of
    its stage's column when None (then read back into `deal.position`)."""
    values = DEALS.values(deal, names)
    if position is None:
        params: list[Any] = [*values, deal.stage_id, deal.pk, deal.pk]
    else:
        params = [*values, position, deal.pk]
    row = run(_update_sql(tuple(names), position is None), params)
    deal.position = row[0]  # type: ignore[index]


@cache
def _history_sql() -> str:
    names = [f.attname for f in HISTORY.fields if not f.primary_key]
    values = [
        (
            # The deal's next history number; the deal's row lock orders concurrent moves.
            f"(SELECT COALESCE(MAX(h.seq), 0) + 1 FROM {HISTORY.table} h WHERE h.deal_id = %s)"
            if name == "seq"
            else "%s"
        )
        for name in names
    ]
    columns = ", ".join(quote(f.column) for f in HISTORY.fields if not f.primary_key)
    return (
        f"INSERT INTO {HISTORY.table} ({columns}) VALUES ({', '.join(values)}) RETURNING id, seq"
    )


def append_history(change: StageChange) -> StageChange:
    """Insert `change` (its `seq` is the deal's next, worked out in the INSERT)."""
    names = [f.attname for f in HISTORY.fields if not f.primary_key]
    params = [
        change.deal_id if name == "seq" else value
        for name, value in zip(names, HISTORY.values(change, names), strict=True)
    ]
    change.pk, change.seq = run(_history_sql(), params)  # type: ignore[misc]
    change._state.adding = False
    change._state.db = connection.alias
    return change


@cache
def _next_activity_sql() -> str:
    table = quote(Activity._meta.db_table)
    columns = ", ".join(quote(f.column) for f in NEXT_ACTIVITY.fields)
    return (
        f"SELECT {columns} FROM {table} WHERE deal_id = %s AND NOT done "
        "ORDER BY due_at, id LIMIT 1"
    )


def next_activity(deal_id: int) -> dict[str, Any]:
    """The deal's next open activity (as `queries.with_next_activity` orders them):
    {"due_at", "subject", "type"}, or {} when it has none."""
    row = run(_next_activity_sql(), [deal_id])
    if row is None:
        return {}
    return dict(zip(NEXT_ACTIVITY.names, NEXT_ACTIVITY.converted(row), strict=True))


@cache
def _flags_sql() -> str:
    return f"SELECT {FLAGS.columns()} FROM {FLAGS.table} WHERE deal_id = %s ORDER BY rule"


def prefetch_stalled_flags(deal: Deal) -> None:
    """Load the deal's stalled flags, ordered by rule, into `deal.stalled_flags.all()` as
    `prefetch_related_objects(..., queries.STALLED_FLAGS)` would."""
    flags = [FLAGS.instance(row) for row in run_all(_flags_sql(), [deal.pk])]
    for flag in flags:
        flag.deal = deal  # type: ignore[attr-defined]
    cached = deal.stalled_flags.all()
    cached._result_cache = flags
    cached._prefetch_done = True
    deal._prefetched_objects_cache = {
        **getattr(deal, "_prefetched_objects_cache", {}),
        "stalled_flags": cached,
    }
