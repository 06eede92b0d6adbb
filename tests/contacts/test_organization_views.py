"""Organization pages: list, detail, create and edit; access, validation, escaping, queries."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from contacts.models import Organization
from tests.factories import ActivityFactory, DealFactory, OrganizationFactory, PersonFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def acme(rep, stages):
    org = OrganizationFactory(name="Acme Corp")
    DealFactory(owner=rep, stage=stages["lead"], organization=org, title="Acme rollout")
    return org


def test_list_requires_login(client, db):
    response = client.get(reverse("contacts:organizations"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_list_shows_visible_organizations_only(client_for, rep, outsider, acme, stages):
    hidden = OrganizationFactory(name="Globex")
    DealFactory(owner=outsider, stage=stages["lead"], organization=hidden)
    html = client_for(rep).get(reverse("contacts:organizations")).content.decode()
    assert "Acme Corp" in html
    assert "Globex" not in html


def test_list_counts_only_visible_deals(client_for, rep, outsider, acme, stages):
    DealFactory(owner=outsider, stage=stages["lead"], organization=acme)
    response = client_for(rep).get(reverse("contacts:organizations"))
    [row] = response.context["page"].object_list
    assert row.deal_count == 1


def test_list_filters_by_name(client_for, rep, acme):
    OrganizationFactory(name="Initech", created_by=rep)
    response = client_for(rep).get(reverse("contacts:organizations"), {"q": "acm"})
    assert [o.name for o in response.context["page"]] == ["Acme Corp"]


def test_list_search_with_htmx_answers_only_the_results(client_for, rep, acme):
    response = client_for(rep).get(reverse("contacts:organizations"), {"q": "acme"}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_list_is_paginated_by_25(client_for, rep):
    Organization.objects.bulk_create(
        Organization(name=f"Org {i:02}", created_by=rep) for i in range(30)
    )
    client = client_for(rep)
    first = client.get(reverse("contacts:organizations"))
    second = client.get(reverse("contacts:organizations"), {"page": 2})
    assert len(first.context["page"]) == 25
    assert [o.name for o in second.context["page"]] == [f"Org {i}" for i in range(25, 30)]


LIST_QUERIES = 5  # session, user, count, page of rows, unread-notification bell


def test_list_query_count_is_fixed_with_few_rows(client_for, rep, acme, django_assert_num_queries):
    client = client_for(rep)
    with django_assert_num_queries(LIST_QUERIES):
        assert client.get(reverse("contacts:organizations")).status_code == 200


def test_list_query_count_is_fixed_with_many_rows(
    client_for, rep, teammate, stages, django_assert_num_queries
):
    for i in range(40):
        org = OrganizationFactory(name=f"Org {i}")
        DealFactory(owner=rep if i % 2 else teammate, stage=stages["lead"], organization=org)
    client = client_for(rep)
    with django_assert_num_queries(LIST_QUERIES):
        response = client.get(reverse("contacts:organizations"), {"q": "org"})
    assert len(response.context["page"]) == 25


def test_detail_shows_visible_deals_people_and_activities(client_for, rep, acme, stages):
    deal = acme.deals.get()
    PersonFactory(name="Wile Coyote", organization=acme, created_by=rep)
    ActivityFactory(deal=deal, subject="Kick-off call")
    html = client_for(rep).get(reverse("contacts:organization", args=[acme.pk])).content.decode()
    assert "Acme rollout" in html
    assert "Wile Coyote" in html
    assert "Kick-off call" in html


def test_detail_hides_deals_of_other_teams_at_the_same_organization(
    client_for, rep, outsider, acme, stages
):
    secret = DealFactory(owner=outsider, stage=stages["lead"], organization=acme, title="Secret")
    ActivityFactory(deal=secret, subject="Secret call")
    html = client_for(rep).get(reverse("contacts:organization", args=[acme.pk])).content.decode()
    assert "Secret" not in html


@pytest.mark.parametrize("viewer", ["outsider", "other_manager"])
def test_detail_of_invisible_organization_is_404(client_for, request, acme, viewer):
    user = request.getfixturevalue(viewer)
    response = client_for(user).get(reverse("contacts:organization", args=[acme.pk]))
    assert response.status_code == 404


@pytest.mark.parametrize("viewer", ["teammate", "manager", "admin_user"])
def test_detail_is_open_to_team_manager_and_admin(client_for, request, acme, viewer):
    user = request.getfixturevalue(viewer)
    response = client_for(user).get(reverse("contacts:organization", args=[acme.pk]))
    assert response.status_code == 200


def test_edit_of_invisible_organization_is_404(client_for, outsider, acme):
    client = client_for(outsider)
    url = reverse("contacts:organization_edit", args=[acme.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "Taken over"}).status_code == 404
    acme.refresh_from_db()
    assert acme.name == "Acme Corp"


DETAIL_QUERIES = 7  # session, user, organization, deals, people, activities, bell


def test_detail_query_count_is_fixed_with_few_rows(
    client_for, rep, acme, django_assert_num_queries
):
    client = client_for(rep)
    with django_assert_num_queries(DETAIL_QUERIES):
        client.get(reverse("contacts:organization", args=[acme.pk]))


def test_detail_query_count_is_fixed_with_many_rows(
    client_for, rep, teammate, acme, stages, django_assert_num_queries
):
    for i in range(12):
        deal = DealFactory(
            owner=rep if i % 2 else teammate, stage=stages["demo"], organization=acme
        )
        ActivityFactory(deal=deal, person=PersonFactory(organization=acme))
    client = client_for(rep)
    with django_assert_num_queries(DETAIL_QUERIES):
        response = client.get(reverse("contacts:organization", args=[acme.pk]))
    assert len(response.context["deals"]) == 13


def test_create_records_creator_and_redirects_to_the_page(client_for, rep):
    response = client_for(rep).post(
        reverse("contacts:organization_create"),
        {"name": "  Umbrella  ", "employees": "120", "annual_revenue": "1000000"},
    )
    org = Organization.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("contacts:organization", args=[org.pk])
    assert (org.name, org.employees, org.created_by) == ("Umbrella", 120, rep)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "Enter a name."),
        ({"name": "x" * 201}, "name", "Keep the name to 200 characters or fewer (it has 201)."),
        ({"name": "A", "employees": "-1"}, "employees", "cannot be negative"),
        ({"name": "A", "annual_revenue": "-5"}, "annual_revenue", "cannot be negative"),
        ({"name": "A", "website": "not a url"}, "website", "Enter a web address"),
    ],
)
def test_create_rejects_invalid_input_with_a_clear_message(client_for, rep, data, field, message):
    response = client_for(rep).post(reverse("contacts:organization_create"), data)
    assert response.status_code == 422
    assert message in " ".join(response.context["form"].errors[field])
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert not Organization.objects.exists()


def test_edit_changes_fields(client_for, teammate, acme):
    response = client_for(teammate).post(
        reverse("contacts:organization_edit", args=[acme.pk]),
        {"name": "Acme Inc", "sector": "Anvils", "website": "acme.example"},
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.name, acme.sector, acme.website) == ("Acme Inc", "Anvils", "https://acme.example")


def test_names_are_html_escaped_everywhere(client_for, rep, stages):
    org = OrganizationFactory(name="<script>alert(1)</script>", created_by=rep)
    client = client_for(rep)
    for url in (
        reverse("contacts:organizations"),
        reverse("contacts:organization", args=[org.pk]),
        reverse("contacts:organization_edit", args=[org.pk]),
    ):
        html = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_website_without_http_scheme_is_not_linked(client_for, rep):
    org = OrganizationFactory(name="Evil", website="javascript:alert(1)", created_by=rep)
    html = client_for(rep).get(reverse("contacts:organization", args=[org.pk])).content.decode()
    assert 'href="javascript:' not in html


def test_organization_csv_export_is_scoped_and_neutralised(rep, outsider, stages):
    from django.urls import reverse

    from tests.factories import DealFactory, OrganizationFactory

    mine = OrganizationFactory(name="=cmd|calc")
    DealFactory(owner=rep, stage=stages["lead"], organization=mine)
    DealFactory(
        owner=outsider, stage=stages["lead"], organization=OrganizationFactory(name="Hidden")
    )
    client = Client()
    client.force_login(rep)
    response = client.get(reverse("contacts:organizations"), {"format": "csv"})
    body = response.content.decode()
    assert response["Content-Type"].startswith("text/csv")
    assert "'=cmd|calc" in body and "Hidden" not in body


def test_people_csv_export_is_scoped(rep, outsider, stages):
    from django.urls import reverse

    from tests.factories import DealFactory, PersonFactory

    DealFactory(owner=rep, stage=stages["lead"], person=PersonFactory(name="Visible Vera"))
    DealFactory(owner=outsider, stage=stages["lead"], person=PersonFactory(name="Secret Sam"))
    client = Client()
    client.force_login(rep)
    body = client.get(reverse("contacts:people"), {"format": "csv"}).content.decode()
    assert "Visible Vera" in body and "Secret Sam" not in body


def test_name_suggestions_offer_only_visible_organizations(rep, outsider, stages):
    from django.urls import reverse

    from tests.factories import DealFactory, OrganizationFactory

    DealFactory(owner=rep, stage=stages["lead"], organization=OrganizationFactory(name="Acme <b>"))
    DealFactory(
        owner=outsider, stage=stages["lead"], organization=OrganizationFactory(name="Acme X")
    )
    client = Client()
    client.force_login(rep)
    html = client.get(
        reverse("contacts:organization_suggest"), {"organization_name": "acme"}
    ).content.decode()
    assert '<option value="Acme &lt;b&gt;">' in html
    assert "Acme X" not in html


def test_deal_form_searches_names_as_you_type(rep, stages):
    from django.urls import reverse

    client = Client()
    client.force_login(rep)
    html = client.get(reverse("deal_new")).content.decode()
    assert 'list="organization-suggestions"' in html
    assert f'hx-get="{reverse("contacts:organization_suggest")}"' in html
