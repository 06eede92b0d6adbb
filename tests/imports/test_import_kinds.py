"""Importing organizations, people and activities; the preview's dry run."""

from __future__ import annotations

from decimal import Decimal

import pytest

from contacts.models import Organization, Person
from deals.models import Activity, Deal
from imports import preview, services
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory, OrganizationFactory, PersonFactory
from tests.imports.imports_support import csv_of, import_root, run, start, upload  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

ACCOUNTS = "account,sector,year_established,revenue,employees,office_location,subsidiary_of"


def test_organizations_import_creates_them_with_details(admin_user):
    job = run(
        admin_user,
        csv_of("Acme,technolgy,1996,1100.04,2822,US,", header=ACCOUNTS),
        kind="organizations",
    )

    acme = Organization.objects.get()
    assert (acme.name, acme.sector, acme.employees, acme.annual_revenue) == (
        "Acme",
        "technology",
        2822,
        Decimal("1100040000.00"),  # the sample's accounts give revenue in millions
    )
    assert job.summary["problems"][0]["kind"] == "sector_spelling"


def test_organizations_import_updates_by_name_and_never_blanks_a_value(admin_user):
    existing = OrganizationFactory(name="Acme", sector="retail", employees=10, website="a.com")

    job = run(admin_user, "name,employees,website\nACME,25,\n", kind="organizations")

    existing.refresh_from_db()
    assert (job.updated_count, existing.employees, existing.sector, existing.website) == (
        1,
        25,
        "retail",
        "a.com",
    )


def test_organizations_reimport_changes_nothing(admin_user):
    text = csv_of("Acme,medical,1996,10,20,US,", header=ACCOUNTS)
    run(admin_user, text, kind="organizations")

    again = run(admin_user, text, kind="organizations")

    assert (again.unchanged_count, Organization.objects.count()) == (1, 1)


def test_people_import_links_organizations_and_matches_by_email(admin_user):
    header = "First Name,Last Name,Email,Company Name,Job Title"
    run(admin_user, csv_of("Ada,Lovelace,ada@example.com,Acme,CTO", header=header), kind="people")

    again = run(
        admin_user, csv_of("Ada,King,ADA@example.com,Acme,CEO", header=header), kind="people"
    )

    person = Person.objects.get()
    assert (person.name, person.job_title, person.organization.name) == (
        "Ada King",
        "CEO",
        "Acme",
    )
    assert again.updated_count == 1


def test_people_import_reports_a_bad_email(admin_user):
    job = run(admin_user, "name,email\nAda,not-an-email\n", kind="people")

    assert (job.failed_count, Person.objects.count()) == (1, 0)


def test_activities_attach_to_deals_by_external_id(admin_user, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], external_id="D-1")
    header = "Deal ID,Type,Subject,Due date,Done"

    job = run(
        admin_user,
        csv_of(
            "D-1,Phone call,Intro call,2017-03-01,yes",
            "D-9,Call,Lost one,2017-03-01,no",
            header=header,
        ),
        kind="activities",
    )

    activity = Activity.objects.get()
    assert (activity.deal, activity.type, activity.done, activity.owner) == (
        deal,
        "call",
        True,
        rep,
    )
    assert (job.created_count, job.failed_count) == (1, 1)


def test_activities_reimport_adds_nothing(admin_user, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], external_id="D-1")
    text = "Deal ID,Type,Subject,Due date\nD-1,Meeting,Kick-off,2017-03-01\n"
    run(admin_user, text, kind="activities")

    again = run(admin_user, text, kind="activities")

    assert (again.unchanged_count, Activity.objects.count()) == (1, 1)


def test_activities_of_deals_outside_a_managers_teams_are_refused(manager, outsider, stages):
    DealFactory(owner=outsider, stage=stages["lead"], external_id="D-1")

    job = run(manager, "Deal ID,Subject\nD-1,Sneaky\n", kind="activities")

    assert (job.failed_count, Activity.objects.count()) == (1, 0)


