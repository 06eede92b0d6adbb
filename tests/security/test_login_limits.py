"""Login limits behind a proxy and against spraying: per user at an address, per address,
per user from everywhere, each with its own limit (accounts/lockout.py), keyed on the
client's real address (common/client_address.py).

The compose stack runs behind a TLS proxy: every request reaches gunicorn from the
proxy's address, with the client's in X-Forwarded-For. These requests do the same.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, AuditKind
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"  # the TLS proxy: REMOTE_ADDR of every request behind it
ATTACKER = "203.0.113.7"
USER_ADDRESS = "198.51.100.4"
PASSWORD = "s3cret-pass"


def login(username: str, password: str, *, client: str, via_proxy: bool = True) -> int:
    """Status of a login attempt from `client`, through the proxy or straight to the app."""
    meta = (
        {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": client}
        if via_proxy
        else {"REMOTE_ADDR": client}
    )
    data = {"username": username, "password": password}
    return Client().post(reverse("login"), data, **meta).status_code


@pytest.fixture
def behind_one_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1


def limit(settings, *key: str) -> int:
    return settings.LOGIN_FAILURE_LIMITS[key]


def test_behind_the_proxy_a_lockout_stays_with_the_guessing_client(behind_one_proxy, settings):
    UserFactory(username="sam", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("sam", "wrong", client=ATTACKER)

    assert login("sam", PASSWORD, client=ATTACKER) == 429
    assert login("sam", PASSWORD, client=USER_ADDRESS) == 302


def test_behind_the_proxy_forged_forwarded_entries_are_ignored(behind_one_proxy, settings):
    """A client may send its own X-Forwarded-For; the proxy appends the real address,
    and only that one (TRUSTED_PROXY_COUNT from the right) is read."""
    UserFactory(username="sam", password=PASSWORD)
    for n in range(settings.AXES_FAILURE_LIMIT):
        login("sam", "wrong", client=f"192.0.2.{n}, {ATTACKER}")

    assert login("sam", PASSWORD, client=f"192.0.2.99, {ATTACKER}") == 429
    recorded = set(
        AuditEvent.objects.filter(kind=AuditKind.LOGIN_FAILED).values_list("ip", flat=True)
    )
    assert recorded == {ATTACKER}


def test_one_address_spraying_passwords_across_usernames_is_locked_out(settings):
    per_address = limit(settings, "ip_address")
    UserFactory(username="sam", password=PASSWORD)
    sprayed = [
        login(f"user{n}", "Summer2026!", client=ATTACKER, via_proxy=False)
        for n in range(per_address)
    ]

    assert sprayed == [200] * (per_address - 1) + [429]  # the limit-th failure locks
    assert login("sam", PASSWORD, client=ATTACKER, via_proxy=False) == 429
    assert login("sam", PASSWORD, client=USER_ADDRESS, via_proxy=False) == 302


def test_a_successful_login_does_not_reset_its_address_count(settings):
    """An attacker holding one valid account cannot clear their address's count with it."""
    per_address = limit(settings, "ip_address")
    UserFactory(username="mallory", password=PASSWORD)
    for n in range(per_address - 1):
        login(f"user{n}", "Summer2026!", client=ATTACKER, via_proxy=False)
    assert login("mallory", PASSWORD, client=ATTACKER, via_proxy=False) == 302

    login("user-last", "Summer2026!", client=ATTACKER, via_proxy=False)

    assert login("mallory", PASSWORD, client=ATTACKER, via_proxy=False) == 429


def test_one_username_guessed_from_many_addresses_is_locked_out(behind_one_proxy, settings):
    per_user = limit(settings, "username")
    UserFactory(username="sam", password=PASSWORD)
    for n in range(per_user):
        login("sam", "wrong", client=f"203.0.{n // 250}.{n % 250 + 1}")

    assert login("sam", PASSWORD, client=USER_ADDRESS) == 429


def test_guesses_from_a_few_addresses_lock_only_those_addresses(behind_one_proxy, settings):
    """Guesses from a few addresses (each under its own limit) lock only those addresses."""
    UserFactory(username="sam", password=PASSWORD)
    for address in ("203.0.113.7", "203.0.113.8", "203.0.113.9"):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            login("sam", "wrong", client=address)

    assert login("sam", PASSWORD, client="203.0.113.8") == 429
    assert login("sam", PASSWORD, client=USER_ADDRESS) == 302
