"""Every URL the app serves, as every role, for their own, a teammate's and another team's
record, by GET and by POST, answers what the access policy says.

The URL patterns come from Django's resolver, not from a list kept by hand, so a new URL
cannot be forgotten: a pattern missing from ROUTES below fails
`test_every_url_pattern_is_known`, with a message saying how to add it.

Each route names the record its URL is built for (OBJECTS) and, for GET and for POST,
the policy rule it follows (RULES). The rules read tests/security/matrix.py, the
permission matrix as data, so the two cannot disagree. An answer is read as one symbol:

    Y  let through: any answer but those below (200, 204, a redirect, or 400/409/422
       for an empty form: the access check passed and the form was read)
    H  404: the user may not see the record (or the page)
    N  403: the user sees the record but may not do this
    L  sent to a login page (anonymous, deactivated; the Django admin for non-staff)
    U  401: the API's answer to a caller who is not signed in
    M  405: wrong method (GET on a POST-only URL or the reverse)

POSTs carry no data: a refusal must come before the form is read, so an allowed user gets
a 400/422 (Y) and a refused one a 403/404 whatever the form would have said. They are
sent as htmx requests, as the board and the deal page send them (without htmx a refused
board move is answered with a redirect to the board and the reason as a flash).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from deals.models import Notification
from tests.security.matrix import cells
from tests.security.support import data_for_module, htmx, is_login_redirect
from tests.security.world import ROLES, SCOPES, World, build_world

pytestmark = pytest.mark.django_db

# --- the registry: one row per URL name ---------------------------------------------------


@dataclass(frozen=True)
class Route:
    """How to build a URL (`target`, a key of OBJECTS) and which rule GET and POST follow
    (keys of RULES)."""

    target: str
    get: str
    post: str


R = Route
ROUTES: dict[str, Route] = {
    # Site wiring.
    "healthz": R("-", "public", "public"),
    "readyz": R("-", "public", "public"),
    "login": R("-", "public", "public"),
    "logout": R("-", "method", "public"),
    # Board and deals.
    "board": R("-", "user", "method"),
    "column_more": R("stage", "user", "method"),
    "bulk_move": R("-", "method", "user"),
    "board_export": R("-", "user", "method"),
    "deal_new": R("new_deal", "user", "user"),
    "deal_detail": R("deal", "see_deal", "method"),
    "deal_next": R("deal", "see_deal", "method"),
    "deal_gate": R("deal", "see_deal", "method"),
    "deal_edit": R("deal", "change_deal", "change_deal"),
    "deal_close": R("deal_outcome", "method", "change_deal"),
    "deal_reassign": R("deal", "method", "see_deal"),
    "deal_delete": R("deal", "delete_deal", "delete_deal"),
    "deal_move": R("deal", "method", "change_deal"),
    "deal_fix_move": R("deal", "method", "change_deal"),
    "deal_undo": R("deal", "method", "change_deal"),
    "deal_snooze": R("deal", "method", "change_deal"),
    "deal_unsnooze": R("deal", "method", "change_deal"),
    "activity_create": R("deal", "method", "change_deal"),
    # Activities.
    "my_activities": R("-", "user", "method"),
    "activity_complete": R("activity", "method", "change_deal"),
    "activity_update": R("activity", "method", "change_deal"),
    "activity_delete": R("activity", "method", "delete_activity"),
    # Notifications and search.
    "notifications": R("-", "user", "method"),
    "notifications_read_all": R("-", "method", "user"),
    "notification_read": R("notification", "method", "own_notification"),
    "notification_open": R("notification", "method", "own_notification"),
    "search": R("-", "user", "method"),
    # Imports (managers and admins; a job is its creator's and the admins').
    "import_start": R("-", "import", "import"),
    "import_preview": R("import", "import_job", "import_job"),
    "import_confirm": R("import", "method", "import_job"),
    "import_status": R("import", "import_job", "method"),
    "import_summary": R("import", "import_job", "method"),
    "import_undo": R("import", "method", "import_job"),
    "import_discard": R("import", "method", "import_job"),
    # Organizations and people.
    "contacts:organizations": R("-", "user", "method"),
    "contacts:organization_create": R("-", "user", "user"),
    "contacts:organization_pick": R("-", "user", "user"),
    "contacts:organization_suggest": R("-", "user", "method"),
    "contacts:organization": R("org", "see_org", "method"),
    "contacts:organization_edit": R("org", "change_org", "change_org"),
    "contacts:people": R("-", "user", "method"),
    "contacts:person_create": R("-", "user", "user"),
    "contacts:person_pick": R("-", "user", "user"),
    "contacts:person_suggest": R("-", "user", "method"),
    "contacts:person": R("person", "see_person", "method"),
    "contacts:person_edit": R("person", "change_person", "change_person"),
    # Dashboards and forecasts: everyone, over what they may count.
    "reports:dashboard": R("-", "user", "method"),
    "reports:dashboard_csv": R("panel", "user", "method"),
    "reports:dashboard_panel": R("panel", "user", "method"),
    "reports:forecast": R("-", "user", "method"),
    "reports:forecast_csv": R("-", "user", "method"),
    # Audit log and configuration: admins only, 404 for everyone else.
    "accounts:audit": R("-", "configure", "method"),
    "stages:audit": R("-", "configure", "configure_method"),
    "stages:pipelines": R("-", "configure", "configure_method"),
    "stages:create_pipeline": R("-", "configure_method", "configure"),
    "stages:reorder_pipelines": R("-", "configure_method", "configure"),
    "stages:pipeline": R("pipeline", "configure", "configure_method"),
    "stages:rename_pipeline": R("pipeline", "configure_method", "configure"),
    "stages:move_pipeline": R("pipeline", "configure_method", "configure"),
    "stages:archive_pipeline": R("pipeline", "configure_method", "configure"),
    "stages:restore_pipeline": R("pipeline", "configure_method", "configure"),
    "stages:new_stage": R("pipeline", "configure", "configure"),
    "stages:reorder_stages": R("pipeline", "configure_method", "configure"),
    "stages:stage": R("stage", "configure", "configure"),
    "stages:move_stage": R("stage", "configure_method", "configure"),
    "stages:archive_stage": R("stage", "configure_method", "configure"),
    "stages:restore_stage": R("stage", "configure_method", "configure"),
    "stages:delete_stage": R("stage", "configure", "configure"),
    "stages:new_criterion": R("stage", "configure", "configure"),
    "stages:criterion": R("criterion", "configure", "configure"),
    "stages:move_criterion": R("criterion", "configure_method", "configure"),
    "stages:remove_criterion": R("criterion", "configure_method", "configure"),
    # The live board: the stream (ids only) for anyone signed in; cards and column heads
    # through the same policy as the board.
    "live_stream": R("-", "user", "method"),
    "live_heads": R("board", "user", "method"),
    "live_versions": R("board", "user", "method"),
    "live_card": R("card", "see_deal", "method"),
    "live_presence": R("-", "method", "user"),
    "live_editing": R("deal", "see_deal", "method"),
    # Personal API tokens: one's own; admins may revoke anyone's (others' are not found).
    "api_tokens": R("-", "user", "method"),
    "api_token_create": R("-", "method", "user"),
    "api_token_revoke": R("token", "method", "revoke_token"),
    # Webhook pages: managers (their own endpoints) and admins (all); 404 for the rest.
    "api_webhooks": R("-", "subscriber", "method"),
    "api_webhook_create": R("-", "method", "subscriber"),
    "api_webhook": R("endpoint", "endpoint", "method"),
    "api_webhook_toggle": R("endpoint", "method", "endpoint"),
    "api_webhook_delete": R("endpoint", "method", "endpoint"),
    "api_webhook_redeliver": R("delivery", "method", "endpoint"),
    # /api/v1/ with the session (tests/api covers tokens): 401 when not signed in, POSTs
    # carry `{}` as JSON. The schema and its page are public documentation.
    # Configuration is readable by all, written by admins (403 else).
    "api:schema": R("-", "public", "api_method_public"),
    "api:docs": R("-", "public", "method_public"),
    "api:deals": R("-", "api_user", "api_user"),
    "api:deal": R("deal", "api_see_deal", "api_method"),
    "api:deal_move": R("deal", "api_method", "api_change_deal"),
    "api:deal_close": R("deal", "api_method", "api_change_deal"),
    "api:deal_reassign": R("deal", "api_method", "api_reassign"),
    "api:deal_history": R("deal", "api_see_deal", "api_method"),
    "api:activities": R("-", "api_user", "api_user"),
    "api:activity": R("api_activity", "api_see_deal", "api_method"),
    "api:organizations": R("-", "api_user", "api_user"),
    "api:organization": R("org", "api_see_org", "api_method"),
    "api:people": R("-", "api_user", "api_user"),
    "api:person": R("person", "api_see_person", "api_method"),
    "api:pipelines": R("-", "api_user", "api_configure"),
    "api:pipeline": R("pipeline_pk", "api_user", "api_method"),
    "api:stages": R("-", "api_user", "api_configure"),
    "api:stage": R("stage_pk", "api_user", "api_method"),
    "api:users": R("-", "api_user", "api_method"),
    "api:user": R("user", "api_see_deal", "api_method"),
    "api:teams": R("-", "api_user", "api_method"),
    "api:forecast": R("-", "api_user", "api_method"),
    "api:dashboard": R("-", "api_user", "api_method"),
    "api:webhooks": R("-", "api_user", "api_subscriber"),
    "api:webhook": R("endpoint_pk", "api_endpoint", "api_method"),
    "api:webhook_rotate": R("endpoint_pk", "api_method", "api_endpoint"),
    "api:webhook_deliveries": R("endpoint_pk", "api_endpoint", "api_method"),
    "api:webhook_redeliver": R("delivery_pk", "api_method", "api_endpoint"),
    "api:criteria": R("-", "api_user", "api_configure"),
    "api:criterion": R("criterion_pk", "api_user", "api_method"),
    "api:unknown": R("-", "api_nowhere", "api_nowhere"),
    # Automations: managers (their own rules) and admins (all); 404 for everyone else.
    "automations:rules": R("-", "subscriber", "method"),
    "automations:new": R("-", "subscriber", "subscriber"),
    "automations:recipe_add": R("recipe", "method", "subscriber"),
    "automations:edit": R("rule", "endpoint", "endpoint"),
    "automations:toggle": R("rule", "method", "endpoint"),
    "automations:delete": R("rule", "method", "endpoint"),
    "automations:runs": R("rule", "endpoint", "method"),
    "automations:test": R("rule", "endpoint", "method"),
}
# Whole namespaces that follow one rule (a name in ROUTES wins over its namespace's rule):
# Django's admin site, staff only, with its own login page.
NAMESPACES: dict[str, Route] = {
    "admin": R("admin", "staff", "staff"),
}
ROUTES |= {
    "admin:login": R("admin", "public", "public"),
    "admin:logout": R("admin", "logout", "logout"),
}

HOW_TO_REGISTER = """\
{count} URL pattern(s) are not in tests/security/test_url_permissions.py:
{missing}
Add one line per URL name to ROUTES there, e.g.
    "{example}": R("<target>", "<GET rule>", "<POST rule>"),
