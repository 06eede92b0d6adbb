"""Hardening: CSP on every page, deploy checks, rate limits, sessions, passwords, lockout,
and history and audit rows that cannot be changed.

The crawl visits every URL the app defines (read from the URL resolver when the test
runs, so new pages are covered without editing this file) as a rep, a manager and an
admin; no answer may be a 500, and every HTML page must carry a nonce-based CSP and
nothing that CSP would have to allow inline (scripts, styles, event handlers, hx-on).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import AuditEvent
from automations.models import Rule
from deals.models import GateEvent, Notification, StageChange
from stages.models import ConfigChange, EntryCriterion
from tests.factories import UserFactory
from tests.security.support import data_for_module, is_login_redirect
from tests.security.world import build_world

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Any:
    yield from data_for_module(django_db_blocker, build_world)


# --- every URL the app defines -----------------------------------------------------------


def app_routes() -> list[tuple[str, str]]:
    """(route, name) of every URL pattern outside Django's own admin site."""
    found: list[tuple[str, str]] = []

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                if route.startswith("admin/"):
                    continue
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, route, inner)
            elif isinstance(entry, URLPattern):
                found.append((route, f"{namespace}{entry.name}"))

    walk(get_resolver().url_patterns, "", "")
    return found


ROUTES = app_routes()
# Django admin pages the app configured, checked like the app's own.
ADMIN_PAGES = [
    "admin:index",
    "admin:accounts_user_changelist",
    "admin:accounts_auditevent_changelist",
    "admin:deals_stagechange_changelist",
    "admin:deals_gateevent_changelist",
    "admin:deals_deal_changelist",
]


def fill(route: str, world: Any) -> str:
    """The route with its parameters filled from the world (the rep's records)."""
    deal = world.deals["rep"]
    ids = {
        "stage_id": world.stages["lead"].pk,
        "pipeline_id": world.pipeline.pk,
        "criterion_id": EntryCriterion.objects.filter(stage=world.stages["demo"]).get().pk,
        "activity_id": world.activities["rep"].pk,
        "outcome": "won",
        "panel": "pipeline",
        "token_id": 1,
        "endpoint_id": 1,
        "delivery_id": 1,
        "rule_id": Rule.objects.get(name="Matrix rule").pk,
        "slug": "demo_prep",
    }
    if route.startswith("contacts/organizations/"):
        ids["pk"] = world.organizations["rep"].pk
    elif route.startswith("contacts/people/"):
        ids["pk"] = world.people["rep"].pk
    elif route.startswith("notifications/"):
        ids["pk"] = Notification.objects.filter(deal=deal).get().pk
    else:
        ids["pk"] = deal.pk  # deals/…, and import/… (no import exists: 404)

    def value(match: re.Match[str]) -> str:
        return str(ids[match.group(2)])

    path = re.sub(r"<(?:(\w+):)?(\w+)>", value, route)
    return "/" + path


