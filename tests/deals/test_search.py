"""Global search: header box (zero queries), htmx dropdown, full page; visibility; queries."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from tests.factories import DealFactory, OrganizationFactory, PersonFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def found(rep, teammate, outsider, stages):
    """A matching deal, organization and person for each team; 'Zenith' is the search term."""
    ours = OrganizationFactory(name="Zenith Labs")
    DealFactory(owner=teammate, stage=stages["lead"], organization=ours, title="Renewal")
    theirs = OrganizationFactory(name="Zenith Holdings")
    DealFactory(
        owner=outsider,
        stage=stages["lead"],
        organization=theirs,
        person=PersonFactory(name="Zed Zenith", organization=theirs),
        title="Zenith secret",
    )
    PersonFactory(name="Zoe Zenith", organization=None, created_by=rep)
    return {"ours": ours, "theirs": theirs}


def search(client, q, *, htmx=False):
    return client.get(reverse("search"), {"q": q}, **(HTMX if htmx else {}))


def test_search_requires_login(client, db):
    assert search(client, "zenith").status_code == 302


def test_finds_visible_deals_organizations_and_people(client_for, rep, found):
    response = search(client_for(rep), "zenith")
    assert [d.title for d in response.context["deals"].rows] == ["Renewal"]
    assert [o.name for o in response.context["organizations"].rows] == ["Zenith Labs"]
    assert [p.name for p in response.context["people"].rows] == ["Zoe Zenith"]


def test_never_shows_other_teams_records(client_for, rep, found):
    html = search(client_for(rep), "zenith").content.decode()
    assert "Zenith Holdings" not in html
    assert "Zenith secret" not in html
    assert "Zed Zenith" not in html


def test_outsider_finds_their_own_team_records(client_for, outsider, found):
    response = search(client_for(outsider), "zenith")
    assert [d.title for d in response.context["deals"].rows] == ["Zenith secret"]
    assert [o.name for o in response.context["organizations"].rows] == ["Zenith Holdings"]
    assert [p.name for p in response.context["people"].rows] == ["Zed Zenith"]


def test_manager_finds_managed_teams_records_only(client_for, manager, found):
    response = search(client_for(manager), "zenith")
    assert [d.title for d in response.context["deals"].rows] == ["Renewal"]
    assert [o.name for o in response.context["organizations"].rows] == ["Zenith Labs"]


def test_admin_finds_everything(client_for, admin_user, found):
    response = search(client_for(admin_user), "zenith")
    assert len(response.context["deals"].rows) == 2
    assert len(response.context["organizations"].rows) == 2
    assert len(response.context["people"].rows) == 2


def test_deals_match_by_person_name(client_for, outsider, found):
    response = search(client_for(outsider), "zed")
    assert [d.title for d in response.context["deals"].rows] == ["Zenith secret"]


def test_htmx_answers_the_dropdown_fragment_only(client_for, rep, found):
    response = search(client_for(rep), "zenith", htmx=True)
    html = response.content.decode()
    assert '<div class="search-dropdown"' in html
    assert "<html" not in html
    assert f"{reverse('search')}?q=zenith" in html  # "All results" for the full page
    assert "HX-Request" in response["Vary"]


def test_dropdown_shows_top_five_of_each_kind(client_for, rep, stages):
    for i in range(7):
        DealFactory(owner=rep, stage=stages["lead"], title=f"Quasar {i}")
    response = search(client_for(rep), "quasar", htmx=True)
    assert len(response.context["deals"].rows) == 5
    assert response.context["deals"].more


def test_full_page_works_without_javascript(client_for, rep, found):
    html = search(client_for(rep), "zenith").content.decode()
    assert "<html" in html
    assert 'action="/search/"' in html
    assert "Zenith Labs" in html


def test_one_letter_does_not_search(client_for, rep, found, django_assert_num_queries):
    client = client_for(rep)
    with django_assert_num_queries(2):  # session, user
        response = search(client, "z", htmx=True)
    assert "at least 2 characters" in response.content.decode()


def test_empty_query_clears_the_dropdown(client_for, rep):
    response = search(client_for(rep), "", htmx=True)
    assert response.content.decode().strip() == ""


def test_results_are_html_escaped(client_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="<script>alert('x')</script> deal")
    html = search(client_for(rep), "script", htmx=True).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html


SEARCH_QUERIES = 5  # session, user, deals, organizations, people


def test_dropdown_query_count_is_fixed_with_few_rows(
    client_for, rep, found, django_assert_num_queries
):
    client = client_for(rep)
    with django_assert_num_queries(SEARCH_QUERIES):
        search(client, "zenith", htmx=True)


def test_dropdown_query_count_is_fixed_with_many_rows(
    client_for, rep, teammate, stages, django_assert_num_queries
):
    for i in range(20):
        org = OrganizationFactory(name=f"Zenith {i}")
        person = PersonFactory(name=f"Zenith person {i}", organization=org)
        DealFactory(
            owner=rep if i % 2 else teammate, stage=stages["lead"], organization=org, person=person
        )
    client = client_for(rep)
    with django_assert_num_queries(SEARCH_QUERIES):
        response = search(client, "zenith", htmx=True)
    assert response.context["people"].more


def test_full_page_query_count_is_fixed(client_for, rep, found, stages, django_assert_num_queries):
    for i in range(30):
        DealFactory(owner=rep, stage=stages["lead"], title=f"Zenith {i}", history=False)
    client = client_for(rep)
    with django_assert_num_queries(SEARCH_QUERIES + 1):  # and the notification bell
        response = search(client, "zenith")
    assert len(response.context["deals"].rows) == 25


def test_header_box_renders_without_touching_the_database(rep, django_assert_num_queries):
    request = RequestFactory().get("/")
    request.user = rep
    with django_assert_num_queries(0):
        html = render_to_string("deals/_search_box.html", {"csp_nonce": "n"}, request=request)
    assert 'hx-get="/search/"' in html
    assert 'hx-trigger="input changed delay:250ms, search"' in html