<target> is the record the URL is built for, one of: {targets}
  ("-" for a URL without arguments; add a target to OBJECTS for a new kind of record).
<rule> is who may pass, one of: {rules}
  ("method" when the URL refuses that method with 405).
A whole namespace following one rule (like the Django admin) goes in NAMESPACES instead."""


# --- what each rule expects ---------------------------------------------------------------

MATRIX = {(action, scope, role): symbol for action, scope, role, symbol in cells()}
LOGGED_OUT = {"anonymous", "deactivated"}
IMPORTERS = {"manager", "other_manager", "admin"}
JOB_OWNER = "manager"  # the import job the world holds was uploaded by North's manager
SUBSCRIBERS = {"manager", "other_manager", "admin"}
ENDPOINT_OWNER = "manager"  # the webhook endpoint and the automation rule: North's manager's
TOKEN_OWNER = {"rep": "rep", "teammate": "teammate", "other_team": "outsider"}
NOTICE_OWNER = {"rep": "rep", "teammate": "teammate", "other_team": "outsider"}


def _matrix(action: str, kind: str) -> Callable[[str, str], set[str]]:
    def expected(role: str, scope: str) -> set[str]:
        symbol = MATRIX[(action, f"{scope}_{kind}", role)]
        return {"Y" if symbol in "YR-" else symbol}

    return expected


def _signed_in(answer: Callable[[str, str], set[str]]) -> Callable[[str, str], set[str]]:
    return lambda role, scope: {"L"} if role in LOGGED_OUT else answer(role, scope)


def _api(answer: Callable[[str, str], set[str]]) -> Callable[[str, str], set[str]]:
    """The API answers 401 (not a login page) to a caller who is not signed in."""
    return lambda role, scope: {"U"} if role in LOGGED_OUT else answer(role, scope)


RULES: dict[str, Callable[[str, str], set[str]]] = {
    # Anyone, signed in or not (a logout may send to the login page).
    "public": lambda role, scope: {"Y", "L"},
    # Logging out shows nothing: it may answer, redirect, or refuse a GET.
    "logout": lambda role, scope: {"Y", "L", "M"},
    # Any signed-in user; what the page shows is their visible scope.
    "user": _signed_in(lambda role, scope: {"Y"}),
    # Wrong method: 405 (a logged-out user may get the login page first).
    "method": lambda role, scope: {"L", "M"} if role in LOGGED_OUT else {"M"},
    "see_deal": _matrix("view_page", "deal"),
    "change_deal": _matrix("edit", "deal"),
    "delete_activity": _matrix("delete_activity", "activity"),
    "delete_deal": _matrix("delete", "deal"),
    "see_org": _matrix("view_page", "org"),
    "change_org": _matrix("edit", "org"),
    "see_person": _matrix("view_page", "person"),
    "change_person": _matrix("edit", "person"),
    "own_notification": _signed_in(
        lambda role, scope: {"Y"} if NOTICE_OWNER[scope] == role else {"H"}
    ),
    "import": _signed_in(lambda role, scope: {"Y"} if role in IMPORTERS else {"H"}),
    "import_job": _signed_in(lambda role, scope: {"Y"} if role in {JOB_OWNER, "admin"} else {"H"}),
    "configure": _signed_in(lambda role, scope: {"Y"} if role == "admin" else {"H"}),
    # Admins-only URL, wrong method: everyone else must not learn it exists.
    "configure_method": _signed_in(lambda role, scope: {"M"} if role == "admin" else {"H"}),
    "revoke_token": _signed_in(
        lambda role, scope: {"Y"} if role in {TOKEN_OWNER[scope], "admin"} else {"H"}
    ),
    "subscriber": _signed_in(lambda role, scope: {"Y"} if role in SUBSCRIBERS else {"H"}),
    "endpoint": _signed_in(
        lambda role, scope: {"Y"} if role in {ENDPOINT_OWNER, "admin"} else {"H"}
    ),
    "api_user": _api(lambda role, scope: {"Y"}),
    # Public documentation (the schema and its page), read by anyone; other methods 405.
    "api_method_public": lambda role, scope: {"M"},
    "method_public": lambda role, scope: {"M"},
    "api_method": _api(lambda role, scope: {"M"}),
    "api_see_deal": _api(_matrix("view_page", "deal")),
    "api_change_deal": _api(_matrix("edit", "deal")),
    "api_reassign": _api(_matrix("reassign", "deal")),
    "api_see_org": _api(_matrix("view_page", "org")),
    "api_see_person": _api(_matrix("view_page", "person")),
    "api_configure": _api(lambda role, scope: {"Y"} if role == "admin" else {"N"}),
    "api_subscriber": _api(lambda role, scope: {"Y"} if role in SUBSCRIBERS else {"N"}),
    "api_endpoint": _api(
        lambda role, scope: {"Y"} if role in {ENDPOINT_OWNER, "admin"} else {"H"}
    ),
    "api_nowhere": _api(lambda role, scope: {"H"}),
    # The Django admin: staff only (the world's admin); anyone else gets its login page.
    # Past that, Django's own model permissions answer (history is read-only: 403), and
    # URLs built with placeholder ids may 404 or refuse a method.
    "staff": lambda role, scope: {"Y", "N", "H", "M"} if role == "admin" else {"L"},
}


# --- building each URL --------------------------------------------------------------------


def _scoped(records: Callable[[World], dict[str, Any]]) -> Callable[[World], Iterator]:
    def build(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
        for scope in SCOPES:
            yield scope, {"pk": records(world)[scope].pk}

    return build


def _notices(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
    for scope in SCOPES:
        deal = world.deals[scope]
        notice = Notification.objects.filter(deal=deal).order_by("pk").first()
        yield scope, {"pk": notice.pk}


def _admin(pattern: URLPattern) -> Callable[[World], Iterator]:
    """Django admin URLs, their arguments filled with the rep's user id where one is asked."""

    def build(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
        user_id = str(world.users["rep"].pk)
        values = {"object_id": user_id, "id": user_id, "app_label": "accounts"}
        values |= {"content_type_id": "1", "url": "no-such-page/"}
        yield "-", {k: values[k] for k in pattern.pattern.regex.groupindex}

    return build


QUERY = "?"  # a key of the arguments below: the query string the URL is sent with

OBJECTS: dict[str, Callable[[World], Iterator[tuple[str, dict[str, Any]]]]] = {
    "-": lambda world: iter([("-", {})]),
    "deal": _scoped(lambda world: world.deals),
    "deal_outcome": lambda world: (
        (scope, {"pk": world.deals[scope].pk, "outcome": "won"}) for scope in SCOPES
    ),
    "activity": lambda world: (
        (scope, {"activity_id": world.activities[scope].pk}) for scope in SCOPES
    ),
    "org": _scoped(lambda world: world.organizations),
    "person": _scoped(lambda world: world.people),
    "notification": _notices,
    "import": lambda world: iter([("-", {"pk": world.import_job.pk})]),
    "stage": lambda world: iter([("-", {"stage_id": world.stages["lead"].pk})]),
    "pipeline": lambda world: iter([("-", {"pipeline_id": world.pipeline.pk})]),
    "criterion": lambda world: iter(
        [("-", {"criterion_id": world.stages["demo"].criteria.get().pk})]
    ),
    "panel": lambda world: iter([("-", {"panel": "pipeline"})]),
    "board": lambda world: iter([("-", {QUERY: f"pipeline={world.pipeline.pk}"})]),
    # New deal names its column's stage (an unknown or missing stage is a 404).
    "new_deal": lambda world: iter([("-", {QUERY: f"stage={world.stages['lead'].pk}"})]),
    "card": lambda world: (
        (scope, {"pk": world.deals[scope].pk, QUERY: f"pipeline={world.pipeline.pk}"})
        for scope in SCOPES
    ),
    "api_activity": _scoped(lambda world: world.activities),
    "pipeline_pk": lambda world: iter([("-", {"pk": world.pipeline.pk})]),
    "stage_pk": lambda world: iter([("-", {"pk": world.stages["lead"].pk})]),
    "user": lambda world: (
        (scope, {"pk": world.users[TOKEN_OWNER[scope]].pk}) for scope in SCOPES
    ),
    "token": lambda world: ((scope, {"token_id": world.tokens[scope].pk}) for scope in SCOPES),
    "endpoint": lambda world: iter([("-", {"endpoint_id": world.endpoint.pk})]),
    "endpoint_pk": lambda world: iter([("-", {"pk": world.endpoint.pk})]),
    "delivery": lambda world: iter([("-", {"delivery_id": world.delivery.pk})]),
    "delivery_pk": lambda world: iter([("-", {"pk": world.delivery.pk})]),
    "criterion_pk": lambda world: iter([("-", {"pk": world.stages["demo"].criteria.get().pk})]),
    "recipe": lambda world: iter([("-", {"slug": "demo_prep"})]),
    "rule": lambda world: iter([("-", {"rule_id": world.rule.pk})]),
}


# --- the URL resolver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    name: str  # "namespace:name" as reverse() takes it, or the route's text if unnamed
    namespace: str
    pattern: URLPattern
    prefix: str  # the routes of the resolvers it sits in

    def url(self, kwargs: dict[str, Any]) -> str:
        kwargs = dict(kwargs)
        query = kwargs.pop(QUERY, "")
        if self.pattern.name:
            return reverse(self.name, kwargs=kwargs) + (f"?{query}" if query else "")
        # Unnamed (Django admin's redirects and catch-all): fill the route in by hand.
        route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m[1]]), self.prefix)
        route += re.sub(
            r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m[1]]), str(self.pattern.pattern)
        )
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(kwargs[m[1]]), route)
        return "/" + route.lstrip("^").rstrip("$")


