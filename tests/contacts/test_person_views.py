"""People pages: list, detail, create and edit; access, validation, escaping, queries."""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts.models import Person
from deals.models import DealContact
from tests.factories import ActivityFactory, DealFactory, OrganizationFactory, PersonFactory


@pytest.fixture
def road_runner(rep, stages):
    person = PersonFactory(name="Road Runner", email="beep@example.com")
    DealFactory(owner=rep, stage=stages["lead"], person=person, title="Birdseed deal")
    return person


def test_list_shows_visible_people_only(client_for, rep, outsider, road_runner, stages):
    DealFactory(owner=outsider, stage=stages["lead"], person=PersonFactory(name="Hidden Hal"))
    html = client_for(rep).get(reverse("contacts:people")).content.decode()
    assert "Road Runner" in html
    assert "Hidden Hal" not in html


def test_list_filters_by_name_or_email(client_for, rep, road_runner):
    PersonFactory(name="Wile", email="coyote@example.com", created_by=rep)
    client = client_for(rep)
    by_email = client.get(reverse("contacts:people"), {"q": "coyote"}).context["page"]
    by_name = client.get(reverse("contacts:people"), {"q": "road"}).context["page"]
    assert [p.name for p in by_email] == ["Wile"]
    assert [p.name for p in by_name] == ["Road Runner"]


def test_list_links_the_organization_only_when_it_is_visible(client_for, rep, outsider, stages):
    shown = OrganizationFactory(name="Shown Org", created_by=rep)
    hidden = OrganizationFactory(name="Hidden Org")
    DealFactory(owner=outsider, stage=stages["lead"], organization=hidden)
    PersonFactory(name="At shown", organization=shown, created_by=rep)
    PersonFactory(name="At hidden", organization=hidden, created_by=rep)
    html = client_for(rep).get(reverse("contacts:people")).content.decode()
    assert reverse("contacts:organization", args=[shown.pk]) in html
    assert "Hidden Org" in html
    assert reverse("contacts:organization", args=[hidden.pk]) not in html


LIST_QUERIES = 5  # session, user, count, page of rows, unread-notification bell


def test_list_query_count_is_fixed_with_few_rows(
    client_for, rep, road_runner, django_assert_num_queries
):
    client = client_for(rep)
    with django_assert_num_queries(LIST_QUERIES):
        assert client.get(reverse("contacts:people")).status_code == 200


def test_list_query_count_is_fixed_with_many_rows(
    client_for, rep, teammate, stages, django_assert_num_queries
):
    for i in range(40):
        DealFactory(owner=rep if i % 2 else teammate, stage=stages["lead"], person=PersonFactory())
    client = client_for(rep)
    with django_assert_num_queries(LIST_QUERIES):
        response = client.get(reverse("contacts:people"))
    assert len(response.context["page"]) == 25


def test_detail_lists_deals_where_the_person_holds_a_contact_role(client_for, rep, stages):
    person = PersonFactory(name="Decider", organization=None)
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Role deal")
    DealContact.objects.create(deal=deal, person=person, role="decision_maker")
    response = client_for(rep).get(reverse("contacts:person", args=[person.pk]))
    assert [d.title for d in response.context["deals"]] == ["Role deal"]


def test_detail_shows_activities_with_the_person(client_for, rep, road_runner):
    ActivityFactory(deal=road_runner.deals.get(), subject="Lunch")
    html = client_for(rep).get(reverse("contacts:person", args=[road_runner.pk])).content.decode()
    assert "Birdseed deal" in html
    assert "Lunch" in html


def test_detail_hides_other_teams_deals_with_the_same_person(
    client_for, rep, outsider, road_runner, stages
):
    DealFactory(owner=outsider, stage=stages["lead"], person=road_runner, title="Their deal")
    html = client_for(rep).get(reverse("contacts:person", args=[road_runner.pk])).content.decode()
    assert "Their deal" not in html


@pytest.mark.parametrize("viewer", ["outsider", "other_manager"])
def test_detail_and_edit_of_invisible_person_are_404(client_for, request, road_runner, viewer):
    client = client_for(request.getfixturevalue(viewer))
    assert client.get(reverse("contacts:person", args=[road_runner.pk])).status_code == 404
    assert client.get(reverse("contacts:person_edit", args=[road_runner.pk])).status_code == 404


