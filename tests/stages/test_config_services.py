"""Configuration services: every rule for pipelines, stages and entry criteria."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import IntegrityError

from deals.models import Deal
from stages import queries, services
from stages.models import (
    ConfigChange,
    CriterionKind,
    EntryCriterion,
    Pipeline,
    Stage,
    StageKind,
)
from stages.queries import Usage
from stages.services import ConfigError, StageSettings, StaleOrder
from tests.factories import CriterionFactory, DealFactory, PipelineFactory, StageFactory

pytestmark = pytest.mark.django_db


def stage_names(pipeline):
    return list(
        Stage.objects.filter(pipeline=pipeline)
        .order_by("position", "id")
        .values_list("name", flat=True)
    )


def settings_of(stage, **changes):
    fields = ("name", "kind", "probability", "forecast_category", "rotting_days", "guidance")
    return StageSettings(**{**{f: getattr(stage, f) for f in fields}, **changes})


# -------------------------------------------------------------------------- pipelines


def test_create_pipeline_adds_it_last_with_lead_in_won_and_lost(admin_user, pipeline):
    created = services.create_pipeline(name="  Enterprise  ", by=admin_user)
    assert created.name == "Enterprise"
    assert list(Pipeline.objects.values_list("name", flat=True)) == ["Sales", "Enterprise"]
    kinds = list(created.stages.order_by("position").values_list("name", "kind"))
    assert kinds == [("Lead in", "open"), ("Won", "won"), ("Lost", "lost")]


def test_create_pipeline_refuses_a_name_in_use_whatever_its_case(admin_user, pipeline):
    with pytest.raises(ConfigError, match="already a pipeline named sales"):
        services.create_pipeline(name="sales", by=admin_user)


def test_create_pipeline_refuses_a_blank_name(admin_user, db):
    with pytest.raises(ConfigError, match="Give the pipeline a name"):
        services.create_pipeline(name="   ", by=admin_user)


def test_rename_pipeline_changes_its_name(admin_user, pipeline):
    services.rename_pipeline(pipeline, name="Direct sales", by=admin_user)
    pipeline.refresh_from_db()
    assert pipeline.name == "Direct sales"


def test_rename_pipeline_refuses_another_pipelines_name(admin_user, pipeline):
    PipelineFactory(name="Partners")
    with pytest.raises(ConfigError, match="already a pipeline named Partners"):
        services.rename_pipeline(pipeline, name="Partners", by=admin_user)


def test_move_pipeline_up_puts_it_before_its_neighbour(admin_user, pipeline):
    second = PipelineFactory(name="Partners", position=5)
    services.move_pipeline(second, offset=-1, by=admin_user)
    assert list(Pipeline.objects.values_list("name", flat=True)) == ["Partners", "Sales"]


def test_move_pipeline_refuses_to_move_the_first_one_up(admin_user, pipeline):
    PipelineFactory(name="Partners", position=5)
    with pytest.raises(ConfigError, match="Sales is already first"):
        services.move_pipeline(pipeline, offset=-1, by=admin_user)


def test_reorder_pipelines_follows_the_given_order(admin_user, pipeline):
    b = PipelineFactory(name="B", position=1)
    c = PipelineFactory(name="C", position=2)
    services.reorder_pipelines([c.pk, pipeline.pk, b.pk], by=admin_user)
    assert list(Pipeline.objects.values_list("name", "position")) == [
        ("C", 0),
        ("Sales", 1),
        ("B", 2),
    ]


def test_reorder_pipelines_refuses_a_list_missing_a_pipeline(admin_user, pipeline):
    b = PipelineFactory(name="B", position=1)
    PipelineFactory(name="C", position=2)
    with pytest.raises(StaleOrder) as refused:
        services.reorder_pipelines([b.pk, pipeline.pk], by=admin_user)
    assert refused.value.status == 409


def test_archive_pipeline_is_refused_while_it_holds_open_deals(admin_user, stages, pipeline):
    PipelineFactory(name="Partners")
    DealFactory(stage=stages["demo"])
    with pytest.raises(ConfigError, match="still has 1 open deal;"):
        services.archive_pipeline(pipeline, by=admin_user)


def test_archive_pipeline_is_allowed_when_its_deals_are_closed(admin_user, stages, pipeline):
    PipelineFactory(name="Partners")
    DealFactory(stage=stages["won"])
    services.archive_pipeline(pipeline, by=admin_user)
    pipeline.refresh_from_db()
    assert pipeline.is_archived


def test_archive_pipeline_is_refused_for_the_last_active_pipeline(admin_user, pipeline):
    PipelineFactory(name="Old", is_archived=True)
    with pytest.raises(ConfigError, match="only active pipeline"):
        services.archive_pipeline(pipeline, by=admin_user)


def test_restore_pipeline_brings_it_back(admin_user, db):
    old = PipelineFactory(name="Old", is_archived=True)
    services.restore_pipeline(old, by=admin_user)
    old.refresh_from_db()
    assert not old.is_archived


# ----------------------------------------------------------------------------- stages


def test_create_open_stage_goes_after_the_last_open_stage(admin_user, stages, pipeline):
    services.create_stage(pipeline, StageSettings(name="Negotiation"), by=admin_user)
    assert stage_names(pipeline) == [
        "Lead in",
        "Qualified",
        "Demo",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
    ]


def test_create_closing_stage_goes_last(admin_user, stages, pipeline):
    services.create_stage(
        pipeline, StageSettings(name="Lost to competitor", kind=StageKind.LOST), by=admin_user
    )
    assert stage_names(pipeline)[-1] == "Lost to competitor"


def test_create_stage_keeps_every_setting(admin_user, pipeline):
    stage = services.create_stage(
        pipeline,
        StageSettings(
            name="Demo",
            probability=35,
            forecast_category="best_case",
            rotting_days=14,
            guidance="Book the demo.\nInvite the decision maker.",
        ),
        by=admin_user,
    )
    stage.refresh_from_db()
    assert (stage.probability, stage.forecast_category, stage.rotting_days) == (
        35,
        "best_case",
        14,
    )
    assert stage.guidance == "Book the demo.\nInvite the decision maker."


def test_create_stage_refuses_a_name_already_in_the_pipeline(admin_user, stages, pipeline):
    with pytest.raises(ConfigError, match="Sales already has a stage named DEMO"):
        services.create_stage(pipeline, StageSettings(name="DEMO"), by=admin_user)


def test_create_stage_allows_a_name_used_in_another_pipeline(admin_user, stages):
    other = PipelineFactory(name="Partners")
    stage = services.create_stage(other, StageSettings(name="Demo"), by=admin_user)
    assert stage.pipeline == other


def test_create_stage_refuses_a_probability_over_100(admin_user, pipeline):
    with pytest.raises(ConfigError, match="between 0 and 100"):
        services.create_stage(pipeline, StageSettings(name="X", probability=101), by=admin_user)


def test_update_stage_renames_it(admin_user, stages):
    services.update_stage(
        stages["demo"], settings_of(stages["demo"], name="Product demo"), by=admin_user
    )
    stages["demo"].refresh_from_db()
    assert stages["demo"].name == "Product demo"


def test_update_stage_refuses_a_siblings_name(admin_user, stages):
    with pytest.raises(ConfigError, match="already has a stage named Proposal"):
        services.update_stage(
            stages["demo"], settings_of(stages["demo"], name="Proposal"), by=admin_user
        )


def test_update_stage_refuses_a_negative_probability(admin_user, stages):
    with pytest.raises(ConfigError, match="between 0 and 100"):
        services.update_stage(
            stages["demo"], settings_of(stages["demo"], probability=-1), by=admin_user
        )


def test_update_stage_refuses_to_change_the_kind_of_a_stage_holding_deals(admin_user, stages):
    DealFactory(stage=stages["demo"])
    with pytest.raises(ConfigError, match="holds 1 deal, so its kind cannot change"):
        services.update_stage(
            stages["demo"], settings_of(stages["demo"], kind="won"), by=admin_user
        )


def test_update_stage_changes_the_kind_of_an_empty_stage(admin_user, stages):
    services.update_stage(stages["demo"], settings_of(stages["demo"], kind="won"), by=admin_user)
    stages["demo"].refresh_from_db()
    assert stages["demo"].kind == "won"


def test_update_stage_refuses_to_turn_the_only_won_stage_into_an_open_one(admin_user, stages):
    with pytest.raises(ConfigError, match="needs at least one active won stage"):
        services.update_stage(
            stages["won"], settings_of(stages["won"], kind="open"), by=admin_user
        )


def test_move_stage_down_swaps_it_with_the_next(admin_user, stages, pipeline):
    services.move_stage(stages["qualified"], offset=1, by=admin_user)
    assert stage_names(pipeline)[:3] == ["Lead in", "Demo", "Qualified"]


def test_move_stage_refuses_to_move_the_last_one_down(admin_user, stages):
    with pytest.raises(ConfigError, match="Lost is already last"):
        services.move_stage(stages["lost"], offset=1, by=admin_user)


def test_reorder_stages_numbers_them_in_the_given_order(admin_user, stages, pipeline):
    order = [stages[k].pk for k in ("demo", "lead", "qualified", "proposal", "won", "lost")]
    services.reorder_stages(pipeline, order, by=admin_user)
    positions = Stage.objects.filter(pipeline=pipeline).order_by("position")
    assert list(positions.values_list("pk", flat=True)) == order
    assert list(positions.values_list("position", flat=True)) == [0, 1, 2, 3, 4, 5]


def test_reorder_stages_refuses_a_stage_of_another_pipeline(admin_user, stages, pipeline):
    stranger = StageFactory(pipeline=PipelineFactory())
    order = [*(s.pk for s in stages.values() if s.name != "Lost"), stranger.pk]
    with pytest.raises(StaleOrder):
        services.reorder_stages(pipeline, order, by=admin_user)


def test_archive_stage_is_refused_while_deals_sit_in_it(admin_user, stages):
    DealFactory(stage=stages["demo"])
    DealFactory(stage=stages["demo"])
    with pytest.raises(ConfigError, match="still holds 2 deals"):
        services.archive_stage(stages["demo"], by=admin_user)


def test_archive_stage_retires_an_empty_stage(admin_user, stages):
    services.archive_stage(stages["demo"], by=admin_user)
    stages["demo"].refresh_from_db()
    assert stages["demo"].is_archived


def test_archive_stage_is_refused_for_the_last_active_open_stage(admin_user, db):
    only = StageFactory(name="Only", kind=StageKind.OPEN)
    with pytest.raises(ConfigError, match="needs at least one active open stage"):
        services.archive_stage(only, by=admin_user)


def test_archive_stage_keeps_closed_deals_in_a_won_stage(admin_user, stages, pipeline):
    StageFactory(pipeline=pipeline, name="Won (renewal)", kind=StageKind.WON)
    deal = DealFactory(stage=stages["won"])
    services.archive_stage(stages["won"], by=admin_user)
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["won"].pk


def test_restore_stage_brings_it_back(admin_user, stages):
    Stage.objects.filter(pk=stages["demo"].pk).update(is_archived=True)
    services.restore_stage(stages["demo"], by=admin_user)
    stages["demo"].refresh_from_db()
    assert not stages["demo"].is_archived


def test_delete_stage_removes_an_unused_stage_and_its_criteria(admin_user, stages):
    criterion = CriterionFactory(stage=stages["demo"], kind="checklist", label="Demo booked")
    services.delete_stage(stages["demo"], by=admin_user)
    assert not Stage.objects.filter(pk=stages["demo"].pk).exists()
    assert not EntryCriterion.objects.filter(pk=criterion.pk).exists()


def test_delete_stage_is_refused_while_deals_sit_in_it(admin_user, stages):
    DealFactory(stage=stages["demo"])
    with pytest.raises(ConfigError, match="cannot be deleted; archive it instead"):
        services.delete_stage(stages["demo"], by=admin_user)


def test_delete_stage_is_refused_when_history_names_it(admin_user, stages):
    deal = DealFactory(stage=stages["demo"])  # its first history row enters Demo
    Deal.objects.filter(pk=deal.pk).update(stage=stages["proposal"])
    with pytest.raises(ConfigError, match="cannot be deleted; archive it instead"):
        services.delete_stage(stages["demo"], by=admin_user)
    assert Stage.objects.filter(pk=stages["demo"].pk).exists()


def test_delete_stage_turns_the_databases_protection_into_the_same_message(
    admin_user, stages, monkeypatch
):
    # A deal that arrives between the check and the delete: the check sees nothing.
    DealFactory(stage=stages["demo"])
    monkeypatch.setattr(queries, "stage_usage", lambda stage: Usage(0, False))
    with pytest.raises(ConfigError, match="cannot be deleted; archive it instead"):
        services.delete_stage(stages["demo"], by=admin_user)
    assert Stage.objects.filter(pk=stages["demo"].pk).exists()
    assert not ConfigChange.objects.exists()


def test_delete_stage_is_refused_for_the_last_lost_stage(admin_user, stages):
    with pytest.raises(ConfigError, match="needs at least one active lost stage"):
        services.delete_stage(stages["lost"], by=admin_user)


# --------------------------------------------------------------------------- criteria

VALID = {
    CriterionKind.FIELD_REQUIRED: (
        {"field_name": "expected_close_date"},
        "Add an expected close date",
    ),
    CriterionKind.AMOUNT_AT_LEAST: (
        {"amount": Decimal("5000")},
        "Amount must be at least 5,000",
    ),
    CriterionKind.ACTIVITY_DONE: ({"activity_type": "demo"}, "Log a completed demo"),
    CriterionKind.CONTACT_ROLE: (
        {"contact_role": "decision_maker"},
        "Add a contact with the role decision maker",
    ),
    CriterionKind.CHECKLIST: ({"label": "Budget approved"}, "Confirm: Budget approved"),
    CriterionKind.NO_SKIP: ({}, "Pass through the previous stage first (no skipping)"),
    CriterionKind.MIN_DAYS_IN_PREVIOUS: (
        {"days": 3},
        "Spend at least 3 days in the previous stage",
    ),
}


@pytest.mark.parametrize("kind", list(VALID))
def test_add_criterion_stores_each_kind_with_its_requirement(admin_user, stages, kind):
    values, requirement = VALID[kind]
    criterion = services.add_criterion(stages["proposal"], kind=kind, values=values, by=admin_user)
    criterion.refresh_from_db()
    assert criterion.requirement == requirement


def test_add_criterion_keeps_only_its_own_kinds_fields(admin_user, stages):
    criterion = services.add_criterion(
        stages["proposal"],
        kind=CriterionKind.CHECKLIST,
        values={
            "label": "Budget approved",
            "amount": Decimal("10"),
            "days": 4,
            "field_name": "amount",
        },
        by=admin_user,
    )
    criterion.refresh_from_db()
    assert (criterion.amount, criterion.days, criterion.field_name) == (None, None, "")


INVALID = [
    (CriterionKind.FIELD_REQUIRED, {"field_name": "password"}, "Choose which deal field"),
    (CriterionKind.AMOUNT_AT_LEAST, {}, "Enter the minimum amount"),
    (CriterionKind.AMOUNT_AT_LEAST, {"amount": Decimal("-1")}, "must be 0 or more"),
    (CriterionKind.ACTIVITY_DONE, {"activity_type": ""}, "Choose which type of activity"),
    (CriterionKind.ACTIVITY_DONE, {"activity_type": "note"}, "Choose which type of activity"),
    (CriterionKind.CONTACT_ROLE, {"contact_role": "mascot"}, "Choose which contact role"),
    (CriterionKind.CHECKLIST, {"label": "   "}, "Write the confirmation"),
    (CriterionKind.MIN_DAYS_IN_PREVIOUS, {"days": 0}, "from 1 to 3650"),
    ("bribe_paid", {}, "Choose what kind of criterion"),
]


@pytest.mark.parametrize(("kind", "values", "message"), INVALID)
def test_add_criterion_refuses_incomplete_parameters(admin_user, stages, kind, values, message):
    with pytest.raises(ConfigError, match=message):
        services.add_criterion(stages["proposal"], kind=kind, values=values, by=admin_user)
    assert not EntryCriterion.objects.exists()


def test_add_criterion_goes_to_the_end_of_the_list(admin_user, stages):
    first = CriterionFactory(stage=stages["proposal"], kind="no_skip", position=7)
    added = services.add_criterion(
        stages["proposal"], kind="checklist", values={"label": "Budget approved"}, by=admin_user
    )
    assert list(stages["proposal"].criteria.values_list("pk", flat=True)) == [first.pk, added.pk]


def test_add_criterion_refuses_the_same_checklist_item_twice(admin_user, stages):
    CriterionFactory(stage=stages["proposal"], kind="checklist", label="Budget approved")
    with pytest.raises(ConfigError, match="already requires “Confirm: Budget approved”"):
        services.add_criterion(
            stages["proposal"],
            kind="checklist",
            values={"label": "budget APPROVED"},
            by=admin_user,
        )


def test_add_criterion_refuses_a_second_amount_threshold(admin_user, stages):
    CriterionFactory(stage=stages["proposal"], kind="amount_at_least", amount=Decimal("100"))
    with pytest.raises(
        ConfigError, match=re.escape("already requires “Amount must be at least 100”")
    ):
        services.add_criterion(
            stages["proposal"], kind="amount_at_least", values={"amount": 900}, by=admin_user
        )


def test_add_criterion_allows_two_different_required_fields(admin_user, stages):
    CriterionFactory(stage=stages["proposal"], kind="field_required", field_name="amount")
    services.add_criterion(
        stages["proposal"], kind="field_required", values={"field_name": "person"}, by=admin_user
    )
    assert stages["proposal"].criteria.count() == 2


def test_update_criterion_changes_its_parameters(admin_user, stages):
    criterion = CriterionFactory(
        stage=stages["proposal"], kind="amount_at_least", amount=Decimal("100")
    )
    services.update_criterion(criterion, values={"amount": Decimal("250.5")}, by=admin_user)
    criterion.refresh_from_db()
    assert criterion.amount == Decimal("250.50")


def test_update_criterion_refuses_invalid_parameters(admin_user, stages):
    criterion = CriterionFactory(stage=stages["proposal"], kind="min_days_in_previous", days=2)
    with pytest.raises(ConfigError, match="from 1 to 3650"):
        services.update_criterion(criterion, values={"days": 0}, by=admin_user)
    criterion.refresh_from_db()
    assert criterion.days == 2


def test_move_criterion_up_puts_it_first(admin_user, stages):
    a = CriterionFactory(stage=stages["proposal"], kind="no_skip", position=0)
    b = CriterionFactory(stage=stages["proposal"], kind="checklist", label="Budget", position=1)
    services.move_criterion(b, offset=-1, by=admin_user)
    assert list(stages["proposal"].criteria.values_list("pk", flat=True)) == [b.pk, a.pk]


def test_remove_criterion_deletes_it(admin_user, stages):
    criterion = CriterionFactory(stage=stages["proposal"], kind="no_skip")
    services.remove_criterion(criterion, by=admin_user)
    assert not EntryCriterion.objects.filter(pk=criterion.pk).exists()


def test_database_refuses_a_checklist_criterion_without_a_label(stages):
    # The services check first; the CheckConstraint is the last line of defence.
    with pytest.raises(IntegrityError):
        EntryCriterion.objects.create(stage=stages["proposal"], kind="checklist", label="")
