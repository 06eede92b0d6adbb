"""Undoing an import: what it created goes (history first), what it changed comes back."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Team, User
from contacts.models import Organization
from deals.models import Deal, GateEvent, RewrittenHistory, StageChange
from imports import services
from imports.models import ImportStatus
from imports.undo import undo_import
from reports.dashboard import stays
from reports.models import StageEntry, StageStay
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory, OrganizationFactory
from tests.imports.imports_support import csv_of, import_root, run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

WON = "A1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,1054"


def test_undo_removes_created_deals_with_their_history_and_organizations(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON, "E1,rep,MG Special,Initech,Engaging,2016-11-03,,"))

    stays.refresh(now=timezone.now() + timedelta(hours=1))  # the Won deal's stays are stored
    assert StageStay.objects.exists() and StageEntry.objects.exists()

    result = undo_import(job, by=admin_user)

    assert (Deal.objects.count(), StageChange.objects.count(), Organization.objects.count()) == (
        0,
        0,
        0,
    )
    # The summaries drop the deleted deals' rows when they next catch up (the
    # dashboard does before reading them).
    assert RewrittenHistory.objects.count() == 2  # both deals it created
    stays.catch_up()
    assert not StageStay.objects.exists() and not StageEntry.objects.exists()
    assert result["deals_deleted"] == 2
    job.refresh_from_db()
    assert job.status == ImportStatus.UNDONE


def test_undo_removes_gate_events_of_overridden_rows(admin_user, rep, stages):
    CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )
    job = run(
        admin_user, csv_of("E1,rep,MG Special,Acme,Engaging,2016-11-03,,"), override_reason="old"
    )

    undo_import(job, by=admin_user)

    assert (Deal.objects.count(), GateEvent.objects.count()) == (0, 0)


def test_undo_leaves_deals_the_import_did_not_create(admin_user, rep, stages):
    mine = DealFactory(owner=rep, stage=stages["lead"])
    job = run(admin_user, csv_of(WON))

    undo_import(job, by=admin_user)

    assert list(Deal.objects.all()) == [mine]
    assert StageChange.objects.filter(deal=mine).count() == 1


def test_undo_puts_back_fields_the_import_changed(admin_user, rep, stages):
    run(admin_user, csv_of("E1,rep,MG Special,Acme,Engaging,2016-11-03,2017-05-01,100"))
    second = run(admin_user, csv_of("E1,rep,MG Plus,Acme,Engaging,2016-11-03,2017-06-01,250"))

    undo_import(second, by=admin_user)

    deal = Deal.objects.get()
    assert (deal.amount, deal.product, str(deal.expected_close_date)) == (
        Decimal("100.00"),
        "MG Special",
        "2017-05-01",
    )


def test_undo_keeps_an_organization_a_later_deal_uses(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON))
    acme = Organization.objects.get(name="Acme")
    DealFactory(owner=rep, stage=stages["lead"], organization=acme)

    result = undo_import(job, by=admin_user)

    assert Organization.objects.filter(pk=acme.pk).exists()
    assert result["kept"] == 1


def test_undo_keeps_an_existing_organization_the_import_only_used(admin_user, rep, stages):
    acme = OrganizationFactory(name="Acme")
    job = run(admin_user, csv_of(WON))

    undo_import(job, by=admin_user)

    assert list(Organization.objects.all()) == [acme]


def test_undo_removes_users_and_teams_the_import_created(admin_user, stages):
    members = [{"member": "Moses Frase", "manager": "Dustin Brinkmann", "team": "Central"}]
    job = run(
        admin_user,
        csv_of("X1,Moses Frase,GTX Basic,Acme,Prospecting,,,"),
        reference={"team_members": members},
        create_missing=True,
    )

    undo_import(job, by=admin_user)

    assert list(User.objects.all()) == [admin_user]
    assert not Team.objects.exists()


def test_an_undone_import_cannot_be_undone_again(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON))
    undo_import(job, by=admin_user)

    with pytest.raises(services.ImportRefused):
        undo_import(job, by=admin_user)


def test_another_manager_cannot_undo_my_import(manager, other_manager, rep, stages):
    job = run(manager, csv_of("P1,rep,GTX Basic,Acme,Prospecting,,,"))

    with pytest.raises(services.NotAllowed):
        undo_import(job, by=other_manager)
    assert Deal.objects.count() == 1


def test_reimport_after_undo_creates_the_deals_again(admin_user, rep, stages):
    job = run(admin_user, csv_of(WON))
    undo_import(job, by=admin_user)

    again = run(admin_user, csv_of(WON))

    assert (again.created_count, Deal.objects.count()) == (1, 1)