@pytest.mark.parametrize("viewer", ["teammate", "manager", "admin_user"])
def test_detail_is_open_to_team_manager_and_admin(client_for, request, road_runner, viewer):
    client = client_for(request.getfixturevalue(viewer))
    assert client.get(reverse("contacts:person", args=[road_runner.pk])).status_code == 200


DETAIL_QUERIES = 6  # session, user, person (with organization), deals, activities, bell


def test_detail_query_count_is_fixed_with_few_rows(
    client_for, rep, road_runner, django_assert_num_queries
):
    client = client_for(rep)
    with django_assert_num_queries(DETAIL_QUERIES):
        client.get(reverse("contacts:person", args=[road_runner.pk]))


def test_detail_query_count_is_fixed_with_many_rows(
    client_for, rep, road_runner, stages, django_assert_num_queries
):
    for _ in range(10):
        deal = DealFactory(owner=rep, stage=stages["demo"], person=road_runner)
        ActivityFactory(deal=deal, person=road_runner)
    client = client_for(rep)
    with django_assert_num_queries(DETAIL_QUERIES):
        response = client.get(reverse("contacts:person", args=[road_runner.pk]))
    assert len(response.context["activities"]) == 10


def test_create_person_at_a_visible_organization(client_for, rep):
    org = OrganizationFactory(created_by=rep)
    response = client_for(rep).post(
        reverse("contacts:person_create"),
        {"name": "Daffy", "email": "daffy@example.com", "organization": org.pk},
    )
    person = Person.objects.get(name="Daffy")
    assert response.status_code == 302
    assert (person.organization, person.created_by) == (org, rep)


def test_create_refuses_an_organization_the_user_cannot_see(client_for, rep, outsider, stages):
    hidden = OrganizationFactory()
    DealFactory(owner=outsider, stage=stages["lead"], organization=hidden)
    response = client_for(rep).post(
        reverse("contacts:person_create"), {"name": "Daffy", "organization": hidden.pk}
    )
    assert response.status_code == 422
    assert "Choose an organization from the list." in response.content.decode()
    assert not Person.objects.filter(name="Daffy").exists()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "Enter a name."),
        ({"name": "x" * 201}, "name", "200 characters or fewer (it has 201)"),
        ({"name": "A", "email": "not-an-email"}, "email", "Enter a valid e-mail address"),
    ],
)
def test_create_rejects_invalid_input_with_a_clear_message(client_for, rep, data, field, message):
    response = client_for(rep).post(reverse("contacts:person_create"), data)
    assert response.status_code == 422
    assert message in " ".join(response.context["form"].errors[field])
    assert message in response.content.decode()
    assert not Person.objects.exists()


def test_failed_submission_keeps_the_chosen_organization_in_the_picker(client_for, rep):
    org = OrganizationFactory(name="Kept Org", created_by=rep)
    response = client_for(rep).post(
        reverse("contacts:person_create"), {"name": "", "organization": org.pk}
    )
    html = response.content.decode()
    assert f'name="organization" id="id_organization" value="{org.pk}"' in html
    assert "Kept Org" in html


def test_new_person_form_preselects_the_organization_it_came_from(client_for, rep):
    org = OrganizationFactory(name="Origin Org", created_by=rep)
    response = client_for(rep).get(reverse("contacts:person_create"), {"organization": org.pk})
    assert response.context["chosen_organization"] == org


def test_edit_keeps_an_employer_the_editor_cannot_see(client_for, rep, outsider, stages):
    hidden = OrganizationFactory(name="Hidden Org")
    DealFactory(owner=outsider, stage=stages["lead"], organization=hidden)
    person = PersonFactory(name="Mover", organization=hidden, created_by=rep)
    response = client_for(rep).post(
        reverse("contacts:person_edit", args=[person.pk]),
        {"name": "Mover", "job_title": "CTO", "organization": hidden.pk},
    )
    assert response.status_code == 302
    person.refresh_from_db()
    assert (person.organization, person.job_title) == (hidden, "CTO")


def test_person_name_is_html_escaped(client_for, rep):
    person = PersonFactory(name="<img src=x onerror=alert(1)>", created_by=rep)
    client = client_for(rep)
    for url in (reverse("contacts:people"), reverse("contacts:person", args=[person.pk])):
        html = client.get(url).content.decode()
        assert "<img src=x" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
