"""The gate engine: every criterion kind passes and fails with the message a rep reads."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deals.models import ChecklistTick, DealContact, StageChange
from stages.gate import evaluate, evaluate_many
from stages.models import ActivityType, ContactRole, CriterionKind, StageKind
from tests.factories import (
    ActivityFactory,
    CriterionFactory,
    DealFactory,
    OrganizationFactory,
    PersonFactory,
    PipelineFactory,
    StageFactory,
)

pytestmark = pytest.mark.django_db


def summary(failures):
    """What the rep sees and what would fix it, in evaluation order."""
    return [(f.kind, f.message, f.fix) for f in failures]


def history(deal, *entries):
    """Replace the deal's history with (stage, days ago) entries, oldest first."""
    StageChange.objects.filter(deal=deal).delete()
    now = timezone.now()
    for seq, (stage, days_ago) in enumerate(entries, start=1):
        StageChange.objects.create(
            deal=deal,
            seq=seq,
            to_stage=stage,
            pipeline=stage.pipeline,
            at=now - timedelta(days=days_ago),
            by=deal.owner,
            source="board",
        )


@pytest.fixture
def deal(rep, stages):
    """A bare deal in Lead in: no amount, no contacts, no next step."""
    return DealFactory(owner=rep, stage=stages["lead"], amount=None)


# field_required


FIELD_CASES = [
    ("amount", {"amount": Decimal("1.00")}, "Add an amount"),
    (
        "expected_close_date",
        {"expected_close_date": date(2030, 1, 31)},
        "Add an expected close date",
    ),
    ("person", None, "Add a primary contact"),
    ("organization", None, "Add an organization"),
    ("next_step", {"next_step": "Send the proposal"}, "Write the next step"),
]


def fill(deal, field_name, values):
    if field_name == "person":
        deal.person = PersonFactory()
    elif field_name == "organization":
        deal.organization = OrganizationFactory()
    else:
        for name, value in values.items():
            setattr(deal, name, value)
    deal.save()


@pytest.mark.parametrize(("field_name", "values", "message"), FIELD_CASES)
def test_field_required_fails_with_its_message_when_field_is_empty(
    deal, stages, field_name, values, message
):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name=field_name
    )

    assert summary(evaluate(deal, stages["qualified"])) == [
        ("field_required", message, field_name)
    ]


@pytest.mark.parametrize(("field_name", "values", "message"), FIELD_CASES)
def test_field_required_passes_when_field_is_filled(deal, stages, field_name, values, message):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name=field_name
    )
    fill(deal, field_name, values)

    assert evaluate(deal, stages["qualified"]) == []


def test_field_required_treats_blank_next_step_as_empty(deal, stages):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )
    deal.next_step = ""
    deal.save()

    assert len(evaluate(deal, stages["qualified"])) == 1


# amount_at_least


@pytest.fixture
def amount_gate(stages):
    return CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.AMOUNT_AT_LEAST, amount=Decimal("5000")
    )


def test_amount_at_least_fails_below_the_threshold(deal, stages, amount_gate):
    deal.amount = Decimal("4999.99")

    assert summary(evaluate(deal, stages["qualified"])) == [
        ("amount_at_least", "Amount must be at least 5,000", "amount")
    ]


def test_amount_at_least_passes_at_exactly_the_threshold(deal, stages, amount_gate):
    deal.amount = Decimal("5000.00")

    assert evaluate(deal, stages["qualified"]) == []


def test_amount_at_least_passes_above_the_threshold(deal, stages, amount_gate):
    deal.amount = Decimal("5000.01")

    assert evaluate(deal, stages["qualified"]) == []


def test_amount_at_least_fails_without_an_amount(deal, stages, amount_gate):
    assert summary(evaluate(deal, stages["qualified"])) == [
        ("amount_at_least", "Amount must be at least 5,000", "amount")
    ]


# activity_done


@pytest.fixture
def demo_gate(stages):
    return CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.ACTIVITY_DONE,
        activity_type=ActivityType.DEMO,
    )


def test_activity_done_fails_without_any_activity(deal, stages, demo_gate):
    assert summary(evaluate(deal, stages["qualified"])) == [
        ("activity_done", "Log a completed demo", "demo")
    ]


def test_activity_done_ignores_an_open_activity_of_the_type(deal, stages, demo_gate):
    ActivityFactory(deal=deal, type=ActivityType.DEMO, done=False)

    assert summary(evaluate(deal, stages["qualified"])) == [
        ("activity_done", "Log a completed demo", "demo")
    ]


def test_activity_done_ignores_a_done_activity_of_another_type(deal, stages, demo_gate):
    ActivityFactory(deal=deal, type=ActivityType.CALL, done=True, done_at=timezone.now())

    assert len(evaluate(deal, stages["qualified"])) == 1


