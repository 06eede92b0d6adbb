"""Configuration is for admins: every other user gets 404 on every configuration URL."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from stages import urls as stage_urls
from stages.models import ConfigChange, EntryCriterion, Pipeline, Stage
from tests.factories import CriterionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoints(pipeline, stages):
    """(method, url name, url) for every configuration endpoint, with harmless data."""
    criterion = CriterionFactory(stage=stages["proposal"], kind="checklist", label="Budget")
    p, s, c = [pipeline.pk], [stages["demo"].pk], [criterion.pk]
    return [
        ("get", "pipelines", reverse("stages:pipelines")),
        ("post", "create_pipeline", reverse("stages:create_pipeline")),
        ("post", "reorder_pipelines", reverse("stages:reorder_pipelines")),
        ("get", "pipeline", reverse("stages:pipeline", args=p)),
        ("post", "rename_pipeline", reverse("stages:rename_pipeline", args=p)),
        ("post", "move_pipeline", reverse("stages:move_pipeline", args=p)),
        ("post", "archive_pipeline", reverse("stages:archive_pipeline", args=p)),
        ("post", "restore_pipeline", reverse("stages:restore_pipeline", args=p)),
        ("get", "new_stage", reverse("stages:new_stage", args=p)),
        ("post", "new_stage", reverse("stages:new_stage", args=p)),
        ("post", "reorder_stages", reverse("stages:reorder_stages", args=p)),
        ("get", "stage", reverse("stages:stage", args=s)),
        ("post", "stage", reverse("stages:stage", args=s)),
        ("post", "move_stage", reverse("stages:move_stage", args=s)),
        ("post", "archive_stage", reverse("stages:archive_stage", args=s)),
        ("post", "restore_stage", reverse("stages:restore_stage", args=s)),
        ("get", "delete_stage", reverse("stages:delete_stage", args=s)),
        ("post", "delete_stage", reverse("stages:delete_stage", args=s)),
        ("get", "new_criterion", reverse("stages:new_criterion", args=s) + "?kind=checklist"),
        ("post", "new_criterion", reverse("stages:new_criterion", args=s)),
        ("get", "criterion", reverse("stages:criterion", args=c)),
        ("post", "criterion", reverse("stages:criterion", args=c)),
        ("post", "move_criterion", reverse("stages:move_criterion", args=c)),
        ("post", "remove_criterion", reverse("stages:remove_criterion", args=c)),
        ("get", "audit", reverse("stages:audit")),
    ]


def attempt(client, method, url):
    data = {
        "name": "Hijacked",
        "direction": "down",
        "order": [1],
        "kind": "checklist",
        "label": "Hijacked",
        "probability": 10,
        "forecast_category": "pipeline",
        "rotting_days": 0,
    }
    return client.get(url) if method == "get" else client.post(url, data)


def test_every_configuration_url_is_covered(endpoints):
    # A new URL must be added to `endpoints`, so the access rule is checked for it too.
    assert {name for _, name, _ in endpoints} == {p.name for p in stage_urls.urlpatterns}


@pytest.mark.parametrize("actor", ["rep", "manager"])
def test_non_admins_get_404_on_every_configuration_url(request, endpoints, actor):
    client = Client()
    client.force_login(request.getfixturevalue(actor))
    for method, name, url in endpoints:
        response = attempt(client, method, url)
        assert response.status_code == 404, (method, name)


@pytest.mark.parametrize("actor", ["rep", "manager"])
def test_non_admins_change_nothing(request, endpoints, actor, stages):
    client = Client()
    client.force_login(request.getfixturevalue(actor))
    for method, _, url in endpoints:
        attempt(client, method, url)
    assert not ConfigChange.objects.exists()
    assert Pipeline.objects.count() == 1
    assert Stage.objects.filter(is_archived=False).count() == 6
    assert EntryCriterion.objects.count() == 1


def test_anonymous_visitors_are_sent_to_log_in(client, endpoints):
    for method, name, url in endpoints:
        response = attempt(client, method, url)
        assert response.status_code == 302, (method, name)
        assert response.url.startswith(reverse("login")), (method, name)


def test_admins_can_open_every_configuration_page(admin_client, endpoints):
    for method, name, url in endpoints:
        if method == "get":
            assert admin_client.get(url).status_code == 200, name


def test_settings_link_appears_in_the_admins_navigation(admin_client, db):
    html = admin_client.get(reverse("stages:pipelines")).content.decode()
    assert f'href="{reverse("stages:pipelines")}">Settings</a>' in html


def test_posts_without_a_csrf_token_are_refused(admin_user, pipeline):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("stages:rename_pipeline", args=[pipeline.pk]), {"name": "X"})
    assert response.status_code == 403
    pipeline.refresh_from_db()
    assert pipeline.name == "Sales"


def test_unknown_ids_answer_404_for_admins(admin_client, db):
    assert admin_client.get(reverse("stages:stage", args=[999])).status_code == 404
    assert admin_client.post(reverse("stages:archive_pipeline", args=[999])).status_code == 404
