"""Every configuration change leaves one audit row: who, when, what; the audit page shows them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from stages import services
from stages.models import ConfigChange, StageKind
from stages.services import ConfigError, StageSettings
from tests.factories import CriterionFactory, DealFactory, PipelineFactory

pytestmark = pytest.mark.django_db


def settings_of(stage, **changes):
    fields = ("name", "kind", "probability", "forecast_category", "rotting_days", "guidance")
    return StageSettings(**{**{f: getattr(stage, f) for f in fields}, **changes})


def only_change():
    [change] = ConfigChange.objects.all()
    return change


def test_renaming_a_stage_records_who_and_the_names(admin_user, stages, pipeline):
    services.update_stage(
        stages["demo"], settings_of(stages["demo"], name="Product demo"), by=admin_user
    )
    change = only_change()
    assert change.summary == "renamed stage Demo → Product demo"
    assert change.by == admin_user
    assert (change.action, change.subject_type, change.subject_id) == (
        "updated",
        "stage",
        stages["demo"].pk,
    )
    assert change.pipeline == pipeline
    assert change.changes == {"name": ["Demo", "Product demo"]}


def test_changing_stage_settings_records_each_change(admin_user, stages):
    services.update_stage(
        stages["demo"],
        settings_of(stages["demo"], probability=45, rotting_days=14, guidance="Book it."),
        by=admin_user,
    )
    assert only_change().summary == (
        "changed stage Demo: probability 30% → 45%, rotting off → 14 days, guidance edited"
    )


def test_renaming_and_changing_a_stage_records_both_in_one_row(admin_user, stages):
    services.update_stage(
        stages["demo"],
        settings_of(stages["demo"], name="Product demo", probability=40),
        by=admin_user,
    )
    assert only_change().summary == "renamed stage Demo → Product demo; probability 30% → 40%"


def test_saving_a_stage_unchanged_records_nothing(admin_user, stages):
    services.update_stage(stages["demo"], settings_of(stages["demo"]), by=admin_user)
    assert not ConfigChange.objects.exists()


def test_a_refused_change_records_nothing(admin_user, stages):
    DealFactory(stage=stages["demo"])
    with pytest.raises(ConfigError):
        services.archive_stage(stages["demo"], by=admin_user)
    assert not ConfigChange.objects.exists()


def test_adding_a_criterion_records_its_requirement(admin_user, stages):
    services.add_criterion(
        stages["proposal"], kind="checklist", values={"label": "budget approved"}, by=admin_user
    )
    assert only_change().summary == "added criterion 'Confirm: budget approved' to Proposal"


def test_changing_a_criterion_records_before_and_after(admin_user, stages):
    criterion = CriterionFactory(
        stage=stages["proposal"], kind="amount_at_least", amount=Decimal("1000")
    )
    services.update_criterion(criterion, values={"amount": Decimal("5000")}, by=admin_user)
    change = only_change()
    assert change.summary == (
        "changed criterion on Proposal: "
        "'Amount must be at least 1,000' → 'Amount must be at least 5,000'"
    )
    assert change.changes == {"amount": ["1000.00", "5000.00"]}


def test_removing_a_criterion_records_what_it_required(admin_user, stages):
    criterion = CriterionFactory(
        stage=stages["proposal"], kind="contact_role", contact_role="champion"
    )
    services.remove_criterion(criterion, by=admin_user)
    change = only_change()
    assert (
        change.summary == "removed criterion 'Add a contact with the role champion' from Proposal"
    )
    assert change.subject_id == criterion.pk


def test_reordering_stages_records_the_new_order(admin_user, stages, pipeline):
    order = [stages[k].pk for k in ("qualified", "lead", "demo", "proposal", "won", "lost")]
    services.reorder_stages(pipeline, order, by=admin_user)
    assert only_change().summary == (
        "reordered stages of Sales: Qualified, Lead in, Demo, Proposal, Won, Lost"
    )


def test_reordering_into_the_same_order_records_nothing(admin_user, stages, pipeline):
    order = [stages[k].pk for k in ("lead", "qualified", "demo", "proposal", "won", "lost")]
    services.reorder_stages(pipeline, order, by=admin_user)
    assert not ConfigChange.objects.exists()


def test_deleting_a_stage_leaves_its_record(admin_user, stages, pipeline):
    stage_id = stages["demo"].pk
    services.delete_stage(stages["demo"], by=admin_user)
    change = only_change()
    assert change.summary == "deleted stage Demo from Sales"
    assert (change.action, change.subject_id, change.pipeline_id) == (
        "deleted",
        stage_id,
        pipeline.pk,
    )


def test_archiving_and_restoring_a_stage_records_both(admin_user, stages):
    services.archive_stage(stages["demo"], by=admin_user)
    services.restore_stage(stages["demo"], by=admin_user)
    assert list(ConfigChange.objects.values_list("summary", flat=True)) == [
        "restored stage Demo in Sales",
        "archived stage Demo in Sales",
    ]


def test_creating_a_pipeline_records_it_with_its_starter_stages(admin_user, db):
    services.create_pipeline(name="Enterprise", by=admin_user)
    assert only_change().summary == "created pipeline Enterprise with stages Lead in, Won, Lost"


def test_adding_a_stage_records_its_kind_and_pipeline(admin_user, pipeline):
    services.create_stage(pipeline, StageSettings(name="Won", kind=StageKind.WON), by=admin_user)
    assert only_change().summary == "added won stage Won to Sales"


# ---------------------------------------------------------------------- the audit page


def test_audit_page_lists_changes_newest_first_with_who(client, admin_user, stages):
    client.force_login(admin_user)
    services.archive_stage(stages["demo"], by=admin_user)
    services.restore_stage(stages["demo"], by=admin_user)
    html = client.get(reverse("stages:audit")).content.decode()
    assert html.index("restored stage Demo") < html.index("archived stage Demo")
    assert admin_user.display_name in html


def test_audit_page_filters_by_pipeline(client, admin_user, stages, pipeline):
    client.force_login(admin_user)
    other = PipelineFactory(name="Partners")
    services.rename_pipeline(other, name="Channel partners", by=admin_user)
    services.archive_stage(stages["demo"], by=admin_user)
    html = client.get(reverse("stages:audit"), {"pipeline": pipeline.pk}).content.decode()
    assert "archived stage Demo" in html
    assert "Channel partners" not in html.split("<tbody>")[1]


def test_audit_page_escapes_html_in_names(client, admin_user, stages):
    client.force_login(admin_user)
    services.update_stage(
        stages["demo"],
        settings_of(stages["demo"], name="<img src=x onerror=alert(1)>"),
        by=admin_user,
    )
    html = client.get(reverse("stages:audit")).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_audit_page_pages_through_long_histories(client, admin_user, stages, pipeline):
    client.force_login(admin_user)
    ConfigChange.objects.bulk_create(
        ConfigChange(
            by=admin_user,
            action="updated",
            subject_type="stage",
            subject_id=1,
            pipeline=pipeline,
            summary=f"change {n}",
        )
        for n in range(60)
    )
    html = client.get(reverse("stages:audit"), {"page": 2}).content.decode()
    assert "Page 2 of 2" in html
    assert html.count("<tr>") == 1 + 10  # the header row and the last ten changes