def test_activity_done_ignores_a_done_activity_on_another_deal(deal, stages, demo_gate, rep):
    other = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=other, type=ActivityType.DEMO, done=True, done_at=timezone.now())

    assert len(evaluate(deal, stages["qualified"])) == 1


def test_activity_done_passes_with_a_done_activity_of_the_type(deal, stages, demo_gate):
    ActivityFactory(deal=deal, type=ActivityType.DEMO, done=True, done_at=timezone.now())

    assert evaluate(deal, stages["qualified"]) == []


# contact_role


@pytest.fixture
def decision_maker_gate(stages):
    return CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.CONTACT_ROLE,
        contact_role=ContactRole.DECISION_MAKER,
    )


def test_contact_role_fails_without_a_contact_in_the_role(deal, stages, decision_maker_gate):
    DealContact.objects.create(deal=deal, person=PersonFactory(), role=ContactRole.CHAMPION)

    assert summary(evaluate(deal, stages["qualified"])) == [
        ("contact_role", "Add a contact with the role decision maker", "decision_maker")
    ]


def test_contact_role_passes_with_a_contact_in_the_role(deal, stages, decision_maker_gate):
    DealContact.objects.create(deal=deal, person=PersonFactory(), role=ContactRole.DECISION_MAKER)

    assert evaluate(deal, stages["qualified"]) == []


# checklist


@pytest.fixture
def budget_gate(stages):
    return CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget confirmed"
    )


def test_checklist_fails_when_unticked(deal, stages, budget_gate):
    assert summary(evaluate(deal, stages["qualified"])) == [
        ("checklist", "Confirm: Budget confirmed", str(budget_gate.pk))
    ]


def test_checklist_ignores_a_tick_on_another_deal(deal, stages, budget_gate, rep):
    other = DealFactory(owner=rep, stage=stages["lead"])
    ChecklistTick.objects.create(deal=other, criterion=budget_gate, by=rep)

    assert len(evaluate(deal, stages["qualified"])) == 1


def test_checklist_passes_when_ticked_for_this_deal(deal, stages, budget_gate, rep):
    ChecklistTick.objects.create(deal=deal, criterion=budget_gate, by=rep)

    assert evaluate(deal, stages["qualified"]) == []


# no_skip


@pytest.fixture
def no_skip_into_demo(stages):
    return CriterionFactory(stage=stages["demo"], kind=CriterionKind.NO_SKIP)


def test_no_skip_fails_when_jumping_over_the_previous_stage(deal, stages, no_skip_into_demo):
    assert summary(evaluate(deal, stages["demo"])) == [
        ("no_skip", "Pass through Qualified first (stages cannot be skipped)", "")
    ]


def test_no_skip_passes_from_the_previous_stage(rep, stages, no_skip_into_demo):
    deal = DealFactory(owner=rep, stage=stages["qualified"])

    assert evaluate(deal, stages["demo"]) == []


def test_no_skip_passes_when_history_shows_the_previous_stage(deal, stages, no_skip_into_demo):
    history(deal, (stages["qualified"], 5), (stages["lead"], 2))

    assert evaluate(deal, stages["demo"]) == []


def test_no_skip_passes_into_the_first_stage(rep, stages):
    CriterionFactory(stage=stages["lead"], kind=CriterionKind.NO_SKIP)
    deal = DealFactory(owner=rep, stage=stages["proposal"])

    assert evaluate(deal, stages["lead"]) == []


def test_no_skip_ignores_an_archived_stage_in_between(deal, stages, no_skip_into_demo):
    stages["qualified"].is_archived = True
    stages["qualified"].save()

    assert evaluate(deal, stages["demo"]) == []


def test_no_skip_ignores_closed_stages_when_finding_the_previous_one(rep):
    pipeline = PipelineFactory()
    first = StageFactory(pipeline=pipeline, name="First", position=0)
    StageFactory(pipeline=pipeline, name="Parked", position=1, kind=StageKind.LOST)
    second = StageFactory(pipeline=pipeline, name="Second", position=2)
    CriterionFactory(stage=second, kind=CriterionKind.NO_SKIP)
    deal = DealFactory(owner=rep, stage=first)

    assert evaluate(deal, second) == []


def test_no_skip_orders_stages_by_position_not_by_id(rep):
    pipeline = PipelineFactory()
    later = StageFactory(pipeline=pipeline, name="Later", position=5)
    target = StageFactory(pipeline=pipeline, name="Target", position=9)
    earlier = StageFactory(pipeline=pipeline, name="Earlier", position=1)
    CriterionFactory(stage=target, kind=CriterionKind.NO_SKIP)
    deal = DealFactory(owner=rep, stage=earlier)

    assert summary(evaluate(deal, target)) == [
        ("no_skip", "Pass through Later first (stages cannot be skipped)", "")
    ]
    assert later.pk < target.pk < earlier.pk