def url_patterns() -> list[Found]:
    """Every pattern the root URLconf serves, recursively, with its full name."""
    found: list[Found] = []

    def walk(patterns: list, namespace: str, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = ":".join(p for p in (namespace, entry.namespace) if p)
                walk(entry.url_patterns, inner, prefix + str(entry.pattern))
            else:
                name = entry.name or f"<unnamed {prefix}{entry.pattern}>"
                full = f"{namespace}:{name}" if namespace else name
                found.append(Found(full, namespace, entry, prefix))

    walk(get_resolver().url_patterns, "", "")
    return found


PATTERNS = url_patterns()


def _route(found: Found) -> Route | None:
    return ROUTES.get(found.name) or NAMESPACES.get(found.namespace.split(":")[0])


def test_every_url_pattern_is_known():
    missing = sorted({f.name for f in PATTERNS if _route(f) is None})
    assert not missing, HOW_TO_REGISTER.format(
        count=len(missing),
        missing="\n".join(f"  {name}" for name in missing),
        example=missing[0] if missing else "",
        targets=", ".join(OBJECTS),
        rules=", ".join(RULES),
    )


def test_every_route_still_exists():
    """A route left behind by a removed URL would hide a typo in a new one."""
    names = {f.name for f in PATTERNS}
    assert set(ROUTES) <= names, sorted(set(ROUTES) - names)
    assert {f.namespace.split(":")[0] for f in PATTERNS} >= set(NAMESPACES)


def test_every_route_names_a_known_target_and_rules():
    for name, route in {**ROUTES, **NAMESPACES}.items():
        assert route.target in OBJECTS or route.target == "admin", name
        assert route.get in RULES and route.post in RULES, name


# --- the check ----------------------------------------------------------------------------


def _with_tokens_and_webhooks(world: World) -> World:
    """A token per owner of the three scopes; one webhook endpoint (North's manager's)
    with one delivery."""
    from django.utils import timezone

    from api import tokens
    from webhooks.models import Delivery, Endpoint

    world.tokens = {  # type: ignore[attr-defined]
        scope: tokens.create_token(by=world.users[owner], name=scope, scope="read").token
        for scope, owner in TOKEN_OWNER.items()
    }
    world.endpoint = Endpoint.objects.create(  # type: ignore[attr-defined]
        owner=world.users[ENDPOINT_OWNER],
        url="https://hooks.example.com/in",
        events=["deal.*"],
        secret="whsec_test",
    )
    world.delivery = Delivery.objects.create(  # type: ignore[attr-defined]
        endpoint=world.endpoint,
        event_id="evt-1",
        event_name="deal.moved",
        event_at=timezone.now(),
        deal_id=world.deals["rep"].pk,
    )
    from automations.models import Rule

    world.rule = Rule.objects.create(  # type: ignore[attr-defined]
        name="North's rule",
        owner=world.users[ENDPOINT_OWNER],
        trigger={"event": "deal.moved"},
        actions=[],
    )
    return world


def _with_import_job(world: World, tmp: Any) -> World:
    from tests.imports.imports_support import csv_of, run

    with override_settings(IMPORT_ROOT=tmp, CELERY_TASK_ALWAYS_EAGER=True):
        world.import_job = run(  # type: ignore[attr-defined]
            world.users[JOB_OWNER],
            csv_of("X1,m_rep,GTX,Imported Co,Prospecting,,,"),
            pipeline=world.pipeline,
            stages={"Prospecting": world.stages["lead"].pk},
        )
    return world


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory) -> Any:
    tmp = tmp_path_factory.mktemp("imports")
    with override_settings(IMPORT_ROOT=tmp):
        yield from data_for_module(
            django_db_blocker,
            lambda: _with_tokens_and_webhooks(_with_import_job(build_world(), tmp)),
        )


