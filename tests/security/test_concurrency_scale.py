"""Concurrency at scale on PostgreSQL: many simultaneous writers, nothing lost or forged.

- 10 threads x 100 rounds of conflicting moves of one deal through `move_deal`: exactly
  one success per round, every other attempt a VersionConflict (HTTP 409); version,
  history and outbox agree (one history row and one outbox row per success, sequence
  numbers contiguous, each row starting where the previous one ended). The same race is
  run over HTTP, where the losers must read 409.
- 10 threads reordering cards of one column at once: no card lost or duplicated.
- The gate is evaluated under the deal's row lock: a criterion added (or a confirmation
  withdrawn) by a transaction that holds the lock when the move arrives is seen by the
  move, which waited for it.

SQLite cannot run these (it serialises whole-database writes and ignores SELECT ... FOR
UPDATE), so they skip there, saying why.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test import Client
from django.urls import reverse

from common import outbox
from deals.models import ChecklistTick, Deal, Event, GateEvent, StageChange
from deals.services import GateBlocked, Placement, VersionConflict, move_deal, reorder_deal
from stages.models import CriterionKind, EntryCriterion
from tests.factories import CriterionFactory, DealFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 10
ROUNDS = 100
HTTP_ROUNDS = 10
REORDER_ROUNDS = 40
GATE_RACES = 10
HOLD = 0.3  # seconds the rival transaction keeps the deal locked


@pytest.fixture(autouse=True)
def postgresql_only(db):
    if connection.vendor != "postgresql":
        pytest.skip(
            f"needs PostgreSQL row locks and concurrent connections, not {connection.vendor}; "
            "run with DATABASE_URL=postgres://..."
        )


@pytest.fixture(autouse=True)
def no_broker_hand_off(monkeypatch):
    """The outbox rows are what these tests count; handing them to Celery is not tested
    here (test_faults.py does), and must not load the machine or a shared broker."""
    monkeypatch.setattr(outbox, "dispatch", lambda message_ids: 0)


@dataclass
class Crew:
    """`size` threads that live for all rounds, each with its own database connection,
    released together at the start of every round."""

    size: int
    start: threading.Barrier = field(init=False)
    finish: threading.Barrier = field(init=False)
    jobs: list[Callable[[], Any]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    stop: bool = False

    def __post_init__(self) -> None:
        self.start = threading.Barrier(self.size + 1)
        self.finish = threading.Barrier(self.size + 1)
        self.results = [None] * self.size
        self.threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(self.size)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self, index: int) -> None:
        try:
            while True:
                self.start.wait(timeout=120)
                if self.stop:
                    return
                try:
                    self.results[index] = self.jobs[index]()
                except Exception as error:  # the outcome under test, whatever it is
                    self.results[index] = error
                self.finish.wait(timeout=120)
        finally:
            # An open connection would block the test database's teardown.
            connections.close_all()

    def round(self, jobs: list[Callable[[], Any]]) -> list[Any]:
        self.jobs = jobs
        self.start.wait(timeout=120)
        self.finish.wait(timeout=120)
        return list(self.results)

    def close(self) -> None:
        self.stop = True
        self.start.wait(timeout=120)
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self.threads)


@pytest.fixture
def crew() -> Iterator[Crew]:
    team = Crew(THREADS)
    yield team
    team.close()


def kind(outcome: Any) -> str:
    return type(outcome).__name__ if isinstance(outcome, BaseException) else "moved"


def attempt(deal_id: int, stage: Any, by: Any, version: int) -> Callable[[], Any]:
    def move() -> Any:
        # Each thread loads its own copy, as two browser requests would.
        deal = Deal.objects.get(pk=deal_id)
        return move_deal(deal, stage, by=by, expected_version=version, source="board")

    return move


def test_one_hundred_rounds_of_ten_conflicting_moves(crew, rep, manager, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    targets = [stages[name] for name in ("lead", "qualified", "demo", "proposal")]
    actors = [rep, manager]
    tally: Counter[str] = Counter()
    started = time.monotonic()

    for round_ in range(ROUNDS):
        current = Deal.objects.values_list("stage_id", "version").get(pk=deal.pk)
        open_targets = [s for s in targets if s.pk != current[0]]
        outcomes = crew.round(
            [
                attempt(deal.pk, open_targets[i % 3], actors[i % 2], current[1])
                for i in range(THREADS)
            ]
        )
        per_round = Counter(kind(o) for o in outcomes)
        assert per_round == {"moved": 1, "VersionConflict": THREADS - 1}, (round_, outcomes)
        assert all(o.status == 409 for o in outcomes if isinstance(o, VersionConflict))
        tally += per_round

    elapsed = time.monotonic() - started
    print(f"\n{ROUNDS} rounds x {THREADS} threads: {dict(tally)} in {elapsed:.1f} s")
    deal.refresh_from_db()
    assert deal.version == 1 + ROUNDS
    history = list(
        StageChange.objects.filter(deal=deal)
        .order_by("seq")
        .values_list("seq", "from_stage", "to_stage")
    )
    assert [seq for seq, _, _ in history] == list(range(1, ROUNDS + 2))
    # Each row starts where the previous one ended: no move applied to a stale state.
    assert all(history[i][1] == history[i - 1][2] for i in range(1, len(history)))
    assert history[-1][2] == deal.stage_id
    # One event per committed move; refused attempts published nothing.
    assert Event.objects.filter(deal_id=deal.pk, name="deal.moved").count() == ROUNDS


def test_conflicting_moves_over_http_answer_one_200_and_the_rest_409(crew, rep, manager, stages):
    """Losers read 409, except a request that arrives after the winner committed and asks
    for the very stage the card is now in: that is answered as a reorder in place (204,
    no history row), which is what its sender wanted."""
    deal = DealFactory(owner=rep, stage=stages["lead"])
    clients = []
    for i in range(THREADS):
        client = Client()
        client.force_login(rep if i % 2 else manager)
        clients.append(client)
    url = reverse("deal_move", args=[deal.pk])
    targets = [stages[name] for name in ("lead", "qualified", "demo", "proposal")]
    statuses: Counter[int] = Counter()

    for round_ in range(HTTP_ROUNDS):
        stage_id, version = Deal.objects.values_list("stage_id", "version").get(pk=deal.pk)
        open_targets = [s for s in targets if s.pk != stage_id]

        def post(client: Client, target: Any, version: int = version) -> tuple[int, int]:
            data = {"stage": target.pk, "version": version}
            response = client.post(url, data, headers={"HX-Request": "true"})
            return target.pk, response.status_code

        outcomes = crew.round(
            [(lambda c=clients[i], t=open_targets[i % 3]: post(c, t)) for i in range(THREADS)]
        )
        landed = Deal.objects.values_list("stage_id", flat=True).get(pk=deal.pk)
        codes = [code for _, code in outcomes]
        assert codes.count(200) == 1, (round_, outcomes)
        assert all(
            code == 409 or (code == 204 and target == landed)
            for target, code in outcomes
            if code != 200
        ), (round_, outcomes)
        statuses.update(codes)

    print(f"\nHTTP: {HTTP_ROUNDS} rounds x {THREADS} requests: {dict(statuses)}")
    deal.refresh_from_db()
    assert deal.version == 1 + HTTP_ROUNDS
    assert StageChange.objects.filter(deal=deal).count() == HTTP_ROUNDS + 1


def reorder_storm(crew: Crew, rep: Any, column: Any) -> tuple[list[int], list[BaseException]]:
    """REORDER_ROUNDS rounds of THREADS simultaneous reorders in a crowded column whose
    neighbours sit one apart, so most placements must renumber the column to make room."""
    ids = [DealFactory(owner=rep, stage=column, position=i).pk for i in range(12)]
    rng = random.Random(8)
    errors: list[BaseException] = []
    for _ in range(REORDER_ROUNDS):
        jobs = []
        for _ in range(THREADS):
            card, anchor = rng.sample(ids, 2)
            side = rng.choice(["after_id", "before_id"])

            def place(card: int = card, anchor: int = anchor, side: str = side) -> Any:
                deal = Deal.objects.get(pk=card)
                return reorder_deal(
                    deal,
                    by=rep,
                    position=Placement(**{side: anchor}),
                    expected_version=deal.version,
                )

            jobs.append(place)
        errors += [o for o in crew.round(jobs) if isinstance(o, BaseException)]
    return ids, errors


def test_concurrent_reorders_in_one_column_lose_and_duplicate_no_card(crew, rep, stages):
    column = stages["qualified"]

    ids, errors = reorder_storm(crew, rep, column)

    print(
        f"\nreorders: {REORDER_ROUNDS * THREADS} attempted, {len(errors)} failed: "
        f"{Counter(kind(e) for e in errors)}"
    )
    # A failed reorder is rolled back whole (see the next test for why some fail).
    assert all(isinstance(e, OperationalError) and "deadlock" in str(e) for e in errors)
    in_column = list(
        Deal.objects.filter(stage=column).order_by("position", "id").values_list("pk", flat=True)
    )
    assert sorted(in_column) == sorted(ids)  # every card, each exactly once
    assert len(set(Deal.objects.filter(pk__in=ids).values_list("stage", flat=True))) == 1


def test_concurrent_reorders_in_a_crowded_column_all_succeed(crew, rep, stages):
    _, errors = reorder_storm(crew, rep, stages["qualified"])

    assert errors == []


@dataclass
class Rival:
    """A transaction that locks the deal row, changes something the gate reads, holds the
    lock for HOLD seconds and commits (or rolls back)."""

    deal_id: int
    change: Callable[[], None]
    commit: bool = True
    locked: threading.Event = field(default_factory=threading.Event)
    released_at: float = 0.0

    def run(self) -> None:
        try:
            with transaction.atomic():
                list(Deal.objects.select_for_update().filter(pk=self.deal_id))
                self.change()
                self.locked.set()
                time.sleep(HOLD)
                self.released_at = time.monotonic()
                if not self.commit:
                    transaction.set_rollback(True)
        finally:
            connections.close_all()


def race_gate(deal: Deal, stage: Any, by: Any, rival: Rival) -> tuple[Any, float, float]:
    """Start the rival, then the move while the rival holds the lock; the move's outcome,
    when it was sent and when it returned."""
    outcome: list[Any] = []
    times: list[float] = []

    def move() -> None:
        try:
            rival.locked.wait(timeout=10)
            times.append(time.monotonic())
            outcome.append(
                move_deal(
                    Deal.objects.get(pk=deal.pk), stage, by=by, expected_version=deal.version
                )
            )
        except Exception as error:
            outcome.append(error)
        finally:
            times.append(time.monotonic())
            connections.close_all()

    threads = [threading.Thread(target=rival.run), threading.Thread(target=move)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcome[0], times[0], times[1]


def test_a_criterion_added_while_the_move_waits_for_the_lock_is_enforced(rep, stages):
    target = stages["qualified"]
    waits = []
    for _ in range(GATE_RACES):
        deal = DealFactory(owner=rep, stage=stages["lead"])
        added: list[EntryCriterion] = []
        rival = Rival(
            deal.pk,
            lambda added=added: added.append(
                EntryCriterion.objects.create(
                    stage=target, kind=CriterionKind.CHECKLIST, label="Security review passed"
                )
            ),
        )

        outcome, sent, returned = race_gate(deal, target, rep, rival)

        assert sent < rival.released_at <= returned, "the move did not wait for the lock"
        assert isinstance(outcome, GateBlocked), outcome
        assert [f.criterion for f in outcome.failures] == added
        assert Deal.objects.get(pk=deal.pk).stage_id == stages["lead"].pk
        assert GateEvent.objects.filter(deal=deal, outcome="blocked").count() == 1
        waits.append(returned - sent)
        EntryCriterion.objects.filter(pk=added[0].pk).delete()
    print(f"\ngate races: {GATE_RACES} blocked; waited {min(waits):.2f}-{max(waits):.2f} s")


def test_a_confirmation_withdrawn_while_the_move_waits_cannot_be_slipped_past(rep, stages):
    target = stages["qualified"]
    criterion = CriterionFactory(stage=target, kind=CriterionKind.CHECKLIST, label="Budget")
    for _ in range(GATE_RACES):
        deal = DealFactory(owner=rep, stage=stages["lead"])
        ChecklistTick.objects.create(deal=deal, criterion=criterion, by=rep)
        rival = Rival(deal.pk, lambda d=deal: ChecklistTick.objects.filter(deal=d).delete())

        outcome, sent, returned = race_gate(deal, target, rep, rival)

        assert sent < rival.released_at <= returned
        assert isinstance(outcome, GateBlocked), outcome
        assert Deal.objects.get(pk=deal.pk).stage_id == stages["lead"].pk


def test_the_same_race_lets_the_move_through_when_the_rival_rolls_back(rep, stages):
    """The control: the race above blocks because of the rival's change, nothing else."""
    target = stages["qualified"]
    deal = DealFactory(owner=rep, stage=stages["lead"])
    rival = Rival(
        deal.pk,
        lambda: EntryCriterion.objects.create(
            stage=target, kind=CriterionKind.CHECKLIST, label="Never committed"
        ),
        commit=False,
    )

    outcome, sent, returned = race_gate(deal, target, rep, rival)

    assert sent < rival.released_at <= returned
    assert kind(outcome) == "moved", outcome
    assert Deal.objects.get(pk=deal.pk).stage_id == target.pk