def test_preview_runs_the_gate_without_saving(admin_user, rep, stages):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="organization"
    )
    job = start(
        admin_user,
        csv_of(
            "E1,rep,GTX Basic,,Engaging,2016-11-03,,",
            "E2,rep,GTX Basic,Acme,Engaging,2016-11-03,,",
        ),
    )

    result = preview.build(job, by=admin_user, scan_result=services.current_scan(job))

    assert dict(result.actions) == {"fail": 1, "create": 1}
    assert [r.action for r in result.rows] == ["fail", "create"]
    assert "Qualified: Add an organization" in result.rows[0].errors[0].message
    assert (Deal.objects.count(), Organization.objects.count()) == (0, 0)


def test_preview_marks_rows_that_will_update_existing_deals(admin_user, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], external_id="P1")
    job = start(admin_user, csv_of("P1,rep,GTX Basic,Acme,Prospecting,,,"))

    result = preview.build(job, by=admin_user, scan_result=services.current_scan(job))

    assert dict(result.actions) == {"update": 1}


def test_preview_reports_dates_that_could_be_either_order(admin_user, rep, stages):
    job = start(admin_user, csv_of("A1,rep,GTX Basic,Acme,Won,03/04/2017,05/06/2017,10"))

    scan = services.current_scan(job)
    result = preview.build(job, by=admin_user, scan_result=scan)

    assert (scan.date_verdict, scan.date_example) == ("ambiguous", "03/04/2017")
    assert result.effective_date_order == "mdy"


def test_preview_lists_unknown_owners_with_their_row_counts(admin_user, rep, stages):
    job = start(
        admin_user,
        csv_of(
            "A1,Moses Frase,GTX Basic,Acme,Prospecting,,,",
            "A2,Moses Frase,GTX Basic,Acme,Prospecting,,,",
            "A3,rep,GTX Basic,Acme,Prospecting,,,",
        ),
    )

    result = preview.build(job, by=admin_user, scan_result=services.current_scan(job))

    assert result.unknown_owners == [("Moses Frase", 2)]


def test_a_saved_mapping_is_applied_to_the_next_file(admin_user, rep, stages):
    first = start(
        admin_user,
        csv_of("A1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,5"),
        default_currency="EUR",
        stages={"Won": stages["won"].pk},
    )
    saved = services.save_mapping(first, by=admin_user, name="Maven")

    job = services.start_import(
        by=admin_user,
        upload=upload(csv_of("B1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,5")),
        saved=saved,
    )

    assert job.mapping["default_currency"] == "EUR"
    assert job.mapping["columns"]["amount"] == "close_value"


# --- names resolve only to records the importer may see (contacts.resolve) ----------------


def test_managers_organizations_import_never_updates_another_teams_organization(
    manager, outsider, stages
):
    theirs = OrganizationFactory(name="Zenith", employees=10, created_by=outsider)
    DealFactory(owner=outsider, stage=stages["lead"], organization=theirs)

    job = run(manager, "name,employees\nZenith,99\n", kind="organizations")

    theirs.refresh_from_db()
    assert theirs.employees == 10
    assert job.created_count == 1
    mine = Organization.objects.exclude(pk=theirs.pk).get()
    assert (mine.name, mine.employees, mine.created_by) == ("Zenith", 99, manager)


def test_managers_people_import_never_matches_another_teams_person_by_email(
    manager, outsider, stages
):
    theirs = PersonFactory(name="Ada Secret", email="ada@zenith.example", created_by=outsider)
    DealFactory(owner=outsider, stage=stages["lead"], person=theirs)

    run(manager, "name,email,job_title\nAda Secret,ada@zenith.example,CEO\n", kind="people")

    theirs.refresh_from_db()
    assert theirs.job_title != "CEO"
    assert Person.objects.filter(created_by=manager, job_title="CEO").count() == 1
