"""The organization and person pickers: search, choose, change, create inline."""

from __future__ import annotations

import json
import re

from django.urls import reverse

from contacts.models import Organization, Person
from tests.factories import DealFactory, OrganizationFactory, PersonFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


def pick(client, kind, **params):
    return client.get(reverse(f"contacts:{kind}_pick"), params, **HTMX)


def test_search_lists_visible_matches_with_prefix_matches_first(client_for, rep, outsider, stages):
    OrganizationFactory(name="Big Acme", created_by=rep)
    OrganizationFactory(name="Acme", created_by=rep)
    DealFactory(
        owner=outsider, stage=stages["lead"], organization=OrganizationFactory(name="Acme X")
    )
    response = pick(client_for(rep), "organization", field="organization", q="acme")
    assert [o.name for o in response.context["options"]] == ["Acme", "Big Acme"]
    assert "Acme X" not in response.content.decode()


def test_each_option_chooses_itself_into_the_picker(client_for, rep):
    org = OrganizationFactory(name="Acme", created_by=rep)
    html = pick(client_for(rep), "organization", field="organization", q="ac").content.decode()
    assert f"?field=organization&amp;chosen={org.pk}" in html
    assert 'hx-target="#organization-picker"' in html


def test_choosing_fills_the_hidden_input(client_for, rep):
    org = OrganizationFactory(name="Acme", created_by=rep)
    html = pick(client_for(rep), "organization", field="organization", chosen=org.pk).content
    html = html.decode()
    assert (
        f'<input type="hidden" name="organization" id="id_organization" value="{org.pk}">' in html
    )
    assert "Acme" in html
    assert "autofocus" in html  # focus lands on "Change" for keyboard users


def test_choosing_an_invisible_record_is_404(client_for, rep, outsider, stages):
    person = PersonFactory()
    DealFactory(owner=outsider, stage=stages["lead"], person=person)
    response = pick(client_for(rep), "person", field="person", chosen=person.pk)
    assert response.status_code == 404


def test_change_answers_the_empty_picker(client_for, rep):
    html = pick(client_for(rep), "person", field="contact", clear=1).content.decode()
    assert '<input type="hidden" name="contact" id="id_contact" value="">' in html
    assert 'id="contact-picker-q"' in html


def test_exact_match_is_not_offered_for_creation(client_for, rep):
    OrganizationFactory(name="Acme", created_by=rep)
    client = client_for(rep)
    assert not pick(client, "organization", field="organization", q="ACME").context["offer_create"]
    assert pick(client, "organization", field="organization", q="Acm").context["offer_create"]


def test_create_offer_carries_the_typed_name_as_valid_json(client_for, rep):
    typed = 'Bob\'s "Best" <Co> & \\'
    html = pick(client_for(rep), "organization", field="organization", q=typed).content.decode()
    [vals] = re.findall(r"hx-vals='([^']*)' hx-target=\"#organization-picker\"", html)
    assert json.loads(vals.replace("&amp;", "&")) == {"field": "organization", "new_name": typed}


def test_create_makes_the_record_and_answers_it_chosen(client_for, rep):
    client = client_for(rep)
    response = client.post(
        reverse("contacts:organization_pick"),
        {"field": "organization", "new_name": "  Newco  "},
        **HTMX,
    )
    org = Organization.objects.get()
    assert response.status_code == 201
    assert (org.name, org.created_by) == ("Newco", rep)
    assert (
        f'name="organization" id="id_organization" value="{org.pk}"' in response.content.decode()
    )


def test_created_person_stays_visible_to_its_creator(client_for, rep):
    client = client_for(rep)
    client.post(reverse("contacts:person_pick"), {"field": "person", "new_name": "Newbie"}, **HTMX)
    person = Person.objects.get()
    assert Person.objects.visible_to(rep).filter(pk=person.pk).exists()


def test_create_with_blank_name_is_refused_with_a_message(client_for, rep):
    response = client_for(rep).post(
        reverse("contacts:person_pick"), {"field": "person", "new_name": "   "}, **HTMX
    )
    assert response.status_code == 422
    assert "Enter a name." in response.content.decode()
    assert not Person.objects.exists()


def test_field_name_must_be_safe_in_ids(client_for, rep):
    response = pick(client_for(rep), "organization", field='x"><script>', q="a")
    assert response.status_code == 400


def test_options_escape_names(client_for, rep):
    PersonFactory(name="<b>Bold</b>", created_by=rep, organization=None)
    html = pick(client_for(rep), "person", field="person", q="bold").content.decode()
    assert "<b>Bold</b>" not in html
    assert "&lt;b&gt;Bold&lt;/b&gt;" in html


PICK_QUERIES = 3  # session, user, options


def test_search_query_count_is_fixed(client_for, rep, django_assert_num_queries):
    Organization.objects.bulk_create(
        Organization(name=f"Acme {i}", created_by=rep) for i in range(30)
    )
    client = client_for(rep)
    with django_assert_num_queries(PICK_QUERIES):
        response = pick(client, "organization", field="organization", q="acme")
    assert len(response.context["options"]) == 8


def test_person_search_query_count_includes_organizations(
    client_for, rep, django_assert_num_queries
):
    for i in range(10):
        PersonFactory(name=f"Pat {i}", created_by=rep)
    client = client_for(rep)
    with django_assert_num_queries(PICK_QUERIES):
        html = pick(client, "person", field="person", q="pat").content.decode()
    assert html.count('class="picker-option"') == 8
