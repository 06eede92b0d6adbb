"""A small, hand-checkable stage history for the dashboard tests (March 2025, UTC).

Stages (conftest): Lead in → Qualified → Demo → Proposal (10/20/30/40 %), Won, Lost.
"Now" is 2025-04-01 12:00. Every figure the tests expect is worked out in their
docstrings from the table below; amounts are USD 1,000 unless noted.

deal  owner     path (entry times)                                          now
A     rep       Lead 1st → Qualified 3rd → Demo 7th → Proposal 8th → Won 20th  won, $3,000
B     rep       Lead 2nd → Demo 6th (skipped Qualified)                       in Demo
C     rep       Qualified Feb 25 → Demo 5th → Qualified 10th (moved backward) in Qualified
D     rep       Lead 10th                                                     in Lead, stalled
E     rep       Lead 4th → Lost 14th                                          lost
F     rep       Lead 25th                                                     in Lead, snoozed flag
G     rep       Lead Feb 1 → Won Feb 11 (previous period)                     won, $2,000
H     teammate  Proposal 28th                                                 in Proposal, EUR 500
X     outsider  Lead 5th → Demo 9th → Won 15th (another team)                 won, $99,999
(all moves at 12:00)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from deals.models import (
    Activity,
    Deal,
    GateEvent,
    GateOutcome,
    StageChange,
    StalledFlag,
    StalledRule,
)
from reports.dashboard.filters import DashboardScope, Period, periods_for
from stages.models import Stage, StageKind
from tests.factories import CriterionFactory

NOW = datetime(2025, 4, 1, 12, tzinfo=UTC)
MARCH = Period(date(2025, 3, 1), date(2025, 3, 31), "Custom")


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2025, month, day, hour, tzinfo=UTC)


def march(day: int, hour: int = 12) -> datetime:
    return at(3, day, hour)


def make_deal(
    owner: Any,
    path: list[tuple[Stage, datetime]],
    *,
    title: str,
    amount: str = "1000.00",
    currency: str = "USD",
) -> Deal:
    """A deal whose history is `path`, left in its last stage as move_deal would leave it."""
    last_stage, last_at = path[-1]
    deal = Deal.objects.create(
        title=title,
        owner=owner,
        pipeline=last_stage.pipeline,
        stage=last_stage,
        amount=Decimal(amount),
        currency=currency,
        created_at=path[0][1],
        stage_entered_at=last_at,
        closed_at=None if last_stage.kind == StageKind.OPEN else last_at,
    )
    previous = None
    for seq, (stage, when) in enumerate(path, start=1):
        StageChange.objects.create(
            deal=deal,
            seq=seq,
            from_stage=previous,
            to_stage=stage,
            pipeline=stage.pipeline,
            at=when,
            by=owner,
            source="create" if seq == 1 else "board",
        )
        previous = stage
    return deal


@dataclass
class History:
    deals: dict[str, Deal]
    criterion: Any


def build_history(stages: dict[str, Stage], *, rep: Any, teammate: Any, outsider: Any) -> History:
    lead, qualified, demo = stages["lead"], stages["qualified"], stages["demo"]
    proposal, won, lost = stages["proposal"], stages["won"], stages["lost"]
    deals = {
        "A": make_deal(
            rep,
            [
                (lead, march(1)),
                (qualified, march(3)),
                (demo, march(7)),
                (proposal, march(8)),
                (won, march(20)),
            ],
            title="A straight",
            amount="3000.00",
        ),
        "B": make_deal(rep, [(lead, march(2)), (demo, march(6))], title="B skipper"),
        "C": make_deal(
            rep,
            [(qualified, at(2, 25)), (demo, march(5)), (qualified, march(10))],
            title="C backward",
        ),
        "D": make_deal(rep, [(lead, march(10))], title="D waiting"),
        "E": make_deal(rep, [(lead, march(4)), (lost, march(14))], title="E lost"),
        "F": make_deal(rep, [(lead, march(25))], title="F snoozed"),
        "G": make_deal(
            rep, [(lead, at(2, 1)), (won, at(2, 11))], title="G won before", amount="2000.00"
        ),
        "H": make_deal(
            teammate, [(proposal, march(28))], title="H euro", amount="500.00", currency="EUR"
        ),
        "X": make_deal(
            outsider,
            [(lead, march(5)), (demo, march(9)), (won, march(15))],
            title="X outsider secret",
            amount="99999.00",
        ),
    }
    StalledFlag.objects.create(deal=deals["D"], rule=StalledRule.IN_STAGE_TOO_LONG)
    StalledFlag.objects.create(deal=deals["F"], rule=StalledRule.NO_NEXT_STEP)
    Deal.objects.filter(pk=deals["F"].pk).update(snoozed_until=date(2025, 4, 5))
    StalledFlag.objects.create(deal=deals["X"], rule=StalledRule.CLOSE_DATE_PASSED)

    criterion = CriterionFactory(stage=demo, kind="checklist", label="Budget confirmed")
    for deal, outcome, when in [
        (deals["A"], GateOutcome.BLOCKED, march(7, 9)),
        (deals["B"], GateOutcome.BLOCKED, march(6, 9)),
        (deals["B"], GateOutcome.OVERRIDDEN, march(6, 12)),
        (deals["A"], GateOutcome.BLOCKED, at(2, 20)),  # before the period
        (deals["X"], GateOutcome.BLOCKED, march(9, 9)),  # another team
    ]:
        GateEvent.objects.create(
            deal=deal,
            stage=demo,
            criterion=criterion,
            requirement=criterion.requirement,
            outcome=outcome,
            source="board",
            at=when,
        )

    for deal, done_at in [
        (deals["B"], march(3)),
        (deals["D"], march(12)),
        (deals["D"], at(2, 27)),  # before the period
        (deals["X"], march(6)),  # another team
    ]:
        Activity.objects.create(
            deal=deal, owner=deal.owner, subject="Call", done=True, done_at=done_at
        )
    Activity.objects.create(deal=deals["C"], owner=rep, subject="Call later", done=False)
    return History(deals=deals, criterion=criterion)


def scope_for(
    user: Any,
    pipeline: Any,
    *,
    period: Period = MARCH,
    team: Any = None,
    owner: Any = None,
    now: datetime = NOW,
) -> DashboardScope:
    previous = periods_for("custom", now.date(), period.first_day, period.last_day)[1]
    return DashboardScope(
        user=user,
        pipeline=pipeline,
        team=team,
        owner=owner,
        period=period,
        previous=previous,
        period_kind="custom",
        now=now,
    )


MARCH_QUERY = {"period": "custom", "date_from": "2025-03-01", "date_to": "2025-03-31"}
