"""The address a request came from, as far as the app can trust it.

Behind reverse proxies (the compose stack's TLS proxy is one), REMOTE_ADDR is the
nearest proxy: every user shares it, so anything keyed on it (the login lockout, the
audit log) would treat all users as one. Each proxy appends the address it saw to
X-Forwarded-For, so with TRUSTED_PROXY_COUNT proxies the entry that many places from
the right is what the outermost one saw: the client. Entries further left were sent by
the client and can say anything, so they are never read.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address: REMOTE_ADDR, or the trusted proxies' X-Forwarded-For entry.

    A request that did not pass every trusted proxy (too few entries) or whose entry is
    not an IP address is taken at its REMOTE_ADDR, the one address nobody can forge.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [
        entry.strip()
        for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if entry.strip()
    ]
    if len(forwarded) < proxies:
        return remote
    try:
        return str(ipaddress.ip_address(forwarded[-proxies]))
    except ValueError:
        return remote