class Markup(HTMLParser):
    """What a CSP without 'unsafe-inline' would block, collected from one page."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.nonces: set[str] = set()
        self.scripts = 0
        self.htmx_config = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _ in attrs:
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"{name} handler on <{tag}>")
            if name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"{name} on <{tag}>")
        if tag == "style":
            self.problems.append("inline <style> element")
        if tag == "script":
            self.scripts += 1
            if not names.get("src"):
                self.problems.append("inline <script>")
            if names.get("nonce"):
                self.nonces.add(names["nonce"] or "")
        if tag == "meta" and names.get("name") == "htmx-config":
            self.htmx_config = names.get("content") or ""
        if tag == "a" and (names.get("href") or "").lower().startswith("javascript:"):
            self.problems.append("javascript: link")


def assert_csp_clean(response: Any) -> None:
    policy = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, policy
    assert re.search(r"script-src 'self'( 'nonce-[^']+')?;", policy), policy
    markup = Markup()
    markup.feed(response.content.decode())
    assert markup.problems == []
    # Django adds the nonce to the header only when a template used it.
    header_nonces = set(re.findall(r"'nonce-([^']+)'", policy))
    assert markup.nonces <= header_nonces, "a script carries a nonce the policy does not"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    if markup.htmx_config:
        assert '"allowEval":false' in markup.htmx_config
        assert '"includeIndicatorStyles":false' in markup.htmx_config


CRAWL = [(route, name, role) for route, name in ROUTES for role in ("rep", "manager", "admin")]


def test_the_crawl_covers_every_app_url():
    names = {name for _, name in ROUTES}
    assert {"board", "deal_detail", "search", "stages:pipelines", "reports:dashboard"} <= names
    assert len(ROUTES) >= 60


@pytest.mark.parametrize(
    ("route", "name", "role"), CRAWL, ids=[f"{name}-{role}" for _, name, role in CRAWL]
)
def test_every_page_answers_without_error_under_a_strict_csp(world, route, name, role):
    response = world.client(role).get(fill(route, world))

    # 403 is a refusal, not an error: a rep may see a deal but not open its delete page.
    assert response.status_code in {200, 302, 400, 403, 404, 405}, response.status_code
    if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
        assert_csp_clean(response)


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_pages_are_csp_clean_too(world, name):
    response = world.client("admin").get(reverse(name))

    assert response.status_code == 200
    assert_csp_clean(response)


def test_anonymous_visitor_is_sent_to_login_from_every_page(world):
    public = {"healthz", "readyz", "login", "logout", "api:schema", "api:docs"}
    client = Client()
    for route, name in ROUTES:
        if name in public:
            continue
        response = client.get(fill(route, world))
        if route.startswith("api/"):  # the API answers 401 and names its scheme, never a redirect
            assert response.status_code == 401, (name, response)
            assert response["WWW-Authenticate"].startswith("Bearer"), name
            continue
        assert is_login_redirect(response) or response.status_code == 405, (name, response)


# --- history and audit rows cannot be changed or deleted --------------------------------


def history_row(model: str, world: Any) -> Any:
    """One row of an append-only table, made for the test."""
    deal, admin = world.deals["rep"], world.users["admin"]
    match model:
        case "deals_stagechange":
            return StageChange.objects.filter(deal=deal).first()
        case "deals_gateevent":
            return GateEvent.objects.create(
                deal=deal, stage=deal.stage, requirement="x", outcome="blocked", source="board"
            )
        case "accounts_auditevent":
            return AuditEvent.objects.create(kind="login", username="someone")
        case "stages_configchange":
            return ConfigChange.objects.create(
                by=admin, action="create", subject_type="pipeline", subject_id=1, summary="x"
            )
    raise ValueError(model)


HISTORY = ["deals_stagechange", "deals_gateevent", "accounts_auditevent", "stages_configchange"]


@pytest.mark.parametrize("model", HISTORY)
@pytest.mark.parametrize("view", ["change", "delete"])
def test_history_rows_cannot_be_changed_or_deleted_in_the_admin(world, model, view):
    row = history_row(model, world)
    before = model_state(row)

    response = world.client("admin").post(
        reverse(f"admin:{model}_{view}", args=[row.pk]), {"post": "yes", "source": "undo"}
    )

    assert response.status_code == 403
    assert model_state(row) == before


@pytest.mark.parametrize("model", HISTORY)
def test_history_rows_cannot_be_deleted_in_bulk_from_the_admin_list(world, model):
    row = history_row(model, world)
    changelist = reverse(f"admin:{model}_changelist")

    world.client("admin").post(
        changelist, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    )

    assert model_state(row) is not None


def model_state(row: Any) -> Any:
    return type(row).objects.filter(pk=row.pk).values().first()


@pytest.mark.parametrize("name", ["accounts:audit", "stages:audit"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_audit_pages_only_read(world, name, method):
    response = getattr(world.client("admin"), method)(reverse(name))
    assert response.status_code == 405


def test_history_cannot_be_added_in_the_admin(world):
    response = world.client("admin").get(reverse("admin:deals_stagechange_add"))
    assert response.status_code == 403


# --- rate limits, sessions, passwords, lockout -------------------------------------------


def test_search_is_rate_limited_per_user(world, settings):
    # An hour-long window, so the test does not straddle two windows.
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search": (3, 3600)}
    for role in ("rep", "teammate"):  # other tests searched as them in this window
        cache.delete(f"ratelimit:search:{world.users[role].pk}:{int(time.time() // 3600)}")
    client = world.client("rep")
    codes = [client.get(reverse("search"), {"q": "Alder"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # Another user has a budget of their own.
    assert world.client("teammate").get(reverse("search"), {"q": "Alder"}).status_code == 200


def test_sessions_expire(world):
    assert 0 < settings.SESSION_COOKIE_AGE <= 60 * 60 * 24
    client = world.client("rep")
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    assert is_login_redirect(client.get(reverse("board")))


@pytest.mark.parametrize("password", ["password", "12345678", "m_rep2024", "short"])
def test_weak_passwords_are_refused(world, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=world.users["rep"])


def test_a_strong_password_is_accepted(world):
    validate_password("correct horse battery staple 42", user=world.users["rep"])


def test_lockout_ends_after_the_cool_off(db, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    UserFactory(username="sam", password="s3cret-pass")
    client = Client()

    def login(password: str) -> int:
        data = {"username": "sam", "password": password}
        return client.post(reverse("login"), data, REMOTE_ADDR="10.9.9.9").status_code

    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("wrong")
    assert login("s3cret-pass") == 429
    time.sleep(1.2)
    assert login("s3cret-pass") == 302


# --- production settings -----------------------------------------------------------------

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 64 + "-not-a-real-key-only-for-the-deploy-check",
    "ALLOWED_HOSTS": "crm.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://crm.example.com",
}


def production_env() -> dict[str, str]:
    """A clean environment: nothing the test run set (DATABASE_URL, REDIS_URL, the browser
    tests' DJANGO_ALLOW_ASYNC_UNSAFE) may leak into what production would see."""
    kept = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k in kept}
    return {**env, **PRODUCTION, "DJANGO_SETTINGS_MODULE": "pipeline_crm.settings"}


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_cookies_are_secure_and_hsts_is_on():
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS >= 31536000, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["True"] * 6, result.stderr


def test_production_refuses_to_start_without_a_real_secret_key():
    env = {**production_env(), "SECRET_KEY": "django-insecure-short"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
