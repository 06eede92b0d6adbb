"""The access policy's rules, each on its own (the full matrix through the app is in
tests/security/test_permission_matrix.py, every URL in tests/security/test_url_permissions.py)."""

from __future__ import annotations

import pytest

from accounts import policy
from accounts.models import Role
from deals.models import Notification
from tests.factories import ActivityFactory, DealFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def deals(rep, teammate, outsider, manager, stages):
    return {
        "rep": DealFactory(owner=rep, stage=stages["lead"]),
        "teammate": DealFactory(owner=teammate, stage=stages["lead"]),
        "outsider": DealFactory(owner=outsider, stage=stages["lead"]),
        "manager": DealFactory(owner=manager, stage=stages["lead"]),
    }


def _ids(rows) -> set[int]:
    return set(rows.values_list("pk", flat=True))


def test_rep_sees_own_and_team_deals_changes_only_own(rep, deals):
    assert _ids(policy.deals(rep)) == {deals["rep"].pk, deals["teammate"].pk, deals["manager"].pk}
    assert _ids(policy.changeable_deals(rep)) == {deals["rep"].pk}


def test_manager_sees_and_changes_the_teams_they_manage(manager, deals):
    expected = {deals["rep"].pk, deals["teammate"].pk, deals["manager"].pk}
    assert _ids(policy.deals(manager)) == expected
    assert _ids(policy.changeable_deals(manager)) == expected


def test_admin_sees_and_changes_everything(admin_user, deals):
    assert _ids(policy.deals(admin_user)) == {d.pk for d in deals.values()}
    assert _ids(policy.changeable_deals(admin_user)) == {d.pk for d in deals.values()}


def test_deactivated_and_anonymous_see_nothing(rep, deals):
    from django.contrib.auth.models import AnonymousUser

    rep.is_active = False
    assert not policy.deals(rep).exists()
    assert not policy.deals(AnonymousUser()).exists()
    assert not policy.organizations(AnonymousUser()).exists()


def test_change_rule_in_python_agrees_with_the_queryset(
    rep, teammate, outsider, manager, other_manager, admin_user, deals
):
    for user in (rep, teammate, outsider, manager, other_manager, admin_user):
        rule = policy.deal_change_rule(user)
        visible = policy.deals(user).select_related("owner")
        assert {d.pk for d in visible if rule(d)} == _ids(policy.changeable_deals(user)), user


def test_recipient_rule_agrees_with_the_visibility_rule(
    rep, teammate, outsider, manager, other_manager, admin_user, deals
):
    """The per-row form used for e-mails must answer exactly as the per-user filter."""
    users = [rep, teammate, outsider, manager, other_manager, admin_user]
    inactive = UserFactory(team=rep.team, is_active=False)
    for user in [*users, inactive]:
        for deal in deals.values():
            Notification.objects.create(user=user, deal=deal, kind="stalled", text="x")
    sendable = policy.sendable_notifications(Notification.objects.all())
    pairs = set(sendable.values_list("user_id", "deal_id"))
    expected = {(u.pk, d) for u in users for d in _ids(policy.deals(u))}
    assert pairs == expected


def test_activities_follow_their_deal(rep, outsider, deals):
    mine = ActivityFactory(deal=deals["teammate"], owner=rep)
    hidden = ActivityFactory(deal=deals["outsider"], owner=outsider)
    assert mine in policy.activities(rep) and hidden not in policy.activities(rep)
    assert mine not in policy.changeable_activities(rep)


def test_only_the_author_deletes_an_activity(rep, admin_user, deals):
    activity = ActivityFactory(deal=deals["rep"], owner=rep)
    assert policy.can_delete_activity(rep, activity)
    assert not policy.can_delete_activity(admin_user, activity)


def test_assigning_owners(rep, teammate, outsider, manager, admin_user):
    assert not policy.can_reassign(rep) and not policy.assignable_owners(rep).exists()
    assert policy.can_assign_to(rep, rep) and not policy.can_assign_to(rep, teammate)
    assert policy.can_assign_to(manager, teammate) and not policy.can_assign_to(manager, outsider)
    assert set(policy.assignable_owners(manager)) == {manager, rep, teammate}
    assert policy.can_assign_to(admin_user, outsider)


