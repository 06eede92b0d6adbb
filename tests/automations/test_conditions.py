"""Each condition kind, as SQL: it passes for the deals it describes and fails for others."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from automations import conditions
from tests.factories import ActivityFactory, DealFactory, OrganizationFactory, PersonFactory

pytestmark = pytest.mark.django_db


def results(condition, *deals):
    found = conditions.evaluate({"match": "all", "items": [condition]}, [d.pk for d in deals])
    return [found[d.pk][0] for d in deals]


def test_pipeline_and_stage(rep, stages):
    demo, lead = (
        DealFactory(owner=rep, stage=stages["demo"]),
        DealFactory(owner=rep, stage=stages["lead"]),
    )
    assert results({"kind": "stage", "op": "in", "ids": [stages["demo"].pk]}, demo, lead) == [
        True,
        False,
    ]
    assert results({"kind": "stage", "op": "not_in", "ids": [stages["demo"].pk]}, demo, lead) == [
        False,
        True,
    ]
    pipeline = stages["demo"].pipeline_id
    assert results({"kind": "pipeline", "op": "in", "ids": [pipeline]}, demo) == [True]


def test_owner_and_team(rep, outsider, team, stages):
    mine, theirs = (
        DealFactory(owner=rep, stage=stages["lead"]),
        DealFactory(owner=outsider, stage=stages["lead"]),
    )
    assert results({"kind": "owner", "op": "in", "ids": [rep.pk]}, mine, theirs) == [True, False]
    assert results({"kind": "team", "op": "in", "ids": [team.pk]}, mine, theirs) == [True, False]


def test_amount_with_currency(rep, stages):
    usd = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("5000"), currency="USD")
    eur = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("5000"), currency="EUR")
    small = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("10"), currency="USD")
    blank = DealFactory(owner=rep, stage=stages["lead"], amount=None)
    condition = {"kind": "amount", "op": "gte", "value": "1000", "currency": "USD"}
    assert results(condition, usd, eur, small, blank) == [True, False, False, False]
    assert results({"kind": "currency", "op": "in", "values": ["EUR"]}, usd, eur) == [False, True]


def test_organization_fields(rep, stages):
    big = DealFactory(
        owner=rep,
        stage=stages["lead"],
        organization=OrganizationFactory(sector="Retail", employees=500),
    )
    none = DealFactory(owner=rep, stage=stages["lead"], organization=None)
    assert results(
        {"kind": "organization", "field": "sector", "op": "eq", "value": "retail"}, big, none
    ) == [True, False]
    assert results(
        {"kind": "organization", "field": "employees", "op": "gt", "value": "100"}, big, none
    ) == [True, False]
    assert results({"kind": "organization", "field": "sector", "op": "empty"}, big, none) == [
        False,
        True,
    ]


def test_contact_with_role(rep, stages):
    from deals.models import DealContact

    with_role, without = (
        DealFactory(owner=rep, stage=stages["lead"]),
        DealFactory(owner=rep, stage=stages["lead"]),
    )
    DealContact.objects.create(deal=with_role, person=PersonFactory(), role="decision_maker")
    condition = {"kind": "contact_role", "op": "has", "role": "decision_maker"}
    assert results(condition, with_role, without) == [True, False]
    assert results({**condition, "op": "lacks"}, with_role, without) == [False, True]


def test_open_next_activity(rep, stages):
    busy, idle = (
        DealFactory(owner=rep, stage=stages["lead"]),
        DealFactory(owner=rep, stage=stages["lead"]),
    )
    ActivityFactory(deal=busy)
    ActivityFactory(deal=idle, done=True, done_at=timezone.now())
    assert results({"kind": "open_activity", "op": "has"}, busy, idle) == [True, False]
    assert results({"kind": "open_activity", "op": "lacks"}, busy, idle) == [False, True]


def test_days_in_stage(rep, stages):
    now = timezone.now()
    old = DealFactory(owner=rep, stage=stages["lead"], stage_entered_at=now - timedelta(days=10))
    new = DealFactory(owner=rep, stage=stages["lead"], stage_entered_at=now - timedelta(days=1))
    assert results({"kind": "days_in_stage", "op": "gte", "days": 5}, old, new) == [True, False]
    assert results({"kind": "days_in_stage", "op": "lte", "days": 5}, old, new) == [False, True]


def test_any_passes_when_one_does_and_all_needs_every_one():
    assert conditions.passes({"match": "any"}, [False, True])
    assert not conditions.passes({"match": "all"}, [False, True])
    assert conditions.passes({"match": "all"}, [])
