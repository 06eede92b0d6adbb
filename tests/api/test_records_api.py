"""Activities, contacts, configuration, people and the figures through the API."""

from __future__ import annotations

import pytest

from api.models import TokenScope
from stages.models import Stage
from tests.factories import ActivityFactory, DealFactory, OrganizationFactory, PersonFactory

pytestmark = pytest.mark.django_db


def test_activities_list_only_visible_deals_activities(rep, outsider, stages, api_for):
    mine = ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]))
    ActivityFactory(deal=DealFactory(owner=outsider, stage=stages["lead"]))
    results = api_for(rep).get("/api/v1/activities/").json()["results"]
    assert [a["id"] for a in results] == [mine.pk]


def test_log_activity_on_own_deal(rep, stages, api_for):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = api_for(rep).post(
        "/api/v1/activities/",
        {"deal": deal.pk, "type": "call", "subject": "Intro call", "done": True},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["done"] is True


def test_log_activity_on_teammates_deal_is_refused(rep, teammate, stages, api_for):
    deal = DealFactory(owner=teammate, stage=stages["lead"])
    response = api_for(rep).post(
        "/api/v1/activities/",
        {"deal": deal.pk, "type": "call", "subject": "Sneaky"},
        format="json",
    )
    assert response.status_code == 400
    assert not deal.activities.exists()


def test_complete_and_delete_activity(rep, stages, api_for):
    activity = ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]), owner=rep)
    client = api_for(rep)
    done = client.patch(f"/api/v1/activities/{activity.pk}/", {"done": True}, format="json")
    assert done.status_code == 200 and done.json()["done"] is True
    assert client.delete(f"/api/v1/activities/{activity.pk}/").status_code == 204


def test_teammate_may_see_but_not_change_an_activity(rep, teammate, stages, api_for):
    activity = ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]), owner=rep)
    client = api_for(teammate)
    assert client.get(f"/api/v1/activities/{activity.pk}/").status_code == 200
    assert client.delete(f"/api/v1/activities/{activity.pk}/").status_code == 403


def test_organizations_and_people_are_scoped(rep, outsider, stages, api_for):
    hidden = OrganizationFactory(name="Hidden", created_by=outsider)
    DealFactory(owner=outsider, stage=stages["lead"], organization=hidden)
    person = PersonFactory(organization=hidden, created_by=outsider)
    client = api_for(rep)
    assert client.get(f"/api/v1/organizations/{hidden.pk}/").status_code == 404
    assert client.get(f"/api/v1/people/{person.pk}/").status_code == 404
    assert hidden.pk not in [
        o["id"] for o in client.get("/api/v1/organizations/").json()["results"]
    ]


def test_everyone_reads_pipelines_and_stages(rep, stages, api_for):
    client = api_for(rep, TokenScope.READ)
    assert len(client.get("/api/v1/stages/").json()) == 6
    assert client.get(f"/api/v1/pipelines/{stages['lead'].pipeline_id}/").status_code == 200


def test_admin_creates_and_updates_a_stage(admin_user, stages, api_for):
    client = api_for(admin_user)
    response = client.post(
        "/api/v1/stages/",
        {"pipeline": stages["lead"].pipeline_id, "name": "Negotiation", "probability": 70},
        format="json",
    )
    assert response.status_code == 201, response.json()
    pk = response.json()["id"]
    renamed = client.patch(f"/api/v1/stages/{pk}/", {"name": "Negotiating"}, format="json")
    assert renamed.status_code == 200, renamed.json()
    assert Stage.objects.get(pk=pk).name == "Negotiating"


def test_manager_cannot_configure_stages(manager, stages, api_for):
    client = api_for(manager)
    created = client.post(
        "/api/v1/stages/",
        {"pipeline": stages["lead"].pipeline_id, "name": "Sneaky"},
        format="json",
    )
    assert created.status_code == 403
    renamed = client.patch(f"/api/v1/stages/{stages['lead'].pk}/", {"name": "X"}, format="json")
    assert renamed.status_code == 403
    assert Stage.objects.get(pk=stages["lead"].pk).name == "Lead in"


def test_duplicate_stage_name_is_refused_by_the_service(admin_user, stages, api_for):
    response = api_for(admin_user).post(
        "/api/v1/stages/",
        {"pipeline": stages["lead"].pipeline_id, "name": "Lead in"},
        format="json",
    )
    # A configuration rule: the same answer as the settings pages (one mapper).
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:pipeline-crm:problem:config-error"


def test_rep_sees_own_team_users_only(rep, teammate, outsider, api_for):
    ids = {u["id"] for u in api_for(rep).get("/api/v1/users/").json()["results"]}
    assert rep.pk in ids and teammate.pk in ids and outsider.pk not in ids
    assert api_for(rep).get(f"/api/v1/users/{outsider.pk}/").status_code == 404


def test_teams_are_listed(rep, other_team, api_for):
    names = [t["name"] for t in api_for(rep).get("/api/v1/teams/").json()]
    assert names == ["East", "West"]


def test_forecast_answers_periods(rep, stages, api_for):
    response = api_for(rep).get("/api/v1/forecast/?period=quarter")
    assert response.status_code == 200, response.json()
    assert response.json()["period"] == "quarter"


def test_forecast_refuses_a_bad_filter(rep, stages, api_for):
    assert api_for(rep).get("/api/v1/forecast/?period=decade").status_code == 400


def test_dashboard_answers_panels(manager, stages, api_for):
    response = api_for(manager).get("/api/v1/dashboard/")
    assert response.status_code == 200, response.json()
    assert "pipeline" in response.json()["panels"]


def test_schema_is_openapi_3_1(db):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"] == "3.1.0"
    assert "/api/v1/deals/{id}/move/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["personalToken"]["scheme"] == "bearer"


def test_docs_page_uses_vendored_files_and_no_inline_script(client):
    response = client.get("/api/v1/docs/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "<script>" not in page and "cdn" not in page.lower()
