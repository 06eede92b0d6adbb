"""Outbound webhook requests that cannot be pointed at the inside of our network.

The host is resolved here and every address checked (no private, loopback, link-local,
reserved or multicast address); the connection goes to the checked address, with the
host name kept for TLS (SNI and certificate) and the Host header, so a DNS answer that
changes between check and connect cannot redirect it. Redirects are followed only on the
same host and scheme, re-checked each time; never to another host. Timeouts bound each
request; at most RESPONSE_LIMIT bytes of the answer are read.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

RESPONSE_LIMIT = 64 * 1024
MAX_REDIRECTS = 3


class Refused(Exception):
    """The address may not be called (or the answer broke the rules)."""


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    duration_ms: int
    excerpt: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if settings.WEBHOOKS_ALLOW_LOOPBACK and address.is_loopback:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, checked ip) for `url`, or Refused with the reason."""
    parts = urlsplit(url)
    loopback_tests = settings.WEBHOOKS_ALLOW_LOOPBACK
    if parts.scheme != "https" and not (loopback_tests and parts.scheme == "http"):
        raise Refused("Webhook addresses must use https.")
    if not parts.hostname or parts.username or parts.password:
        raise Refused("Webhook addresses need a host name and no credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("The port is not valid.") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Refused(f"{parts.hostname} does not resolve.") from None
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    if not addresses or not all(_allowed(a) for a in addresses):
        raise Refused(f"{parts.hostname} resolves to a private or reserved address.")
    return parts.scheme, parts.hostname, port, str(sorted(addresses, key=str)[0])


def post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST `body` to `url` under the rules above; never raises for network trouble."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    timeout = urllib3.Timeout(connect=5.0, read=float(settings.WEBHOOKS_TIMEOUT_SECONDS))
    target = url
    origin = None
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            scheme, host, port, ip = check_url(target)
        except Refused as refused:
            return Outcome(None, elapsed(), "", str(refused))
        origin = origin or (scheme, host, port)
        if (scheme, host, port) != origin:
            return Outcome(None, elapsed(), "", "Redirect to another host or scheme refused.")
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                ip,
                port,
                server_hostname=host,
                assert_hostname=host,
                cert_reqs="CERT_REQUIRED",
                timeout=timeout,
                retries=False,
            )
        else:
            pool = urllib3.HTTPConnectionPool(ip, port, timeout=timeout, retries=False)
        try:
            response = pool.urlopen(
                "POST",
                path,
                body=body,
                headers={**headers, "Host": host if port in (80, 443) else f"{host}:{port}"},
                redirect=False,
                preload_content=False,
            )
            content = response.read(RESPONSE_LIMIT, decode_content=True)
            response.release_conn()
        except urllib3.exceptions.HTTPError as error:
            return Outcome(None, elapsed(), "", f"{type(error).__name__}: {error}"[:300])
        finally:
            pool.close()
        excerpt = content[:500].decode("utf-8", "replace")
        location = response.headers.get("Location")
        if 300 <= response.status < 400 and location:
            target = urljoin(target, location)
            continue
        return Outcome(response.status, elapsed(), excerpt)
    return Outcome(None, elapsed(), "", "Too many redirects.")