def test_no_skip_looks_only_at_the_target_pipeline(rep, stages):
    other = PipelineFactory(name="Renewals")
    first = StageFactory(pipeline=other, name="Renewal due", position=0)
    second = StageFactory(pipeline=other, name="Renewal quoted", position=1)
    CriterionFactory(stage=second, kind=CriterionKind.NO_SKIP)
    deal = DealFactory(owner=rep, stage=stages["lead"])

    assert summary(evaluate(deal, second)) == [
        ("no_skip", "Pass through Renewal due first (stages cannot be skipped)", "")
    ]
    assert first.position < second.position


# min_days_in_previous


def min_days_into_demo(stages, days):
    return CriterionFactory(
        stage=stages["demo"], kind=CriterionKind.MIN_DAYS_IN_PREVIOUS, days=days
    )


def test_min_days_passes_when_the_current_stay_is_long_enough(rep, stages):
    min_days_into_demo(stages, 3)
    deal = DealFactory(
        owner=rep,
        stage=stages["qualified"],
        stage_entered_at=timezone.now() - timedelta(days=3, minutes=1),
    )

    assert evaluate(deal, stages["demo"]) == []


def test_min_days_fails_when_the_current_stay_is_too_short(rep, stages):
    min_days_into_demo(stages, 3)
    deal = DealFactory(
        owner=rep, stage=stages["qualified"], stage_entered_at=timezone.now() - timedelta(days=2)
    )

    assert summary(evaluate(deal, stages["demo"])) == [
        ("min_days_in_previous", "Spend at least 3 days in Qualified first", "")
    ]


def test_min_days_sums_earlier_stays_from_history(deal, stages):
    # Qualified for 2 days (10→8 days ago), then again for 3 days (6→3 days ago): 5 in all.
    history(
        deal,
        (stages["qualified"], 10),
        (stages["lead"], 8),
        (stages["qualified"], 6),
        (stages["lead"], 3),
    )
    min_days_into_demo(stages, 5)

    assert evaluate(deal, stages["demo"]) == []


def test_min_days_does_not_count_time_spent_in_other_stages(deal, stages):
    history(
        deal,
        (stages["qualified"], 10),
        (stages["lead"], 8),
        (stages["qualified"], 6),
        (stages["lead"], 3),
    )
    min_days_into_demo(stages, 6)

    assert summary(evaluate(deal, stages["demo"])) == [
        ("min_days_in_previous", "Spend at least 6 days in Qualified first", "")
    ]


def test_min_days_adds_the_current_stay_to_earlier_ones(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["qualified"], history=False)
    # Qualified 9→7 days ago (2 days), back in Qualified for the last 2 days: 4 in all.
    history(deal, (stages["qualified"], 9), (stages["lead"], 7), (stages["qualified"], 2))
    min_days_into_demo(stages, 4)
    assert evaluate(deal, stages["demo"]) == []

    min_days_into_demo(stages, 5)
    assert [f.message for f in evaluate(deal, stages["demo"])] == [
        "Spend at least 5 days in Qualified first"
    ]


def test_min_days_fails_for_a_deal_never_in_the_previous_stage(deal, stages):
    min_days_into_demo(stages, 1)

    assert len(evaluate(deal, stages["demo"])) == 1


# built-in closing rules


def test_won_needs_an_amount(deal, stages):
    assert summary(evaluate(deal, stages["won"])) == [
        ("won_amount", "Add an amount to mark the deal won", "amount")
    ]


def test_won_passes_with_an_amount(deal, stages):
    deal.amount = Decimal("10.00")

    assert evaluate(deal, stages["won"]) == []


def test_lost_needs_a_lost_reason(deal, stages):
    deal.lost_reason = "   "

    assert summary(evaluate(deal, stages["lost"])) == [
        ("lost_reason", "Give a lost reason", "lost_reason")
    ]


def test_lost_passes_with_a_lost_reason(deal, stages):
    deal.lost_reason = "Went with a competitor"

    assert evaluate(deal, stages["lost"]) == []


