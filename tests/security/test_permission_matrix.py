"""Every cell of the permission matrix (tests/security/matrix.py), checked against the app.

Each cell makes the real request as that role and reads the answer as one symbol of the
matrix; a write's effect (or its absence) is read back from the database. Every cell
that is not an allowed write must leave every app table exactly as it was.
Then: a deactivation or a role change takes effect on the user's very next request.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Role, User
from contacts.models import Organization, Person
from deals.models import Activity, Deal, Notification, StageChange
from stages.models import Pipeline
from tests.security.matrix import PENDING, cells
from tests.security.support import (
    body,
    changed_tables,
    data_for_module,
    htmx,
    is_login_redirect,
    snapshot,
)
from tests.security.world import AMOUNTS, SCOPES, WORDS, World, build_world

CELLS = cells()
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Any:
    yield from data_for_module(django_db_blocker, build_world)


def _split(scope: str) -> tuple[str, str]:
    """ "teammate_deal" -> ("teammate", "deal")."""
    owner, _, kind = scope.rpartition("_")
    return owner, kind


def _refusal(response: Any) -> str:
    """The symbol of an answer that did not do what was asked."""
    if is_login_redirect(response):
        return "L"
    return {404: "H", 403: "N", 400: "R"}.get(response.status_code, f"?{response.status_code}")


def _read(response: Any, present: Callable[[str], bool]) -> str:
    """A list-like read: Y if the record is in the answer, - if the answer leaves it out."""
    if response.status_code != 200:
        return _refusal(response)
    return "Y" if present(body(response)) else "-"


def _write(response: Any, succeeded: Callable[[], bool], ok: tuple[int, ...] = (200,)) -> str:
    if response.status_code in ok and not is_login_redirect(response):
        return "Y" if succeeded() else f"?{response.status_code} without effect"
    return _refusal(response)


# --- deals -------------------------------------------------------------------------------


def deal_view_page(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    response = client.get(reverse("deal_detail", args=[deal.pk]))
    return _read(response, lambda text: deal.title in text)


def deal_view_on_board(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    response = client.get(reverse("board"), {"pipeline": world.pipeline.pk})
    return _read(response, lambda text: f'id="deal-{deal.pk}"' in text)


def deal_view_in_search(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    response = client.get(reverse("search"), {"q": WORDS[owner]})
    return _read(response, lambda text: f'href="{reverse("deal_detail", args=[deal.pk])}"' in text)


def deal_move(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    target = world.stages["qualified"]
    response = client.post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": target.pk, "version": deal.version, "source": "menu"},
        headers=htmx(),
    )
    return _write(response, lambda: Deal.objects.get(pk=deal.pk).stage_id == target.pk)


def _edit_form(deal: Deal, **changes: Any) -> dict[str, Any]:
    return {
        "title": deal.title,
        "amount": deal.amount,
        "currency": deal.currency,
        "expected_close_date": deal.expected_close_date.isoformat(),
        "probability_override": "",
        "next_step": "",
        "product": "",
        "organization_name": deal.organization.name,
        "person_name": deal.person.name,
        "version": deal.version,
        "stage": deal.stage_id,
        **changes,
    }


def deal_edit(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    title = f"{deal.title} (edited)"
    response = client.post(
        reverse("deal_edit", args=[deal.pk]), _edit_form(deal, title=title), headers=htmx()
    )
    return _write(response, lambda: Deal.objects.get(pk=deal.pk).title == title)


def deal_reassign(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    # Someone each deal's managers may hand it to: the manager of the deal's team.
    target = world.users["other_manager" if owner == "other_team" else "manager"]
    response = client.post(
        reverse("deal_reassign", args=[deal.pk]),
        {"owner": target.pk, "version": deal.version},
        headers=htmx(),
    )
    return _write(response, lambda: Deal.objects.get(pk=deal.pk).owner_id == target.pk)


def deal_delete(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    response = client.post(
        reverse("deal_delete", args=[deal.pk]), {"version": deal.version}, headers=htmx()
    )
    return _write(response, lambda: not Deal.objects.filter(pk=deal.pk).exists())


def deal_log_activity(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    subject = "Matrix follow-up call"
    response = client.post(
        reverse("activity_create", args=[deal.pk]),
        {"type": "call", "subject": subject, "done": "on"},
        headers=htmx(),
    )
    return _write(response, lambda: deal.activities.filter(subject=subject).exists())


def deal_override_gate(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    demo = world.stages["demo"]
    reason = "Budget signed on paper"
    response = client.post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": demo.pk, "version": deal.version, "override_reason": reason},
        headers=htmx(),
    )
    return _write(
        response,
        lambda: StageChange.objects.filter(
            deal=deal, to_stage=demo, override_reason=reason
        ).exists(),
    )


def _included(total: Decimal) -> set[str]:
    """Which scopes' deals a dashboard total counts: each amount owns one decimal digit."""
    return {scope for scope in SCOPES if (total // AMOUNTS[scope]) % 10 == 1}


def deal_dashboard(client: Client, world: World, owner: str) -> str:
    params = {"pipeline": world.pipeline.pk}
    response = client.get(reverse("reports:dashboard_csv", args=["pipeline"]), params)
    if response.status_code != 200:
        return _refusal(response)
    rows = {row[0]: row for row in csv.reader(io.StringIO(body(response)))}
    total = Decimal(rows[world.stages["lead"].name][2])
    # The page's chart must show the very total the CSV holds.
    page = client.get(reverse("reports:dashboard"), params)
    assert f"{total:,.2f}" in body(page), "the chart disagrees with the CSV"
    return "Y" if owner in _included(total) else "-"


def deal_csv_export(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    response = client.get(reverse("board_export"), {"pipeline": world.pipeline.pk})
    if response.status_code != 200:
        return _refusal(response)
    titles = {row[1] for row in csv.reader(io.StringIO(body(response).lstrip("\ufeff")))}
    return "Y" if deal.title in titles else "-"


def deal_notifications(client: Client, world: World, owner: str) -> str:
    deal = world.deals[owner]
    response = client.get(reverse("notifications"))
    return _read(response, lambda text: deal.title in text)


# --- activities --------------------------------------------------------------------------


def activity_view_page(client: Client, world: World, owner: str) -> str:
    activity = world.activities[owner]
    response = client.get(reverse("deal_detail", args=[activity.deal_id]))
    return _read(response, lambda text: activity.subject in text)


def activity_delete(client: Client, world: World, owner: str) -> str:
    activity = world.activities[owner]
    response = client.post(reverse("activity_delete", args=[activity.pk]), headers=htmx())
    return _write(response, lambda: not Activity.objects.filter(pk=activity.pk).exists())


# --- organizations and people ------------------------------------------------------------


def org_view_page(client: Client, world: World, owner: str) -> str:
    organization = world.organizations[owner]
    response = client.get(reverse("contacts:organization", args=[organization.pk]))
    return _read(response, lambda text: organization.name in text)


def org_view_in_search(client: Client, world: World, owner: str) -> str:
    url = reverse("contacts:organization", args=[world.organizations[owner].pk])
    response = client.get(reverse("search"), {"q": WORDS[owner]})
    return _read(response, lambda text: f'href="{url}"' in text)


def org_edit(client: Client, world: World, owner: str) -> str:
    organization = world.organizations[owner]
    name = f"{organization.name} Ltd"
    response = client.post(
        reverse("contacts:organization_edit", args=[organization.pk]), {"name": name}
    )
    return _write(
        response, lambda: Organization.objects.get(pk=organization.pk).name == name, ok=(302,)
    )


def person_view_page(client: Client, world: World, owner: str) -> str:
    person = world.people[owner]
    response = client.get(reverse("contacts:person", args=[person.pk]))
    return _read(response, lambda text: person.name in text)


def person_view_in_search(client: Client, world: World, owner: str) -> str:
    url = reverse("contacts:person", args=[world.people[owner].pk])
    response = client.get(reverse("search"), {"q": WORDS[owner]})
    return _read(response, lambda text: f'href="{url}"' in text)


def person_edit(client: Client, world: World, owner: str) -> str:
    person = world.people[owner]
    name = f"{person.name} Jr"
    response = client.post(
        reverse("contacts:person_edit", args=[person.pk]),
        {"name": name, "organization": person.organization_id},
    )
    return _write(response, lambda: Person.objects.get(pk=person.pk).name == name, ok=(302,))


# --- configuration -----------------------------------------------------------------------


def configure_stages(client: Client, world: World, owner: str) -> str:
    name = "Matrix probe pipeline"
    response = client.post(reverse("stages:create_pipeline"), {"name": name})
    return _write(response, lambda: Pipeline.objects.filter(name=name).exists(), ok=(302,))


def configure_automations(client: Client, world: World, owner: str) -> str:
    from automations.models import Rule

    name = "Matrix probe rule"
    data = {
        "name": name,
        "is_active": "on",
        "trigger_kind": "deal_won",
        "match": "all",
        "a-0-kind": "notify",
        "a-0-roles": "owner",
        "a-0-text": "Won",
    }
    response = client.post(reverse("automations:new"), data)
    return _write(response, lambda: Rule.objects.filter(name=name).exists(), ok=(302,))


def manage_users(client: Client, world: World, owner: str) -> str:
    response = client.get(reverse("admin:accounts_user_changelist"))
    return _read(response, lambda text: "m_rep" in text and "m_outsider" in text)


ACTIONS: dict[tuple[str, str], Callable[[Client, World, str], str]] = {
    ("view_page", "deal"): deal_view_page,
    ("view_on_board", "deal"): deal_view_on_board,
    ("view_in_search", "deal"): deal_view_in_search,
    ("move", "deal"): deal_move,
    ("edit", "deal"): deal_edit,
    ("reassign", "deal"): deal_reassign,
    ("delete", "deal"): deal_delete,
    ("log_activity", "deal"): deal_log_activity,
    ("override_gate", "deal"): deal_override_gate,
    ("dashboard", "deal"): deal_dashboard,
    ("csv_export", "deal"): deal_csv_export,
    ("notifications", "deal"): deal_notifications,
    ("view_page", "activity"): activity_view_page,
    ("delete_activity", "activity"): activity_delete,
    ("view_page", "org"): org_view_page,
    ("view_in_search", "org"): org_view_in_search,
    ("edit", "org"): org_edit,
    ("view_page", "person"): person_view_page,
    ("view_in_search", "person"): person_view_in_search,
    ("edit", "person"): person_edit,
    ("configure_stages", "-"): configure_stages,
    ("configure_automations", "-"): configure_automations,
    ("manage_users", "-"): manage_users,
}


def test_every_row_of_the_matrix_has_a_check():
    rows = {(action, _split(scope)[1] if scope != "-" else "-") for action, scope, *_ in CELLS}
    assert rows == set(ACTIONS)


@pytest.mark.parametrize(
    ("action", "scope", "role", "expected"),
    CELLS,
    ids=[f"{action}-{scope}-{role}" for action, scope, role, _ in CELLS],
)
def test_cell(world, action, scope, role, expected):
    if expected == "P" or (action, scope) in PENDING:
        pytest.skip(f"pending: {PENDING[(action, scope)]}")
    owner, kind = _split(scope) if scope != "-" else ("", "-")
    client = world.client(role)
    before = snapshot()

    observed = ACTIONS[(action, kind)](client, world, owner)

    assert observed == expected
    if not (expected == "Y" and action not in READS):
        assert changed_tables(before, snapshot()) == [], "a refused or read-only request wrote"


READS = {
    "view_page",
    "view_on_board",
    "view_in_search",
    "dashboard",
    "csv_export",
    "notifications",
    "manage_users",
}


# --- changes to a user take effect on their next request --------------------------------


def test_deactivated_user_is_logged_out_on_the_next_request(world):
    rep = world.users["rep"]
    client = world.client("rep")
    page = reverse("deal_detail", args=[world.deals["rep"].pk])
    assert client.get(page).status_code == 200

    User.objects.filter(pk=rep.pk).update(is_active=False)

    assert is_login_redirect(client.get(page))


def test_deactivated_user_cannot_finish_a_move_they_started(world):
    rep, deal = world.users["rep"], world.deals["rep"]
    client = world.client("rep")
    User.objects.filter(pk=rep.pk).update(is_active=False)

    response = client.post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": world.stages["qualified"].pk, "version": deal.version},
        headers=htmx(),
    )

    assert is_login_redirect(response)
    assert Deal.objects.get(pk=deal.pk).stage_id == world.stages["lead"].pk


def test_demoted_admin_loses_configuration_on_the_next_request(world):
    admin = world.users["admin"]
    client = world.client("admin")
    assert client.get(reverse("stages:pipelines")).status_code == 200

    User.objects.filter(pk=admin.pk).update(role=Role.REP, is_superuser=False)

    assert client.get(reverse("stages:pipelines")).status_code == 404


def test_promoted_rep_may_configure_on_the_next_request(world):
    rep = world.users["rep"]
    client = world.client("rep")
    assert client.get(reverse("stages:pipelines")).status_code == 404

    User.objects.filter(pk=rep.pk).update(role=Role.ADMIN)

    assert client.get(reverse("stages:pipelines")).status_code == 200


def test_demoted_manager_can_no_longer_move_team_deals(world):
    manager, deal = world.users["manager"], world.deals["teammate"]
    client = world.client("manager")
    User.objects.filter(pk=manager.pk).update(role=Role.REP)

    response = client.post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": world.stages["qualified"].pk, "version": deal.version},
        headers=htmx(),
    )

    # Now a rep: still sees the team's deals, but moves only their own.
    assert response.status_code == 403
    assert Deal.objects.get(pk=deal.pk).stage_id == world.stages["lead"].pk


def test_rep_moved_to_another_team_stops_seeing_old_teammates_deals(world):
    rep = world.users["rep"]
    client = world.client("rep")
    page = reverse("deal_detail", args=[world.deals["teammate"].pk])
    assert client.get(page).status_code == 200

    User.objects.filter(pk=rep.pk).update(team=world.users["outsider"].team)

    assert client.get(page).status_code == 404
    south_deal = reverse("deal_detail", args=[world.deals["other_team"].pk])
    assert client.get(south_deal).status_code == 200


def test_notice_about_a_deal_handed_to_another_team_stops_showing(world):
    rep, deal = world.users["rep"], world.deals["rep"]
    client = world.client("rep")
    assert deal.title in body(client.get(reverse("notifications")))
    notice = Notification.objects.get(user=rep, deal=deal)

    Deal.objects.filter(pk=deal.pk).update(owner=world.users["outsider"])

    assert deal.title not in body(client.get(reverse("notifications")))
    assert client.post(reverse("notification_open", args=[notice.pk])).status_code == 404
