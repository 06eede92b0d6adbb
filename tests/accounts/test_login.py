"""Logging in and out, brute-force lockout, rate limits."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.factories import DealFactory, UserFactory


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()


def _login(client, username, password, ip="10.0.0.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_login_with_right_password_goes_to_the_board(db):
    UserFactory(username="sam", password="s3cret-pass")
    response = _login(Client(), "sam", "s3cret-pass")
    assert response.status_code == 302 and response.url == reverse("board")


def test_wrong_password_shows_a_message(db):
    UserFactory(username="sam", password="s3cret-pass")
    response = _login(Client(), "sam", "nope")
    assert response.status_code == 200
    assert "Your username and password didn't match" in response.content.decode()


def test_repeated_failures_lock_out_that_username_from_that_address(db, settings):
    UserFactory(username="sam", password="s3cret-pass")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "sam", "nope")
    response = _login(client, "sam", "s3cret-pass")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_lockout_does_not_block_the_same_user_from_another_address(db, settings):
    UserFactory(username="sam", password="s3cret-pass")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "sam", "nope", ip="10.0.0.66")
    response = _login(Client(), "sam", "s3cret-pass", ip="10.0.0.2")
    assert response.status_code == 302


def test_logout_needs_post(rep):
    client = Client()
    client.force_login(rep)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("board")).status_code == 302


def test_moves_are_rate_limited_per_user(rep, stages, settings, monkeypatch):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "move": (2, 60)}
    # Fixed windows: keep all three requests inside one, whatever the wall clock says.
    frozen = SimpleNamespace(time=lambda: 1_800_000_000.0)
    monkeypatch.setattr("common.ratelimit.time", frozen)
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = Client()
    client.force_login(rep)
    url = reverse("deal_move", args=[deal.pk])
    targets = [stages["qualified"], stages["demo"], stages["proposal"]]
    codes = [
        client.post(url, {"stage": s.pk, "version": i + 1}, HTTP_HX_REQUEST="true").status_code
        for i, s in enumerate(targets)
    ]
    assert codes == [200, 200, 429]
    deal.refresh_from_db()
    assert deal.stage == stages["demo"]
