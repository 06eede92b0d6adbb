"""SQL kept per user (`common.statements.Prepared`, keyed by `policy.rule_inputs`) never
serves one user's scope to another: the board's column totals for two reps of the same
role in different teams, one after the other in one process, and for a rep before and
after a change of team. A key missing one of the user facts the policy reads would hand
the second reader the first one's statement and parameters."""

from __future__ import annotations

from decimal import Decimal

import pytest

from deals.queries import BoardFilters, column_heads
from tests.factories import DealFactory

pytestmark = pytest.mark.django_db


def lead_column(user, stages):
    [column] = [c for c in column_heads(user, BoardFilters(), [stages["lead"]])]
    return column.count, sorted(total.amount for total in column.totals)


def test_two_reps_of_one_role_each_read_their_own_teams_totals(rep, outsider, stages):
    DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("100"))
    DealFactory(owner=outsider, stage=stages["lead"], amount=Decimal("7"))
    DealFactory(owner=outsider, stage=stages["lead"], amount=Decimal("8"))

    assert lead_column(rep, stages) == (1, [Decimal("100")])
    assert lead_column(outsider, stages) == (2, [Decimal("15")])
    assert lead_column(rep, stages) == (1, [Decimal("100")])


def test_a_rep_moved_to_another_team_reads_the_new_teams_totals(rep, teammate, outsider, stages):
    DealFactory(owner=teammate, stage=stages["lead"], amount=Decimal("100"))
    DealFactory(owner=outsider, stage=stages["lead"], amount=Decimal("7"))
    assert lead_column(rep, stages) == (1, [Decimal("100")])

    rep.team = outsider.team
    rep.save()

    assert lead_column(rep, stages) == (1, [Decimal("7")])
