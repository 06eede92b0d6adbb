"""Writes on organizations, people, pipelines and entry criteria through the API: each one
a service action (contacts: anyone who sees the record; configuration: admins, 403 for
everyone else), refusals as problem+json, query counts pinned."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Organization, Person
from stages.models import ConfigChange, CriterionKind, EntryCriterion, Pipeline
from tests.factories import CriterionFactory, DealFactory, OrganizationFactory, PersonFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def queries_of(call) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as queries:
        response = call()
    return len(queries), response


# --- organizations and people ------------------------------------------------------------


def test_create_organization_records_its_creator(rep, api_for):
    response = api_for(rep).post(
        "/api/v1/organizations/",
        {"name": "  Acme  ", "employees": 12, "annual_revenue": "1000.50"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    row = Organization.objects.get()
    assert (row.name, row.employees, row.annual_revenue, row.created_by) == (
        "Acme",
        12,
        Decimal("1000.50"),
        rep,
    )
    assert response.json()["id"] == row.pk


def test_update_organization_seen_through_a_deal(rep, stages, api_for):
    org = OrganizationFactory(name="Old")
    DealFactory(owner=rep, stage=stages["lead"], organization=org)
    response = api_for(rep).patch(
        f"/api/v1/organizations/{org.pk}/", {"name": "New"}, format="json"
    )
    assert response.status_code == 200
    org.refresh_from_db()
    assert org.name == "New"


def test_another_teams_organization_is_404_and_unchanged(rep, outsider, stages, api_for):
    org = OrganizationFactory(name="Theirs")
    DealFactory(owner=outsider, stage=stages["lead"], organization=org)
    response = api_for(rep).patch(
        f"/api/v1/organizations/{org.pk}/", {"name": "Mine"}, format="json"
    )
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    org.refresh_from_db()
    assert org.name == "Theirs"


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x" * 201}, {"name": "A", "employees": -1}, {"name": "A", "id": 9}],
)
def test_bad_organization_input_is_400_and_creates_nothing(rep, api_for, body):
    response = api_for(rep).post("/api/v1/organizations/", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert not Organization.objects.exists()


def test_read_only_token_may_not_write_contacts(rep, api_for):
    from api.models import TokenScope

    response = api_for(rep, scope=TokenScope.READ).post(
        "/api/v1/organizations/", {"name": "Acme"}, format="json"
    )
    assert response.status_code == 403
    assert not Organization.objects.exists()


def test_create_person_at_a_visible_organization(rep, api_for):
    org = OrganizationFactory(created_by=rep)
    response = api_for(rep).post(
        "/api/v1/people/",
        {"name": "Ann", "email": "ann@example.com", "organization": org.pk},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert Person.objects.get().organization == org


def test_person_may_not_join_an_invisible_organization(rep, api_for):
    hidden = OrganizationFactory()
    mine = PersonFactory(organization=None, created_by=rep)
    client = api_for(rep)
    created = client.post(
        "/api/v1/people/", {"name": "Spy", "organization": hidden.pk}, format="json"
    )
    moved = client.patch(f"/api/v1/people/{mine.pk}/", {"organization": hidden.pk}, format="json")
    assert (created.status_code, moved.status_code) == (400, 400)  # an id it cannot name
    assert Person.objects.filter(organization=hidden).count() == 0


def test_person_with_a_bad_email_is_400(rep, api_for):
    response = api_for(rep).post(
        "/api/v1/people/", {"name": "Bad", "email": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert not Person.objects.exists()


def test_contact_write_query_counts_are_pinned(rep, api_for):
    client = api_for(rep)
    client.get("/api/v1/organizations/")

    def patch(org):
        return queries_of(
            lambda: client.patch(
                f"/api/v1/organizations/{org.pk}/", {"sector": "Retail"}, format="json"
            )
        )

    few, response = patch(OrganizationFactory(created_by=rep))
    assert response.status_code == 200
    for _ in range(10):
        OrganizationFactory(created_by=rep)
    many, _ = patch(OrganizationFactory(created_by=rep))
    assert few == many == 9


# --- configuration: admins only ---------------------------------------------------------------


def test_admin_creates_renames_archives_and_restores_a_pipeline(admin_user, pipeline, api_for):
    client = api_for(admin_user)
    created = client.post("/api/v1/pipelines/", {"name": "Renewals"}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert (
        client.patch(f"/api/v1/pipelines/{pk}/", {"name": "Upsell"}, format="json").json()["name"]
        == "Upsell"
    )
    assert client.patch(f"/api/v1/pipelines/{pk}/", {"is_archived": True}, format="json").json()[
        "is_archived"
    ]
    restored = client.patch(f"/api/v1/pipelines/{pk}/", {"is_archived": False}, format="json")
    assert restored.json()["is_archived"] is False
    assert ConfigChange.objects.filter(pipeline_id=pk).count() == 4  # each one audited


@pytest.mark.parametrize("who", ["rep", "manager"])
def test_others_get_403_on_configuration_writes(request, who, pipeline, stages, api_for):
    client = api_for(request.getfixturevalue(who))
    criterion = CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget"
    )
    answers = [
        client.post("/api/v1/pipelines/", {"name": "X"}, format="json"),
        client.patch(f"/api/v1/pipelines/{pipeline.pk}/", {"name": "X"}, format="json"),
        client.post(
            "/api/v1/criteria/",
            {"stage": stages["lead"].pk, "kind": "checklist", "label": "X"},
            format="json",
        ),
        client.patch(f"/api/v1/criteria/{criterion.pk}/", {"label": "X"}, format="json"),
        client.delete(f"/api/v1/criteria/{criterion.pk}/"),
    ]
    assert [a.status_code for a in answers] == [403] * 5
    assert all(a["Content-Type"] == PROBLEM for a in answers)
    assert Pipeline.objects.count() == 1 and EntryCriterion.objects.get().label == "Budget"


def test_the_last_active_pipeline_cannot_be_archived_422(admin_user, pipeline, api_for):
    response = api_for(admin_user).patch(
        f"/api/v1/pipelines/{pipeline.pk}/", {"is_archived": True}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:pipeline-crm:problem:config-error"


def test_admin_adds_changes_and_removes_a_criterion(admin_user, stages, api_for):
    client = api_for(admin_user)
    created = client.post(
        "/api/v1/criteria/",
        {"stage": stages["proposal"].pk, "kind": "amount_at_least", "amount": "500"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["kind"], body["amount"], body["requirement"]) == (
        "amount_at_least",
        "500.00",
        EntryCriterion.objects.get().requirement,
    )
    changed = client.patch(f"/api/v1/criteria/{body['id']}/", {"amount": "750"}, format="json")
    assert changed.json()["amount"] == "750.00"
    assert client.get("/api/v1/criteria/").json()[0]["id"] == body["id"]
    assert client.delete(f"/api/v1/criteria/{body['id']}/").status_code == 204
    assert not EntryCriterion.objects.exists()


def test_a_criterion_missing_its_parameter_is_422_from_the_service(admin_user, stages, api_for):
    response = api_for(admin_user).post(
        "/api/v1/criteria/",
        {"stage": stages["proposal"].pk, "kind": "field_required", "field_name": "nope"},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "Choose which deal field must be filled in."
    assert not EntryCriterion.objects.exists()


def test_criteria_list_query_count_does_not_grow(rep, stages, api_for):
    client = api_for(rep)
    client.get("/api/v1/criteria/")
    CriterionFactory(stage=stages["lead"], kind=CriterionKind.CHECKLIST, label="A")
    few, _ = queries_of(lambda: client.get("/api/v1/criteria/"))
    for n in range(10):
        CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label=f"B{n}")
    many, response = queries_of(lambda: client.get("/api/v1/criteria/"))
    assert response.status_code == 200 and len(response.json()) == 11
    assert few == many
