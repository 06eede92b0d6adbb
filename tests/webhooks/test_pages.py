"""Webhook subscriptions through the settings page and the API."""

from __future__ import annotations

import socket
import uuid
from types import SimpleNamespace

import pytest
from django.utils import timezone

from tests.factories import DealFactory
from webhooks import services
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_dns(monkeypatch):
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 443))]
    )


def test_manager_subscribes_on_the_settings_page(manager, client_for, public_dns):
    response = client_for(manager).post(
        "/accounts/webhooks/new/",
        {"url": "https://hooks.example.com/crm", "events": ["deal.won", "deal.lost"]},
    )
    assert response.status_code == 201
    assert response.context["secret"].startswith("whsec_")
    assert Endpoint.objects.get().events == ["deal.lost", "deal.won"]


def test_rep_has_no_webhooks_page(rep, client_for):
    assert client_for(rep).get("/accounts/webhooks/").status_code == 404


def test_settings_page_refuses_a_private_address(admin_user, client_for):
    response = client_for(admin_user).post(
        "/accounts/webhooks/new/", {"url": "https://10.0.0.1/x", "events": ["deal.*"]}
    )
    assert response.status_code == 400
    assert not Endpoint.objects.exists()


def test_delivery_log_page_and_redelivery(manager, rep, stages, client_for, public_dns):
    new = services.create_endpoint(
        by=manager, url="https://hooks.example.com/x", events=["deal.*"]
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    fake = SimpleNamespace(
        pk=uuid.uuid4(),
        name="deal.moved",
        at=timezone.now(),
        deal_id=deal.pk,
        payload={},
        source="api",
    )
    services.fan_out([fake])
    client = client_for(manager)
    page = client.get(f"/accounts/webhooks/{new.endpoint.pk}/")
    assert page.status_code == 200 and "deal.moved" in page.content.decode()
    delivery = Delivery.objects.get()
    assert (
        client.post(f"/accounts/webhooks/deliveries/{delivery.pk}/redeliver/").status_code == 302
    )


def test_another_managers_endpoint_is_404(manager, other_manager, client_for, public_dns):
    theirs = services.create_endpoint(
        by=other_manager, url="https://hooks.example.com/x", events=["deal.*"]
    )
    client = client_for(manager)
    assert client.get(f"/accounts/webhooks/{theirs.endpoint.pk}/").status_code == 404
    assert client.post(f"/accounts/webhooks/{theirs.endpoint.pk}/delete/").status_code == 404
    assert Endpoint.objects.filter(pk=theirs.endpoint.pk).exists()
