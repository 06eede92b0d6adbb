from __future__ import annotations

import pytest

from automations.models import RuleRun
from deals import services
from deals.models import Activity
from tests.factories import DealFactory

pytestmark = pytest.mark.django_db


def test_entering_demo_creates_the_activity(rep, stages, make_rule, committed):
    rule = make_rule(
        {"kind": "stage_entered", "stage": stages["demo"].pk},
        [
            {
                "kind": "create_activity",
                "type": "task",
                "subject": "Prepare demo",
                "due_days": 1,
                "assignee": "owner",
                "note": "",
            }
        ],
    )
    deal = DealFactory(owner=rep, stage=stages["qualified"])
    with committed():
        services.move_deal(deal, stages["demo"], by=rep, expected_version=deal.version)
    run = RuleRun.objects.get()
    assert run.status == "done", (run.reason, run.outcomes)
    activity = Activity.objects.get(deal=deal)
    assert activity.owner == rep and "Prepare demo" in activity.subject
    assert rule.name in activity.note
