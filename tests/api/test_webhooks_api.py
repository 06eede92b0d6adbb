"""Webhook subscriptions through the API."""

from __future__ import annotations

import socket

import pytest

from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_dns(monkeypatch):
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 443))]
    )


def test_api_subscribe_shows_secret_once(manager, api_for, public_dns):
    client = api_for(manager)
    created = client.post(
        "/api/v1/webhooks/",
        {"url": "https://hooks.example.com/x", "events": ["deal.*"]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["secret"].startswith("whsec_")
    listed = client.get("/api/v1/webhooks/").json()
    assert "secret" not in listed[0]


def test_api_refuses_ssrf_targets(admin_user, api_for):
    client = api_for(admin_user)
    for url in ("https://169.254.169.254/latest", "https://127.0.0.1/", "http://example.com/"):
        response = client.post(
            "/api/v1/webhooks/", {"url": url, "events": ["deal.*"]}, format="json"
        )
        assert response.status_code == 400, url
    assert not Endpoint.objects.exists()


def test_api_refuses_reps_and_unknown_events(rep, admin_user, api_for, public_dns):
    body = {"url": "https://hooks.example.com/x", "events": ["deal.*"]}
    assert api_for(rep).post("/api/v1/webhooks/", body, format="json").status_code == 403
    bad = {"url": "https://hooks.example.com/x", "events": ["user.deleted"]}
    assert api_for(admin_user).post("/api/v1/webhooks/", bad, format="json").status_code == 400


def test_api_rotate_and_deliveries(manager, api_for, public_dns):
    client = api_for(manager)
    created = client.post(
        "/api/v1/webhooks/",
        {"url": "https://hooks.example.com/x", "events": ["deal.*"]},
        format="json",
    ).json()
    rotated = client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/")
    assert rotated.status_code == 200 and rotated.json()["secret"] != created["secret"]
    deliveries = client.get(f"/api/v1/webhooks/{created['id']}/deliveries/")
    assert deliveries.status_code == 200 and deliveries.json()["results"] == []