def test_built_in_rule_comes_before_criteria_which_follow_their_position(deal, stages):
    CriterionFactory(stage=stages["won"], kind=CriterionKind.CHECKLIST, label="Signed", position=2)
    CriterionFactory(
        stage=stages["won"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step", position=1
    )

    assert [f.kind for f in evaluate(deal, stages["won"])] == [
        "won_amount",
        "field_required",
        "checklist",
    ]


def test_failures_carry_their_criterion(deal, stages, budget_gate):
    (failure,) = evaluate(deal, stages["qualified"])

    assert failure.criterion == budget_gate
    assert failure.criterion_id == budget_gate.pk


def test_criteria_of_other_stages_do_not_apply(deal, stages, budget_gate):
    assert evaluate(deal, stages["proposal"]) == []


def test_unsaved_deal_is_judged_without_related_rows(rep, stages, demo_gate):
    from deals.models import Deal

    draft = Deal(
        title="Draft", owner=rep, stage=stages["qualified"], pipeline=stages["lead"].pipeline
    )

    assert [f.kind for f in evaluate(draft, stages["qualified"])] == ["activity_done"]


# evaluate_many


def test_evaluate_many_marks_each_stage_it_is_given(deal, stages):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )
    CriterionFactory(stage=stages["demo"], kind=CriterionKind.NO_SKIP)

    result = evaluate_many(deal, stages.values())

    assert {stage: [f.kind for f in result[stages[stage].pk]] for stage in stages} == {
        "lead": [],
        "qualified": ["field_required"],
        "demo": ["no_skip"],
        "proposal": [],
        "won": ["won_amount"],
        "lost": ["lost_reason"],
    }


def test_evaluate_many_of_no_stages_is_empty(deal):
    assert evaluate_many(deal, []) == {}


# query counts


def one_of_each_kind(stage, label):
    """Seven criteria on `stage`, one per kind."""
    CriterionFactory(stage=stage, kind=CriterionKind.FIELD_REQUIRED, field_name="amount")
    CriterionFactory(stage=stage, kind=CriterionKind.AMOUNT_AT_LEAST, amount=Decimal("10"))
    CriterionFactory(stage=stage, kind=CriterionKind.ACTIVITY_DONE, activity_type="demo")
    CriterionFactory(stage=stage, kind=CriterionKind.CONTACT_ROLE, contact_role="champion")
    CriterionFactory(stage=stage, kind=CriterionKind.CHECKLIST, label=label)
    CriterionFactory(stage=stage, kind=CriterionKind.NO_SKIP)
    CriterionFactory(stage=stage, kind=CriterionKind.MIN_DAYS_IN_PREVIOUS, days=2)


def count_queries(func):
    with CaptureQueriesContext(connection) as captured:
        func()
    return len(captured)


def test_evaluate_reads_one_query_per_kind_of_fact(deal, stages):
    one_of_each_kind(stages["demo"], "Budget")

    # criteria, sibling stages, done activities, contact roles, ticks, history
    assert count_queries(lambda: evaluate(deal, stages["demo"])) == 6


def test_evaluate_costs_the_same_with_many_more_criteria(deal, stages):
    one_of_each_kind(stages["demo"], "Budget")
    few = count_queries(lambda: evaluate(deal, stages["demo"]))
    for n in range(2):
        one_of_each_kind(stages["demo"], f"Budget {n}")

    many = count_queries(lambda: evaluate(deal, stages["demo"]))

    assert len(evaluate(deal, stages["demo"])) == 21
    assert many == few


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": CriterionKind.FIELD_REQUIRED, "field_name": "amount"},
        {"kind": CriterionKind.AMOUNT_AT_LEAST, "amount": Decimal("10")},
        {"kind": CriterionKind.ACTIVITY_DONE, "activity_type": "demo"},
        {"kind": CriterionKind.CONTACT_ROLE, "contact_role": "champion"},
        {"kind": CriterionKind.CHECKLIST, "label": "Budget"},
        {"kind": CriterionKind.NO_SKIP},
        {"kind": CriterionKind.MIN_DAYS_IN_PREVIOUS, "days": 2},
    ],
    ids=lambda fields: fields["kind"],
)
def test_evaluate_costs_the_same_with_one_or_many_criteria_of_a_kind(deal, stages, fields):
    CriterionFactory(stage=stages["demo"], **fields)
    one = count_queries(lambda: evaluate(deal, stages["demo"]))
    for _ in range(13):
        CriterionFactory(stage=stages["demo"], **fields)

    fourteen = count_queries(lambda: evaluate(deal, stages["demo"]))

    assert fourteen == one


def test_evaluate_many_costs_the_same_for_one_or_all_stages(deal, stages):
    for name in ("qualified", "demo", "proposal", "won"):
        one_of_each_kind(stages[name], f"Budget {name}")
    one = count_queries(lambda: evaluate_many(deal, [stages["demo"]]))

    every = count_queries(lambda: evaluate_many(deal, stages.values()))

    assert every == one
