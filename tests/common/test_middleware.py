from __future__ import annotations

from unittest import mock

from django.db import OperationalError
from django.test import Client
from django.urls import reverse


def test_database_outage_answers_a_friendly_503(rep, stages):
    client = Client()
    client.force_login(rep)
    with mock.patch("deals.queries.board", side_effect=OperationalError("connection refused")):
        response = client.get(reverse("board"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "cannot reach its database" in response.content.decode()


def test_other_errors_are_not_disguised_as_503(rep, stages):
    client = Client(raise_request_exception=False)
    client.force_login(rep)
    with mock.patch("deals.queries.board", side_effect=ValueError("bug")):
        response = client.get(reverse("board"))
    assert response.status_code == 500
