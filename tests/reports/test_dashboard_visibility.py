"""No panel, chart or CSV shows anyone numbers they may not see (DESIGN: dashboards row)."""

from __future__ import annotations

import pytest

from deals.models import Deal, StageChange
from reports.dashboard.panels import PANELS
from tests.reports.dashboard_data import MARCH_QUERY, build_history

URL = "/reports/dashboard/"


@pytest.fixture
def history(stages, rep, teammate, outsider):
    return build_history(stages, rep=rep, teammate=teammate, outsider=outsider)


def remove_deal(deal):
    """Take a deal and everything about it out, as if it had never existed."""
    StageChange.objects.filter(deal=deal).delete()
    Deal.objects.filter(pk=deal.pk).delete()


def everything(client, query):
    """The panels as htmx renders them (every chart and table), and every panel's CSV.

    The panels rather than the whole page: the page also carries a CSRF token and a CSP
    nonce, which differ on every response.
    """
    page = client.get(URL, query, headers={"HX-Request": "true"}).content.decode()
    outputs = {"page": page}
    for slug in PANELS:
        response = client.get(f"/reports/dashboard/{slug}.csv", query)
        assert response.status_code == 200
        outputs[slug] = response.content.decode()
    return outputs


@pytest.mark.parametrize("slug", [*PANELS, "page"])
def test_another_teams_deal_changes_nothing_a_manager_sees(client, manager, history, slug):
    """X belongs to the other team: removing it leaves every panel, chart and CSV as it was."""
    client.force_login(manager)
    before = everything(client, MARCH_QUERY)
    remove_deal(history.deals["X"])
    after = everything(client, MARCH_QUERY)
    assert before[slug] == after[slug]


def test_another_teams_deal_is_counted_for_an_admin(client, admin_user, history):
    """The comparison above can fail: for an admin, X does change the funnel."""
    client.force_login(admin_user)
    before = client.get("/reports/dashboard/funnel.csv", MARCH_QUERY).content
    remove_deal(history.deals["X"])
    assert client.get("/reports/dashboard/funnel.csv", MARCH_QUERY).content != before


def test_manager_page_never_names_another_teams_deal_or_amount(client, manager, history):
    client.force_login(manager)
    for text in everything(client, MARCH_QUERY).values():
        assert "X outsider secret" not in text
        assert "99999" not in text and "99,999" not in text
        assert "outsider" not in text


def test_manager_cannot_pick_another_team(client, manager, other_team, history):
    client.force_login(manager)
    query = {**MARCH_QUERY, "team": other_team.pk}
    html = client.get(URL, query).content.decode()
    assert "Select a valid choice" in html
    assert 'id="panel-funnel"' not in html
    assert client.get("/reports/dashboard/funnel.csv", query).status_code == 400


def test_manager_cannot_pick_another_teams_rep(client, manager, outsider, history):
    client.force_login(manager)
    query = {**MARCH_QUERY, "owner": outsider.pk}
    assert client.get("/reports/dashboard/reps.csv", query).status_code == 400


def test_other_manager_sees_only_their_team(client, other_manager, history):
    """X is the West team's only deal: Lead in entered once, won once."""
    client.force_login(other_manager)
    rows = client.get("/reports/dashboard/funnel.csv", MARCH_QUERY).content.decode()
    assert "Lead in,1,1,100.0" in rows
    assert "Won,1,," in rows


def test_rep_sees_only_their_own_numbers(client, rep, history):
    """rep may see teammate's H on the board; the dashboard still leaves it out."""
    client.force_login(rep)
    outputs = everything(client, MARCH_QUERY)
    assert "H euro" not in outputs["page"]
    assert "EUR" not in outputs["pipeline"]
    assert 'name="team"' not in outputs["page"]
    assert 'name="owner"' not in outputs["page"]


def test_rep_cannot_widen_their_dashboard_with_filters(client, rep, teammate, team, history):
    """Team and owner are not filters a rep has: the query string cannot add them."""
    client.force_login(rep)
    query = {**MARCH_QUERY, "owner": teammate.pk, "team": team.pk}
    assert "EUR" not in client.get("/reports/dashboard/pipeline.csv", query).content.decode()


def test_manager_filter_menus_offer_only_their_teams_and_people(
    client, manager, rep, outsider, team, other_team, history
):
    client.force_login(manager)
    html = client.get(URL, MARCH_QUERY).content.decode()
    assert f'<option value="{team.pk}">{team.name}</option>' in html
    assert f">{other_team.name}</option>" not in html
    assert f">{rep.display_name}</option>" in html
    assert f">{outsider.display_name}</option>" not in html
