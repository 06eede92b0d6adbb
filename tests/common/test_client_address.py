"""Which address a request came from: REMOTE_ADDR, or the trusted proxies' entry."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from common.client_address import client_address


def request(forwarded: str | None = None, remote: str = "10.0.0.2"):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def test_without_proxies_the_forwarded_header_is_ignored(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(request("203.0.113.7")) == "10.0.0.2"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "192.0.2.1, 203.0.113.7", "203.0.113.7"),  # the client's own entry is skipped
        (2, "192.0.2.1, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_entry_appended_by_the_outermost_trusted_proxy_is_the_client(
    settings, proxies, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_address(request(forwarded)) == expected


@pytest.mark.parametrize("forwarded", [None, "", "not-an-address", "203.0.113.7, "])
def test_a_missing_short_or_garbled_header_falls_back_to_the_peer(settings, forwarded):
    settings.TRUSTED_PROXY_COUNT = 2 if forwarded == "203.0.113.7, " else 1
    assert client_address(request(forwarded)) == "10.0.0.2"
