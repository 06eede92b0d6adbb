"""Typed organization and person names resolve only to records the typist may see."""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts.models import Organization, Person
from deals.models import Deal
from deals.services import resolve_contacts
from tests.factories import DealFactory, OrganizationFactory, PersonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def hidden_contact(stages, outsider):
    """Another team's organization and person, on that team's deal only."""
    organization = OrganizationFactory(name="Globex")
    person = PersonFactory(name="Hank Scorpio", organization=organization)
    DealFactory(owner=outsider, stage=stages["lead"], organization=organization, person=person)
    return organization, person


def test_a_name_matching_only_another_teams_records_creates_new_ones(hidden_contact, rep):
    organization, person = hidden_contact

    found = resolve_contacts(organization_name="globex", person_name="Hank Scorpio", by=rep)

    assert found["organization"] != organization and found["person"] != person
    assert (found["organization"].created_by, found["person"].created_by) == (rep, rep)
    assert found["person"].organization == found["organization"]


def test_a_name_matching_a_visible_record_attaches_it(stages, rep, teammate):
    organization = OrganizationFactory(name="Initech")
    DealFactory(owner=teammate, stage=stages["lead"], organization=organization)

    found = resolve_contacts(organization_name="initech", person_name="", by=rep)

    assert found["organization"] == organization


def test_new_deal_never_hands_a_rep_another_teams_person(client_for, hidden_contact, rep, stages):
    organization, person = hidden_contact
    client = client_for(rep)

    response = client.post(
        reverse("deal_new"),
        {
            "stage": stages["qualified"].pk,
            "title": "Fresh",
            "currency": "USD",
            "amount": "10",
            "organization_name": "Globex",
            "person_name": "Hank Scorpio",
        },
    )

    assert response.status_code in (200, 302)
    deal = Deal.objects.get(title="Fresh")
    assert deal.organization not in (None, organization) and deal.person not in (None, person)
    assert deal.person.email == "" and deal.person.created_by == rep
    assert client.get(reverse("contacts:person", args=[person.pk])).status_code == 404
    assert client.get(reverse("contacts:organization", args=[organization.pk])).status_code == 404
    assert Person.objects.filter(name="Hank Scorpio").count() == 2
    assert Organization.objects.filter(name__iexact="globex").count() == 2
