"""Typed names resolve only to records the user may see (contacts.resolve).

Regression: on New deal, a rep who typed the exact name of another team's person got that
person attached to their deal, and the person's page (with their e-mail) opened for them.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts import resolve
from contacts.models import Organization, Person
from deals.models import Deal
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory, OrganizationFactory, PersonFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def hidden(outsider, stages):
    """Another team's organization and person, on that team's deal."""
    organization = OrganizationFactory(name="Zenith Corp", created_by=outsider)
    person = PersonFactory(
        name="Ada Secret", email="ada@zenith.example", organization=organization
    )
    DealFactory(owner=outsider, stage=stages["lead"], organization=organization, person=person)
    return organization, person


def test_deal_edit_with_another_teams_names_never_attaches_them(client_for, rep, hidden, stages):
    organization, person = hidden
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Mine")

    response = client_for(rep).post(
        reverse("deal_edit", args=[deal.pk]),
        {
            "title": "Mine",
            "currency": "USD",
            "version": deal.version,
            "stage": deal.stage_id,
            "organization_name": "zenith corp",
            "person_name": "ada secret",
        },
    )

    assert response.status_code == 302
    deal.refresh_from_db()
    assert deal.organization_id not in (None, organization.pk)
    assert deal.person_id not in (None, person.pk)


def test_fix_and_move_with_another_teams_organization_creates_a_new_one(
    client_for, rep, hidden, stages
):
    organization, _ = hidden
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="organization"
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])

    response = client_for(rep).post(
        reverse("deal_fix_move", args=[deal.pk]),
        {"stage": stages["qualified"].pk, "version": 1, "organization": "Zenith Corp"},
        **HTMX,
    )

    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]
    assert deal.organization.name == "Zenith Corp" and deal.organization_id != organization.pk
    assert deal.organization.created_by == rep


def test_a_visible_record_of_that_name_is_reused(rep, teammate, stages):
    organization = OrganizationFactory(name="Shared Ltd", created_by=teammate)
    person = PersonFactory(name="Bo Shared", organization=organization)
    DealFactory(owner=teammate, stage=stages["lead"], organization=organization, person=person)

    found = resolve.resolve_names(
        organization_name=" shared ltd ", person_name="BO SHARED", by=rep
    )

    assert (found.organization, found.person) == (organization, person)
    assert Organization.objects.count() == 1 and Person.objects.count() == 1


def test_two_visible_organizations_of_one_name_resolve_to_the_oldest(rep):
    first = OrganizationFactory(name="Acme", created_by=rep)
    OrganizationFactory(name="ACME", created_by=rep)

    for _ in range(3):
        assert resolve.resolve_organization("acme", by=rep) == first


def test_new_deal_with_an_ambiguous_name_succeeds(client_for, rep, stages):
    first = OrganizationFactory(name="Acme", created_by=rep)
    OrganizationFactory(name="Acme", created_by=rep)
    PersonFactory(name="Pat", organization=first, created_by=rep)
    PersonFactory(name="Pat", organization=first, created_by=rep)

    response = client_for(rep).post(
        reverse("deal_new"),
        {
            "stage": stages["lead"].pk,
            "title": "Twice",
            "currency": "USD",
            "organization_name": "Acme",
            "person_name": "Pat",
        },
    )

    assert response.status_code == 302
    deal = Deal.objects.get(title="Twice")
    assert deal.organization == first and deal.person.organization == first


def test_person_is_matched_at_the_resolved_organization_only(rep):
    elsewhere = OrganizationFactory(name="Elsewhere", created_by=rep)
    PersonFactory(name="Kim", organization=elsewhere, created_by=rep)

    found = resolve.resolve_names(organization_name="Here Inc", person_name="Kim", by=rep)

    assert found.person.organization == found.organization
    assert found.organization.name == "Here Inc"


def test_blank_names_resolve_to_nothing_and_create_nothing(rep):
    found = resolve.resolve_names(organization_name="  ", person_name="", by=rep)

    assert (found.organization, found.person) == (None, None)
    assert not Organization.objects.exists() and not Person.objects.exists()