def _symbol(response: Any) -> str:
    if is_login_redirect(response):
        return "L"
    return {401: "U", 404: "H", 403: "N", 405: "M"}.get(response.status_code, "Y")


def _cases() -> list[tuple[Found, str]]:
    return [(found, role) for found in PATTERNS if _route(found) is not None for role in ROLES]


def _send(client: Any, method: str, url: str) -> Any:
    if method == "GET":
        return client.get(url)
    if url.startswith("/api/"):
        return client.post(url, data="{}", content_type="application/json")
    return client.post(url, headers=htmx())


@pytest.mark.parametrize(
    ("found", "role"), _cases(), ids=[f"{f.name}-{role}" for f, role in _cases()]
)
def test_url_answers_as_the_policy_says(world, found, role):
    route = _route(found)
    build = _admin(found.pattern) if route.target == "admin" else OBJECTS[route.target]
    client = world.client(role)
    wrong = []
    for scope, kwargs in build(world):
        url = found.url(kwargs)
        for method, rule in (("GET", route.get), ("POST", route.post)):
            response = _send(client, method, url)
            assert response.status_code < 500, f"{method} {url} as {role}: a server error"
            expected = RULES[rule](role, scope)
            observed = _symbol(response)
            if observed not in expected:
                wrong.append(
                    f"{method} {url} ({scope}) as {role}: {observed} "
                    f"({response.status_code}), policy says {'/'.join(sorted(expected))}"
                )
    assert not wrong, "\n".join(wrong)


def test_an_unknown_url_fails_and_says_how_to_register_it(monkeypatch):
    monkeypatch.delitem(ROUTES, "deal_detail")
    with pytest.raises(AssertionError, match=r'deal_detail(.|\n)*"deal_detail": R\("<target>"'):
        test_every_url_pattern_is_known()
