"""Writes on organizations and people: creator recorded, visibility enforced, rules kept."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError

from common.errors import describe
from contacts import services
from contacts.models import Organization
from tests.factories import DealFactory, OrganizationFactory, PersonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def hidden_org(outsider, stages):
    """An organization only the other team can see."""
    org = OrganizationFactory(name="Hidden")
    DealFactory(owner=outsider, stage=stages["lead"], organization=org)
    return org


def test_create_organization_records_the_creator_and_strips_the_name(rep):
    org = services.create_organization(by=rep, name="  Acme  ")
    assert (org.name, org.created_by) == ("Acme", rep)


def test_create_organization_refuses_negative_revenue(rep):
    with pytest.raises(services.ContactError) as error:
        services.create_organization(by=rep, name="Acme", annual_revenue=Decimal("-1"))
    assert error.value.message == "Annual revenue cannot be negative."
    assert describe(error.value).status == 400
    assert not Organization.objects.exists()


def test_create_organization_refuses_a_blank_name(rep):
    with pytest.raises(services.ContactError):
        services.create_organization(by=rep, name="   ")


def test_database_refuses_negative_revenue_even_without_the_service(db):
    with pytest.raises(IntegrityError):
        Organization.objects.create(name="Raw", annual_revenue=Decimal("-1"))


def test_update_organization_by_someone_who_cannot_see_it_is_refused(rep, hidden_org):
    with pytest.raises(services.ContactNotFound):
        services.update_organization(hidden_org, by=rep, name="Mine now")
    hidden_org.refresh_from_db()
    assert hidden_org.name == "Hidden"


def test_update_organization_rejects_unknown_fields(outsider, hidden_org):
    with pytest.raises(services.ContactError):
        services.update_organization(hidden_org, by=outsider, created_by=outsider)


def test_update_organization_saves_the_changes(outsider, hidden_org):
    services.update_organization(hidden_org, by=outsider, name="Renamed", employees=5)
    hidden_org.refresh_from_db()
    assert (hidden_org.name, hidden_org.employees) == ("Renamed", 5)


def test_create_person_refuses_an_organization_the_creator_cannot_see(rep, hidden_org):
    with pytest.raises(services.ContactNotFound):
        services.create_person(by=rep, name="Spy", organization=hidden_org)


def test_create_person_refuses_an_invalid_email(rep):
    with pytest.raises(services.ContactError) as error:
        services.create_person(by=rep, name="Bad", email="nope")
    assert "valid email" in error.value.message


def test_update_person_may_not_move_them_to_an_invisible_organization(rep, hidden_org):
    person = PersonFactory(organization=None, created_by=rep)
    with pytest.raises(services.ContactNotFound):
        services.update_person(person, by=rep, organization=hidden_org)


def test_update_person_keeps_an_invisible_employer_when_other_fields_change(rep, hidden_org):
    person = PersonFactory(organization=hidden_org, created_by=rep)
    services.update_person(person, by=rep, organization=hidden_org, job_title="CFO")
    person.refresh_from_db()
    assert (person.organization, person.job_title) == (hidden_org, "CFO")
