"""Who sees which organizations and people: through visible deals, plus what they created."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from contacts.models import Organization, Person
from deals.models import DealContact
from tests.factories import DealFactory, OrganizationFactory, PersonFactory, UserFactory


@pytest.fixture
def world(rep, teammate, outsider, manager, other_manager, stages):
    """Organizations and people hanging off deals of both teams, and two without deals."""
    rows = {}
    for key, owner in (("rep", rep), ("teammate", teammate), ("outsider", outsider)):
        org = OrganizationFactory(name=f"{key} org")
        person = PersonFactory(name=f"{key} person", organization=None)
        deal = DealFactory(owner=owner, stage=stages["lead"], organization=org, person=person)
        rows[f"{key}_org"], rows[f"{key}_person"], rows[f"{key}_deal"] = org, person, deal
    rows["role_person"] = PersonFactory(name="role person", organization=None)
    DealContact.objects.create(
        deal=rows["rep_deal"], person=rows["role_person"], role="decision_maker"
    )
    rows["rep_created_org"] = OrganizationFactory(name="rep created org", created_by=rep)
    rows["teammate_created_person"] = PersonFactory(
        name="teammate created person", organization=None, created_by=teammate
    )
    return rows


def org_names(user):
    return set(Organization.objects.visible_to(user).values_list("name", flat=True))


def person_names(user):
    return set(Person.objects.visible_to(user).values_list("name", flat=True))


def test_rep_sees_organizations_of_team_deals_and_those_they_created(rep, world):
    assert org_names(rep) == {"rep org", "teammate org", "rep created org"}


def test_teammate_does_not_see_organization_the_rep_created_without_deals(teammate, world):
    assert org_names(teammate) == {"rep org", "teammate org"}


def test_rep_of_other_team_sees_only_their_deals_organizations(outsider, world):
    assert org_names(outsider) == {"outsider org"}


def test_manager_sees_organizations_of_managed_teams_deals(manager, world):
    assert org_names(manager) == {"rep org", "teammate org"}


def test_other_manager_sees_only_their_team(other_manager, world):
    assert org_names(other_manager) == {"outsider org"}


def test_admin_sees_every_organization_even_without_deals(admin_user, world):
    assert org_names(admin_user) == set(Organization.objects.values_list("name", flat=True))


def test_rep_sees_primary_contacts_and_contact_roles_of_team_deals(rep, world):
    assert person_names(rep) == {"rep person", "teammate person", "role person"}


def test_teammate_sees_people_they_created(teammate, world):
    assert "teammate created person" in person_names(teammate)


def test_outsider_sees_no_person_of_the_other_team(outsider, world):
    assert person_names(outsider) == {"outsider person"}


def test_manager_sees_people_of_managed_teams_deals(manager, world):
    assert person_names(manager) == {"rep person", "teammate person", "role person"}


def test_admin_sees_every_person(admin_user, world):
    assert person_names(admin_user) == set(Person.objects.values_list("name", flat=True))


def test_organization_seen_through_several_deals_is_listed_once(rep, teammate, world, stages):
    DealFactory(owner=teammate, stage=stages["lead"], organization=world["rep_org"])
    names = list(Organization.objects.visible_to(rep).values_list("name", flat=True))
    assert names.count("rep org") == 1


def test_anonymous_and_inactive_users_see_nothing(world, team):
    inactive = UserFactory(team=team, is_active=False)
    assert not Organization.objects.visible_to(AnonymousUser()).exists()
    assert not Person.objects.visible_to(inactive).exists()


def test_visibility_excluded_is_the_exact_complement(outsider, world):
    """The subqueries skip NULL ids, so NOT IN still works on the visible set."""
    hidden = Organization.objects.exclude(pk__in=Organization.objects.visible_to(outsider))
    assert set(hidden.values_list("name", flat=True)) == {
        "rep org",
        "teammate org",
        "rep created org",
    }
