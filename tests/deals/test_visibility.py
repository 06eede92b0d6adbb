"""The permission matrix as the two querysets every read and write goes through."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.models import Role
from deals.models import Deal
from tests.factories import DealFactory, StageFactory, UserFactory

pytestmark = pytest.mark.django_db

OWNERS = ["rep", "teammate", "manager", "outsider", "other_manager", "admin_user", "loner"]


@pytest.fixture
def loner(db):
    """A rep who belongs to no team."""
    return UserFactory(username="loner")


@pytest.fixture
def inactive(team, manager):
    """A former member of the rep's team who can no longer log in."""
    return UserFactory(username="inactive", team=team, is_active=False)


@pytest.fixture
def inactive_admin(db):
    return UserFactory(
        username="inactive_admin", role=Role.ADMIN, is_superuser=True, is_active=False
    )


@pytest.fixture
def anonymous(db):
    return AnonymousUser()


@pytest.fixture
def deals(request):
    """One deal owned by each named actor, keyed by the actor's name."""
    stage = StageFactory()
    return {
        name: DealFactory(owner=request.getfixturevalue(name), stage=stage, title=name)
        for name in OWNERS
    }


# viewer: (deals visible, deals editable), by owner name
MATRIX = {
    "rep": ({"rep", "teammate", "manager"}, {"rep"}),
    "teammate": ({"rep", "teammate", "manager"}, {"teammate"}),
    "outsider": ({"outsider", "other_manager"}, {"outsider"}),
    "manager": ({"rep", "teammate", "manager"}, {"rep", "teammate", "manager"}),
    "other_manager": ({"outsider", "other_manager"}, {"outsider", "other_manager"}),
    "admin_user": (set(OWNERS), set(OWNERS)),
    "loner": ({"loner"}, {"loner"}),
    "inactive": (set(), set()),
    "inactive_admin": (set(), set()),
    "anonymous": (set(), set()),
}


def titles(queryset):
    return set(queryset.values_list("title", flat=True))


@pytest.mark.parametrize(("viewer", "expected"), MATRIX.items(), ids=list(MATRIX))
def test_visible_to_follows_the_permission_matrix(deals, viewer, expected, request):
    user = request.getfixturevalue(viewer)

    assert titles(Deal.objects.visible_to(user)) == expected[0]


@pytest.mark.parametrize(("viewer", "expected"), MATRIX.items(), ids=list(MATRIX))
def test_editable_by_follows_the_permission_matrix(deals, viewer, expected, request):
    user = request.getfixturevalue(viewer)

    assert titles(Deal.objects.editable_by(user)) == expected[1]


@pytest.mark.parametrize("viewer", list(MATRIX))
def test_editable_deals_are_always_visible(deals, viewer, request):
    user = request.getfixturevalue(viewer)

    assert titles(Deal.objects.editable_by(user)) <= titles(Deal.objects.visible_to(user))


def test_manager_sees_deals_of_every_team_they_manage(deals, manager, other_team, outsider):
    other_team.manager = manager
    other_team.save()

    assert titles(Deal.objects.visible_to(manager)) >= {"outsider", "rep"}
    assert "outsider" in titles(Deal.objects.editable_by(manager))


def test_rep_who_changes_team_sees_the_new_team_only(deals, rep, other_team):
    rep.team = other_team
    rep.save()

    assert titles(Deal.objects.visible_to(rep)) == {"rep", "outsider", "other_manager"}


def test_demoted_manager_loses_their_teams_deals(deals, manager):
    manager.role = Role.REP
    manager.save()

    assert titles(Deal.objects.editable_by(manager)) == {"manager"}


def test_scopes_chain_with_other_filters(deals, rep):
    assert titles(Deal.objects.filter(title__startswith="team").visible_to(rep)) == {"teammate"}


def test_the_owner_rule_hands_the_few_owner_ids_to_the_index_as_a_list(rep, manager):
    """PostgreSQL plans `owner_id IN (subquery)` as a join and may scan every deal; the
    rule is written `owner_id = ANY(ARRAY(subquery))` there (same rows, see OneOf)."""
    from django.db import connection

    for user in (rep, manager):
        sql = str(Deal.objects.visible_to(user).query)
        if connection.vendor == "postgresql":
            assert '"deals_deal"."owner_id" = ANY(ARRAY(SELECT' in sql
        else:
            assert '"deals_deal"."owner_id" IN (SELECT' in sql
