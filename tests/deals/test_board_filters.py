"""Board filters live in the URL; totals follow them; bad values are ignored, never fatal."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deals.models import StalledFlag
from tests.factories import ActivityFactory, DealFactory, OrganizationFactory, PersonFactory


@pytest.fixture
def board_for():
    def get(user, **params):
        client = Client()
        client.force_login(user)
        response = client.get(reverse("board"), params)
        assert response.status_code == 200
        return {
            card.title for column in response.context["columns"] for card in column.cards
        }, response

    return get


def test_owner_me_shows_only_my_deals(board_for, rep, teammate, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Mine")
    DealFactory(owner=teammate, stage=stages["lead"], title="Theirs")
    titles, _ = board_for(rep, owner="me")
    assert titles == {"Mine"}


def test_owner_filter_by_teammate(board_for, rep, teammate, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Mine")
    DealFactory(owner=teammate, stage=stages["lead"], title="Theirs")
    titles, _ = board_for(rep, owner=teammate.pk)
    assert titles == {"Theirs"}


def test_owner_filter_cannot_widen_visibility(board_for, rep, outsider, stages):
    DealFactory(owner=outsider, stage=stages["lead"], title="Foreign")
    titles, _ = board_for(rep, owner=outsider.pk)
    assert titles == set()


def test_team_filter_for_admin(board_for, admin_user, rep, outsider, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="East deal")
    DealFactory(owner=outsider, stage=stages["lead"], title="West deal")
    titles, _ = board_for(admin_user, team=outsider.team_id)
    assert titles == {"West deal"}


def test_text_search_matches_title_organization_and_person(board_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Alpha renewal")
    DealFactory(
        owner=rep,
        stage=stages["lead"],
        title="B",
        organization=OrganizationFactory(name="Alphaco"),
    )
    DealFactory(owner=rep, stage=stages["lead"], title="C", person=PersonFactory(name="Al Phabet"))
    DealFactory(owner=rep, stage=stages["lead"], title="Unrelated")
    titles, _ = board_for(rep, q="alpha")
    assert titles == {"Alpha renewal", "B"}


def test_close_date_range(board_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Jan", expected_close_date=date(2027, 1, 5))
    DealFactory(owner=rep, stage=stages["lead"], title="Mar", expected_close_date=date(2027, 3, 5))
    titles, _ = board_for(rep, close_from="2027-01-01", close_to="2027-01-31")
    assert titles == {"Jan"}


def test_stalled_only_uses_stored_flags(board_for, rep, stages):
    stalled = DealFactory(owner=rep, stage=stages["lead"], title="Stuck")
    DealFactory(owner=rep, stage=stages["lead"], title="Fine")
    StalledFlag.objects.create(deal=stalled, rule="no_next_step")
    titles, _ = board_for(rep, stalled="on")
    assert titles == {"Stuck"}


def test_no_next_activity_filter(board_for, rep, stages):
    planned = DealFactory(owner=rep, stage=stages["lead"], title="Planned")
    ActivityFactory(deal=planned)
    DealFactory(owner=rep, stage=stages["lead"], title="Idle")
    titles, _ = board_for(rep, no_next="on")
    assert titles == {"Idle"}


def test_totals_follow_the_filters(board_for, rep, teammate, stages):
    DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("100"))
    DealFactory(owner=teammate, stage=stages["lead"], amount=Decimal("900"))
    _, response = board_for(rep, owner="me")
    lead = response.context["columns"][0]
    assert lead.count == 1 and lead.totals[0].amount == Decimal("100")


def test_totals_never_add_different_currencies(board_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("100"), currency="USD")
    DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("50"), currency="EUR")
    _, response = board_for(rep)
    totals = {t.currency: t.amount for t in response.context["columns"][0].totals}
    assert totals == {"EUR": Decimal("50"), "USD": Decimal("100")}


def test_sort_by_amount(board_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Small", amount=Decimal("1"), position=0)
    DealFactory(owner=rep, stage=stages["lead"], title="Big", amount=Decimal("9"), position=1)
    _, response = board_for(rep, sort="amount")
    assert [c.title for c in response.context["columns"][0].cards] == ["Big", "Small"]


def test_sort_by_days_in_stage(board_for, rep, stages):
    now = timezone.now()
    DealFactory(owner=rep, stage=stages["lead"], title="New", stage_entered_at=now, position=0)
    DealFactory(
        owner=rep,
        stage=stages["lead"],
        title="Old",
        stage_entered_at=now - timedelta(days=9),
        position=1,
    )
    _, response = board_for(rep, sort="days_in_stage")
    assert [c.title for c in response.context["columns"][0].cards] == ["Old", "New"]


@pytest.mark.parametrize(
    "params",
    [
        {"owner": "abc"},
        {"close_from": "2027-02-30"},
        {"sort": "drop table"},
        {"team": "-1"},
        {"q": "x" * 500},
    ],
)
def test_bad_filter_values_are_ignored(board_for, rep, stages, params):
    DealFactory(owner=rep, stage=stages["lead"], title="Still here")
    titles, _ = board_for(rep, **params)
    assert "Still here" in titles


@pytest.mark.parametrize("value", ["nope", "²", "-1", str(10**20)])
def test_a_pipeline_id_that_is_not_a_whole_number_is_refused(rep, stages, value):
    client = Client()
    client.force_login(rep)
    assert client.get(reverse("board"), {"pipeline": value}).status_code == 400


def test_filtered_board_query_count_is_fixed(rep, stages, django_assert_num_queries):
    client = Client()
    client.force_login(rep)
    for i in range(30):
        DealFactory(owner=rep, stage=stages["lead"], title=f"Alpha {i}")
    with django_assert_num_queries(9):
        client.get(
            reverse("board"), {"owner": "me", "q": "alpha", "stalled": "", "sort": "amount"}
        )


def _options(html: str, name: str) -> list[str]:
    select = html.split(f'<select name="{name}">', 1)[1].split("</select>", 1)[0]
    return [part.split(">", 1)[1].split("<", 1)[0] for part in select.split("<option")[1:]]


def test_team_filter_offers_each_team_once_in_name_order(admin_user, team, other_team):
    from tests.factories import UserFactory

    # Owners sort by first name, which interleaves the teams: East, West, East.
    UserFactory(first_name="Ann", team=team)
    UserFactory(first_name="Bob", team=other_team)
    UserFactory(first_name="Cid", team=team)
    DealFactory(owner=admin_user)
    client = Client()
    client.force_login(admin_user)
    html = client.get(reverse("board")).content.decode()
    assert _options(html, "team") == ["All teams", "East", "West"]


def test_owner_filter_lists_people_by_name(admin_user, team):
    from tests.factories import UserFactory

    UserFactory(first_name="Zoe", last_name="B", team=team)
    UserFactory(first_name="Zoe", last_name="A", team=team)
    DealFactory(owner=admin_user)
    client = Client()
    client.force_login(admin_user)
    names = _options(client.get(reverse("board")).content.decode(), "owner")
    zoes = [n for n in names if n.startswith("Zoe")]
    assert zoes == ["Zoe A", "Zoe B"]