def test_numbers_scope_by_role(rep, manager, admin_user, deals):
    assert [policy.numbers_scope(u) for u in (rep, manager, admin_user)] == [
        "own",
        "teams",
        "all",
    ]
    assert _ids(policy.dashboard_deals(rep)) == {deals["rep"].pk}


def test_configuration_import_audit_and_override(rep, manager, admin_user):
    answers = {
        user.username: (
            policy.can_configure(user),
            policy.can_view_audit(user),
            policy.can_import(user),
            policy.can_create_users_on_import(user),
            policy.can_override_gate(user),
            policy.can_manage_automations(user),
        )
        for user in (rep, manager, admin_user)
    }
    assert answers == {
        "rep": (False, False, False, False, False, False),
        "manager": (False, False, True, False, True, True),
        "admin": (True, True, True, True, True, True),
    }


def test_superuser_counts_as_admin_whatever_the_role(db):
    user = UserFactory(role=Role.REP, is_superuser=True)
    assert policy.is_admin(user) and policy.can_configure(user)


def test_template_object_answers_for_its_user(manager):
    answers = policy.for_user(manager)
    assert answers.can_import and answers.can_reassign and not answers.can_configure
    assert answers.numbers_scope == "teams" and answers.can_filter_by_team


def test_template_questions_are_policy_functions_and_nothing_else(rep):
    answers = policy.for_user(rep)
    assert all(callable(getattr(policy, name)) for name in policy.USER_QUESTIONS)
    with pytest.raises(AttributeError):
        answers.is_admin  # noqa: B018 - only the listed questions may be asked


def test_deleting_deals_is_for_managers_within_what_they_change_and_admins(
    rep, manager, other_manager, admin_user, deals
):
    assert not policy.can_delete_deal(rep, deals["rep"])  # not even their own
    assert policy.can_delete_deal(manager, deals["rep"])
    assert not policy.can_delete_deal(other_manager, deals["rep"])
    assert policy.can_delete_deal(admin_user, deals["outsider"])


def test_whose_deals_a_user_sees_is_answered_by_owner_for_deleted_deals(
    rep, teammate, outsider, manager, admin_user
):
    assert policy.sees_deals_owned_by(rep, teammate.pk)
    assert not policy.sees_deals_owned_by(rep, outsider.pk)
    assert policy.sees_deals_owned_by(manager, rep.pk)
    assert not policy.sees_deals_owned_by(manager, outsider.pk)
    assert policy.sees_deals_owned_by(admin_user, outsider.pk)
    rep.is_active = False
    assert not policy.sees_deals_owned_by(rep, rep.pk)


def test_tokens_are_their_owners_and_admins_revoke_anyones(rep, teammate, admin_user):
    from api import tokens
    from api.models import ApiToken

    mine = tokens.create_token(by=rep, name="mine", scope="read").token
    theirs = tokens.create_token(by=teammate, name="theirs", scope="read").token
    rows = ApiToken.objects.all()
    assert _ids(policy.api_tokens(rep, rows)) == {mine.pk}
    assert _ids(policy.revocable_tokens(rep, rows)) == {mine.pk}
    assert _ids(policy.revocable_tokens(admin_user, rows)) == {mine.pk, theirs.pk}
    assert _ids(policy.api_tokens(admin_user, rows)) == set()


def test_webhook_endpoints_are_managers_own_and_all_for_admins(
    rep, manager, other_manager, admin_user
):
    from webhooks.models import Endpoint

    ours = Endpoint.objects.create(owner=manager, url="https://a.example/", events=["deal.*"])
    Endpoint.objects.create(owner=other_manager, url="https://b.example/", events=["deal.*"])
    rows = Endpoint.objects.all()
    assert _ids(policy.webhook_endpoints(manager, rows)) == {ours.pk}
    assert not policy.webhook_endpoints(rep, rows).exists()
    assert policy.webhook_endpoints(admin_user, rows).count() == 2


def test_users_listed_are_those_whose_deals_one_sees(rep, teammate, outsider, manager, admin_user):
    assert {rep.pk, teammate.pk} <= _ids(policy.visible_users(rep))
    assert outsider.pk not in _ids(policy.visible_users(rep))
    assert outsider.pk not in _ids(policy.visible_users(manager))
    assert outsider.pk in _ids(policy.visible_users(admin_user))
