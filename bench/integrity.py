"""Integrity checks after concurrent moves: set-based, over every deal and history row.

The move protocol promises: a deal's `version` equals the number of its history rows,
its `seq` runs 1..n without gaps, its current stage is the one its last row entered,
and every move that answered 200 wrote exactly one history row. These checks read the
whole tables in a few grouped queries; each returns the number of offending rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection

GLOBAL_CHECKS = {
    "deals_without_history": """
        SELECT count(*) FROM deals_deal d
        WHERE NOT EXISTS (SELECT 1 FROM deals_stagechange h WHERE h.deal_id = d.id)
    """,
    "version_not_history_count": """
        SELECT count(*) FROM deals_deal d
        JOIN (SELECT deal_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi
              FROM deals_stagechange GROUP BY deal_id) h ON h.deal_id = d.id
        WHERE d.version <> h.n
    """,
    "seq_not_contiguous": """
        SELECT count(*) FROM (SELECT deal_id FROM deals_stagechange GROUP BY deal_id
                              HAVING min(seq) <> 1 OR max(seq) <> count(*)) gaps
    """,
    "stage_not_last_history_row": """
        SELECT count(*) FROM deals_deal d
        JOIN deals_stagechange h ON h.deal_id = d.id AND h.seq = d.version
        WHERE h.to_stage_id <> d.stage_id
    """,
    "history_chain_broken": """
        SELECT count(*) FROM deals_stagechange h
        JOIN deals_stagechange prev ON prev.deal_id = h.deal_id AND prev.seq = h.seq - 1
        WHERE h.from_stage_id IS DISTINCT FROM prev.to_stage_id
    """,
}


def global_errors() -> dict[str, int]:
    """Each invariant of the move protocol, with the number of rows breaking it."""
    errors = {}
    with connection.cursor() as cursor:
        for name, sql in GLOBAL_CHECKS.items():
            cursor.execute(sql)
            errors[name] = cursor.fetchone()[0]
    return errors


def snapshot() -> dict[str, Any]:
    """Deals per stage and history rows, to compare before and after a load test."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT stage_id, count(*) FROM deals_deal GROUP BY stage_id")
        per_stage = {int(stage): n for stage, n in cursor.fetchall()}
        cursor.execute("SELECT count(*), max(id) FROM deals_stagechange")
        history, last_id = cursor.fetchone()
    return {"per_stage": per_stage, "history": history, "last_history_id": last_id or 0}


def moves_errors(
    before: dict[str, Any], after: dict[str, Any], moves: Iterable[tuple[int, int, int, int]]
) -> dict[str, int]:
    """Check the successful moves (deal, from stage, to stage, new version) of a load test.

    Each must have exactly one new history row with that seq and target; no other new
    history row may exist; and every column's count must be what the moves explain, so
    no deal was lost or duplicated.
    """
    moves = list(moves)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_moves "
            "(deal_id bigint, from_id bigint, to_id bigint, seq int)"
        )
        try:
            with connection.connection.cursor().copy(
                "COPY bench_moves (deal_id, from_id, to_id, seq) FROM STDIN"
            ) as copy:
                for move in moves:
                    copy.write_row(move)
            cursor.execute(
                """
                SELECT count(*) FROM bench_moves m
                WHERE (SELECT count(*) FROM deals_stagechange h
                       WHERE h.deal_id = m.deal_id AND h.seq = m.seq
                         AND h.to_stage_id = m.to_id AND h.id > %s) <> 1
                """,
                [before["last_history_id"]],
            )
            unmatched = cursor.fetchone()[0]
            cursor.execute(
                """
                SELECT count(*) FROM deals_stagechange h
                WHERE h.id > %s AND NOT EXISTS (
                    SELECT 1 FROM bench_moves m WHERE m.deal_id = h.deal_id AND m.seq = h.seq)
                """,
                [before["last_history_id"]],
            )
            unexplained = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) - count(DISTINCT (deal_id, seq)) FROM bench_moves")
            duplicate_successes = cursor.fetchone()[0]
        finally:
            cursor.execute("DROP TABLE IF EXISTS bench_moves")
    expected = dict(before["per_stage"])
    for _deal, from_id, to_id, _seq in moves:
        expected[from_id] = expected.get(from_id, 0) - 1
        expected[to_id] = expected.get(to_id, 0) + 1
    expected = {k: v for k, v in expected.items() if v}
    column_mismatch = sum(
        1
        for stage in set(expected) | set(after["per_stage"])
        if expected.get(stage, 0) != after["per_stage"].get(stage, 0)
    )
    return {
        "success_without_one_history_row": unmatched,
        "history_row_without_success": unexplained,
        "same_version_acknowledged_twice": duplicate_successes,
        "history_rows_vs_successes": (after["history"] - before["history"]) - len(moves),
        "columns_not_explained_by_moves": column_mismatch,
        "deal_count_changed": sum(after["per_stage"].values()) - sum(before["per_stage"].values()),
    }
