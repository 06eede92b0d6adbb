"""Simultaneous moves of one deal on PostgreSQL: exactly one wins, the rest get a conflict.

These tests need real row locks and real concurrent connections, which SQLite cannot
give (it serialises whole-database writes and ignores SELECT ... FOR UPDATE).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import OperationalError, connection, connections

from common.errors import NotVisible
from deals import activities
from deals.models import Activity, Deal, RewrittenHistory, StageChange
from deals.services import VersionConflict, delete_deal, move_deal
from tests.factories import ActivityFactory, DealFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 10
ROUNDS = 20


@pytest.fixture(autouse=True)
def postgresql_only(db):
    if connection.vendor != "postgresql":
        pytest.skip(
            f"needs PostgreSQL row locks and concurrent connections, not {connection.vendor}; "
            "run with DATABASE_URL=postgres://..."
        )


def race(attempts: list[Callable[[], object]]) -> list[object]:
    """Run the attempts in parallel threads released together; each result or exception."""
    barrier = threading.Barrier(len(attempts))
    outcomes: list[object] = [None] * len(attempts)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index] = attempts[index]()
        except BaseException as error:  # reported to the test, whatever it is
            outcomes[index] = error
        finally:
            # Each thread opened its own connection; leaving it open would block the
            # test database teardown.
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(attempts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a move never returned"
    return outcomes


def tally(outcomes: list[object]) -> Counter[str]:
    return Counter(
        type(outcome).__name__ if isinstance(outcome, BaseException) else "moved"
        for outcome in outcomes
    )


def attempt(deal_id: int, stage, by, version: int) -> Callable[[], object]:
    def move() -> object:
        # Each thread loads its own copy, as two browser requests would.
        return move_deal(
            Deal.objects.get(pk=deal_id), stage, by=by, expected_version=version, source="board"
        )

    return move


def test_two_simultaneous_moves_from_one_version_let_exactly_one_through(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])

    outcomes = race(
        [
            attempt(deal.pk, stages["qualified"], rep, deal.version),
            attempt(deal.pk, stages["demo"], rep, deal.version),
        ]
    )

    assert tally(outcomes) == {"moved": 1, "VersionConflict": 1}, outcomes
    (winner,) = [o for o in outcomes if not isinstance(o, BaseException)]
    deal.refresh_from_db()
    assert deal.version == 2
    assert deal.stage == winner.change.to_stage
    assert list(StageChange.objects.filter(deal=deal).values_list("seq", "to_stage")) == [
        (1, stages["lead"].pk),
        (2, winner.change.to_stage_id),
    ]


def test_loser_of_a_race_gets_the_current_state_in_its_conflict(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])

    outcomes = race(
        [
            attempt(deal.pk, stages["qualified"], rep, deal.version),
            attempt(deal.pk, stages["demo"], rep, deal.version),
        ]
    )

    conflicts = [o for o in outcomes if isinstance(o, VersionConflict)]
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert (len(conflicts), len(winners)) == (1, 1), outcomes
    conflict, winner = conflicts[0], winners[0]
    assert conflict.deal.version == 2
    assert conflict.deal.stage_id == winner.change.to_stage_id


def test_many_rounds_of_many_simultaneous_moves_keep_history_contiguous(rep, manager, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    targets = [stages[name] for name in ("lead", "qualified", "demo", "proposal")]
    actors = [rep, manager]

    for round_ in range(ROUNDS):
        deal.refresh_from_db()
        open_targets = [s for s in targets if s.pk != deal.stage_id]
        outcomes = race(
            [
                attempt(
                    deal.pk,
                    open_targets[i % len(open_targets)],
                    actors[i % len(actors)],
                    deal.version,
                )
                for i in range(THREADS)
            ]
        )

        assert tally(outcomes) == {"moved": 1, "VersionConflict": THREADS - 1}, (round_, outcomes)

    deal.refresh_from_db()
    assert deal.version == 1 + ROUNDS
    seqs = list(
        StageChange.objects.filter(deal=deal).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, ROUNDS + 2))
    # Each row starts where the previous one ended: no move was applied to a stale state.
    hops = list(
        StageChange.objects.filter(deal=deal).order_by("seq").values_list("from_stage", "to_stage")
    )
    assert all(hops[i][0] == hops[i - 1][1] for i in range(1, len(hops)))
    assert hops[-1][1] == deal.stage_id


ACTIVITY_WRITES = {
    "complete": lambda pk, by: activities.complete_activity(pk, by=by),
    "update": lambda pk, by: activities.update_activity(
        pk, by=by, subject="Moved", type="call", due_at=None, note=""
    ),
    "delete": lambda pk, by: activities.delete_activity(pk, by=by),
}


@pytest.mark.parametrize("write", sorted(ACTIVITY_WRITES))
def test_an_activity_write_and_its_deals_deletion_at_once_do_not_deadlock(
    write, rep, manager, stages, monkeypatch
):
    """Each side is held at the point where, with opposite lock orders, it would hold one
    row and want the other's: the activity write on its recount (the activity written,
    the deal's lock next), the deletion on its history mark (the deal locked, its
    activities' next). Each waits until the other got there too, or is blocked on a lock
    it holds; then both go on. Locking the deal first in both, one simply waits for the
    other; with the activity first, PostgreSQL found a deadlock and failed one of them."""
    deal = DealFactory(owner=rep, stage=stages["lead"])
    activity = ActivityFactory(deal=deal, owner=rep)
    reached = {"write": threading.Event(), "delete": threading.Event()}
    pids: dict[str, int] = {}
    started = threading.Barrier(2)

    def hold(me: str, other: str) -> None:
        reached[me].set()
        with connection.cursor() as cursor:
            while not reached[other].wait(0.01):
                cursor.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", [pids[other]])
                if cursor.fetchone()[0]:
                    return

    recount, mark = activities.refresh_activity_times, RewrittenHistory.mark

    def held_recount(deal_ids, **kwargs):
        hold("write", "delete")
        return recount(deal_ids, **kwargs)

    def held_mark(deal_ids):
        hold("delete", "write")
        return mark(deal_ids)

    monkeypatch.setattr(activities, "refresh_activity_times", held_recount)
    monkeypatch.setattr(RewrittenHistory, "mark", held_mark)

    def side(name: str, act: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids[name] = cursor.fetchone()[0]
            started.wait(timeout=30)
            return act()

        return run

    written, deleted = race(
        [
            side("write", lambda: ACTIVITY_WRITES[write](activity.pk, rep)),
            side(
                "delete",
                lambda: delete_deal(
                    Deal.objects.get(pk=deal.pk), by=manager, expected_version=deal.version
                ),
            ),
        ]
    )

    assert not isinstance(deleted, BaseException), deleted
    # The write went first, or found its activity gone with the deal: never a deadlock.
    assert not isinstance(written, OperationalError), written
    assert written is None or isinstance(written, (Activity, NotVisible)), written
    assert not Deal.objects.filter(pk=deal.pk).exists()
    assert not Activity.objects.filter(pk=activity.pk).exists()
