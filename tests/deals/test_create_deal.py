"""create_deal: a new deal enters its first stage through the same gate as any move."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.errors import NotAllowed
from deals.models import Deal, Event, StageChange
from deals.services import GateBlocked, InvalidMove, create_deal
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory

pytestmark = pytest.mark.django_db


def test_create_writes_history_row_one_from_nowhere(stages, rep):
    deal = create_deal(by=rep, title="Acme renewal", stage=stages["lead"])

    change = StageChange.objects.get(deal=deal)
    assert (change.seq, change.from_stage, change.to_stage, change.source, change.by) == (
        1,
        None,
        stages["lead"],
        "create",
        rep,
    )
    assert change.at == deal.stage_entered_at
    assert change.pipeline == stages["lead"].pipeline


def test_create_sets_pipeline_owner_and_version_one(stages, rep):
    deal = create_deal(by=rep, title="Acme", stage=stages["qualified"], amount=Decimal("500"))

    deal.refresh_from_db()
    assert (deal.pipeline, deal.owner, deal.version, deal.closed_at) == (
        stages["qualified"].pipeline,
        rep,
        1,
        None,
    )


def test_create_puts_the_deal_on_top_of_its_column(stages, rep):
    existing = DealFactory(owner=rep, stage=stages["lead"], position=0)

    deal = create_deal(by=rep, title="Newest", stage=stages["lead"])

    assert list(Deal.objects.filter(stage=stages["lead"]).order_by("position", "id")) == [
        deal,
        existing,
    ]


def test_create_publishes_deal_created(stages, rep):
    deal = create_deal(by=rep, title="Acme", stage=stages["lead"])

    event = Event.objects.get()
    assert event.name == "deal.created"
    assert event.payload == {
        "deal_id": deal.pk,
        "owner_id": rep.pk,
        "stage_id": stages["lead"].pk,
        "pipeline_id": stages["lead"].pipeline_id,
    }


def test_criterion_on_the_stage_blocks_creation(stages, rep):
    CriterionFactory(stage=stages["lead"], kind=CriterionKind.FIELD_REQUIRED, field_name="amount")

    with pytest.raises(GateBlocked) as raised:
        create_deal(by=rep, title="Acme", stage=stages["lead"])

    assert [f.message for f in raised.value.failures] == ["Add an amount"]
    assert not Deal.objects.exists()
    assert not StageChange.objects.exists()
    assert not Event.objects.exists()


def test_creation_passes_the_gate_once_the_field_is_given(stages, rep):
    CriterionFactory(stage=stages["lead"], kind=CriterionKind.FIELD_REQUIRED, field_name="amount")

    deal = create_deal(by=rep, title="Acme", stage=stages["lead"], amount=Decimal("10"))

    assert deal.pk is not None


def test_activity_criterion_blocks_a_new_deal_which_has_no_activities(stages, rep):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.ACTIVITY_DONE, activity_type="call"
    )

    with pytest.raises(GateBlocked):
        create_deal(by=rep, title="Acme", stage=stages["qualified"])


def test_creating_straight_into_won_needs_an_amount(stages, rep):
    with pytest.raises(GateBlocked) as raised:
        create_deal(by=rep, title="Acme", stage=stages["won"])

    assert [f.kind for f in raised.value.failures] == ["won_amount"]


def test_creating_straight_into_won_closes_the_deal(stages, rep):
    deal = create_deal(by=rep, title="Acme", stage=stages["won"], amount=Decimal("900"))

    assert deal.closed_at == deal.stage_entered_at


def test_manager_override_on_create_is_recorded_on_history(stages, manager):
    CriterionFactory(stage=stages["lead"], kind=CriterionKind.FIELD_REQUIRED, field_name="amount")

    deal = create_deal(by=manager, title="Acme", stage=stages["lead"], override_reason="Imported")

    change = StageChange.objects.get(deal=deal)
    assert (change.override_reason, change.overridden) == ("Imported", ["Add an amount"])


def test_rep_override_reason_does_not_open_the_gate_on_create(stages, rep):
    CriterionFactory(stage=stages["lead"], kind=CriterionKind.FIELD_REQUIRED, field_name="amount")

    with pytest.raises(GateBlocked):
        create_deal(by=rep, title="Acme", stage=stages["lead"], override_reason="Trust me")

    assert not Deal.objects.exists()


def test_creating_in_an_archived_stage_is_refused(stages, rep):
    stages["lead"].is_archived = True
    stages["lead"].save()

    with pytest.raises(InvalidMove):
        create_deal(by=rep, title="Acme", stage=stages["lead"])

    assert not Deal.objects.exists()


# owners


def test_rep_cannot_create_a_deal_for_someone_else(stages, rep, teammate):
    with pytest.raises(NotAllowed):
        create_deal(by=rep, title="Acme", stage=stages["lead"], owner=teammate)

    assert not Deal.objects.exists()


def test_manager_can_create_a_deal_for_a_rep_of_their_team(stages, manager, rep):
    deal = create_deal(by=manager, title="Acme", stage=stages["lead"], owner=rep)

    assert deal.owner == rep
    assert StageChange.objects.get(deal=deal).by == manager


def test_manager_cannot_create_a_deal_for_another_teams_rep(stages, manager, outsider):
    # The permission matrix lets managers create deals of the teams they manage only.
    with pytest.raises(NotAllowed):
        create_deal(by=manager, title="Acme", stage=stages["lead"], owner=outsider)

    assert not Deal.objects.exists()


def test_admin_can_create_a_deal_for_anyone(stages, admin_user, outsider):
    deal = create_deal(by=admin_user, title="Acme", stage=stages["lead"], owner=outsider)

    assert deal.owner == outsider


def test_create_deal_counts_the_checklist_and_contact_role_it_comes_with(rep, stages):
    from contacts.models import Person
    from deals.models import ChecklistTick, DealContact
    from deals.services import GateFixes, create_deal
    from stages.models import CriterionKind
    from tests.factories import CriterionFactory

    check = CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label="Budget")
    CriterionFactory(
        stage=stages["demo"], kind=CriterionKind.CONTACT_ROLE, contact_role="decision_maker"
    )
    dana = Person.objects.create(name="Dana")
    deal = create_deal(
        by=rep,
        title="Gated start",
        stage=stages["demo"],
        with_items=GateFixes(
            fields={}, checklist_ids=(check.pk,), contact_roles=(("decision_maker", dana.pk),)
        ),
    )
    assert ChecklistTick.objects.filter(deal=deal, criterion=check).exists()
    assert DealContact.objects.filter(deal=deal, person=dana, role="decision_maker").exists()
