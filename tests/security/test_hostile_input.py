"""Hostile and malformed input: each case asserts the exact answer and an unchanged database.

The world below is seeded with markup, htmx attributes and spreadsheet formulas in every
text field a user can type (deal, organization, person, activity, stage, playbook,
criterion, user name, audit user name). Pages, fragments, exports and charts that show
them must escape or defuse them. Then malformed numbers, dates, ids, versions, methods,
tokens, replays and extra fields are thrown at every write endpoint. No case may answer
500, and none may change a single row of any app table (tests/security/support.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEvent, AuditKind, Role, User
from contacts.models import Organization, Person
from deals import stalled
from deals.models import Activity, Deal, GateEvent, GateOutcome, Notification
from stages.models import CriterionKind, Pipeline, Stage, StageKind
from tests.factories import (
    ActivityFactory,
    CriterionFactory,
    DealFactory,
    OrganizationFactory,
    PersonFactory,
    PipelineFactory,
    StageFactory,
    TeamFactory,
    UserFactory,
)
from tests.security.support import body, changed_tables, data_for_module, snapshot

pytestmark = pytest.mark.django_db


def script(tag: str) -> str:
    """A script element naming the field it was typed into, so a leak says where."""
    return f'<script>alert("{tag}")</script>'


def escaped(tag: str) -> str:
    return f"&lt;script&gt;alert(&quot;{tag}&quot;)&lt;/script&gt;"


# Would turn any element it lands in into an htmx request, if it broke out of its quotes.
HX = 'Call back" hx-get="/evil" hx-trigger="load'
HX_ESCAPED = "Call back&quot; hx-get=&quot;/evil&quot; hx-trigger=&quot;load"
IMG = '<img src=x onerror=alert("product")>'
IMG_ESCAPED = "&lt;img src=x onerror=alert(&quot;product&quot;)&gt;"
HX_IN_TEXT = '<b hx-post="/evil" hx-trigger="load">Call</b>'
HX_IN_TEXT_ESCAPED = (
    "&lt;b hx-post=&quot;/evil&quot; hx-trigger=&quot;load&quot;&gt;Call&lt;/b&gt;"
)
# Spreadsheets run a cell starting with = + - @ (or tab / carriage return) as a formula.
FORMULAS = {
    "title": '=HYPERLINK("http://evil.example","Click")',
    "organization": "+SUM(1;2)",
    "person": "-2+3",
    "next_step": "@cmd",
    "product": "\t=1+1",
}
AUDIT_FORMULA = "=cmd|' /C calc'!A0"


@dataclass
class HostileWorld:
    users: dict[str, User]
    pipeline: Pipeline
    archived_pipeline: Pipeline
    stages: dict[str, Stage]
    deal: Deal  # the rep's, full of markup
    formula_deal: Deal  # the rep's, full of formulas
    foreign_deal: Deal  # another team's
    activity: Activity
    foreign_activity: Activity
    foreign_notification: Notification
    foreign_organization: Organization
    foreign_person: Person
    sessions: dict[str, str] = field(default_factory=dict)

    def client(self, actor: str, *, csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        if actor in self.sessions:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.sessions[actor]
        return client


def build() -> HostileWorld:
    east, west = TeamFactory(name="Hostile East"), TeamFactory(name="Hostile West")
    manager = UserFactory(username="h_manager", role=Role.MANAGER, team=east)
    east.manager = manager
    east.save()
    users = {
        "rep": UserFactory(username="h_rep", team=east, first_name=script("owner")),
        "teammate": UserFactory(
            username="h_teammate", team=east, first_name="=1+1", last_name="Formula"
        ),
        "outsider": UserFactory(username="h_outsider", team=west),
        "manager": manager,
        "admin": UserFactory(
            username="h_admin", role=Role.ADMIN, is_staff=True, is_superuser=True
        ),
        "retired": UserFactory(username="h_retired", team=east, is_active=False),
    }
    pipeline = PipelineFactory(name="Hostile sales")
    stages = {
        "lead": StageFactory(
            pipeline=pipeline,
            name="Lead",
            position=0,
            guidance=f"{script('guidance')}\n{HX}",
        ),
        "qualified": StageFactory(pipeline=pipeline, name="Qualified", position=1),
        "proposal": StageFactory(
            pipeline=pipeline, name=f"Proposal {script('stage')}", position=2
        ),
        "negotiation": StageFactory(pipeline=pipeline, name="@Negotiation", position=3),
        "old": StageFactory(pipeline=pipeline, name="Old", position=4, is_archived=True),
        "won": StageFactory(pipeline=pipeline, name="Won", position=10, kind=StageKind.WON),
        "lost": StageFactory(pipeline=pipeline, name="Lost", position=11, kind=StageKind.LOST),
    }
    criterion = CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label=script("criterion")
    )
    archived_pipeline = PipelineFactory(name="Retired pipeline", is_archived=True)
    stages["retired"] = StageFactory(pipeline=archived_pipeline, name="Retired", position=0)
    rep = users["rep"]
    organization = OrganizationFactory(name=script("organization"), created_by=rep)
    person = PersonFactory(name=script("person"), organization=organization, created_by=rep)
    deal = DealFactory(
        title=f"Deal {script('title')}",
        owner=rep,
        stage=stages["lead"],
        organization=organization,
        person=person,
        next_step=HX,
        product=IMG,
        amount=Decimal("5000"),
        currency="USD",
        expected_close_date=timezone.localdate() - timedelta(days=1),
        version=3,  # so version 2 is a stale one
    )
    activity = ActivityFactory(deal=deal, owner=rep, subject=HX_IN_TEXT, note=script("note"))
    formula_deal = DealFactory(
        title=FORMULAS["title"],
        owner=rep,
        stage=stages["lead"],
        organization=OrganizationFactory(name=FORMULAS["organization"], created_by=rep),
        person=PersonFactory(name=FORMULAS["person"], organization=None, created_by=rep),
        next_step=FORMULAS["next_step"],
        product=FORMULAS["product"],
    )
    DealFactory(title="Teammate deal", owner=users["teammate"], stage=stages["negotiation"])
    foreign_org = OrganizationFactory(name="West Corp", created_by=users["outsider"])
    foreign_deal = DealFactory(
        title="West deal",
        owner=users["outsider"],
        stage=stages["lead"],
        organization=foreign_org,
        person=PersonFactory(name="West Person", organization=foreign_org),
    )
    foreign_activity = ActivityFactory(deal=foreign_deal, owner=users["outsider"])
    # The hostile deal's close date passed: its owner gets a notification naming it.
    stalled.refresh_flags()
    foreign_notification = Notification.objects.create(
        user=users["teammate"], deal=None, kind="note", text="For the teammate only"
    )
    # Gate telemetry, so the dashboard's gate chart has the criterion's label to draw.
    GateEvent.objects.create(
        deal=deal,
        stage=stages["qualified"],
        criterion=criterion,
        requirement=criterion.requirement,
        outcome=GateOutcome.BLOCKED,
        by=rep,
        source="board",
    )
    audit.record(AuditKind.LOGIN_FAILED, username=script("username"))
    audit.record(AuditKind.LOGIN_FAILED, username=AUDIT_FORMULA)
    world = HostileWorld(
        users=users,
        pipeline=pipeline,
        archived_pipeline=archived_pipeline,
        stages=stages,
        deal=deal,
        formula_deal=formula_deal,
        foreign_deal=foreign_deal,
        activity=activity,
        foreign_activity=foreign_activity,
        foreign_notification=foreign_notification,
        foreign_organization=foreign_org,
        foreign_person=foreign_deal.person,
    )
    for actor, user in users.items():
        if user.is_active:
            client = Client()
            client.force_login(user)
            world.sessions[actor] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return world


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Any:
    yield from data_for_module(django_db_blocker, build)


@pytest.fixture(autouse=True)
def imports_elsewhere(settings, tmp_path):
    """Uploaded files go to a scratch directory, never the project's var/."""
    settings.IMPORT_ROOT = tmp_path


W = HostileWorld
Check = Callable[[Any, W], None]


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: Callable[[W], str]
    status: int
    data: Callable[[W], Any] | None = None
    actor: str = "rep"
    htmx: bool = False
    csrf: bool = False  # enforce CSRF checks, as a browser without the token would meet them
    content_type: str | None = None
    replay: bool = False  # send once first (allowed), then replay; the replay is checked
    # The one write a case may make: an audit row recording it (exports are audited).
    audited: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    check: Check | None = None


def send(client: Client, case: Case, world: W) -> Any:
    headers = {"HX-Request": "true"} if case.htmx else {}
    headers.update(case.headers)
    data = case.data(world) if case.data else None
    kwargs: dict[str, Any] = {"headers": headers}
    if case.content_type:
        kwargs["content_type"] = case.content_type
    request = getattr(client, case.method.lower())
    if data is None:
        return request(case.path(world), **kwargs)
    return request(case.path(world), data, **kwargs)


# --- checks ------------------------------------------------------------------------------


def shows_escaped(*tags: str, extra: tuple[str, ...] = ()) -> Check:
    """Every tagged script is shown as text (escaped), none as markup; same for `extra`."""

    def check(response: Any, world: W) -> None:
        text = body(response)
        for tag in tags:
            assert script(tag) not in text, f"{tag} rendered as markup"
            assert escaped(tag) in text, f"{tag} not shown"
        for raw, safe in PAIRS:
            if safe in extra:
                assert safe in text
            assert raw not in text
        assert "<script>alert(" not in text

    return check


# raw payload -> how it must appear once escaped
PAIRS = [
    ('hx-get="/evil"', HX_ESCAPED),
    ('hx-post="/evil"', HX_IN_TEXT_ESCAPED),
    ("<img src=x", IMG_ESCAPED),
]


def csv_rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body(response).lstrip("\ufeff"))))


def formulas_defused(response: Any, world: W) -> None:
    cells = [cell for row in csv_rows(response) for cell in row]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells), cells
    for value in FORMULAS.values():
        assert f"'{value}" in cells, f"{value!r} missing or not defused"


def audit_formula_defused(response: Any, world: W) -> None:
    cells = [cell for row in csv_rows(response) for cell in row]
    assert f"'{AUDIT_FORMULA}" in cells
    assert script("username") in cells  # CSV is not HTML: kept as typed, not escaped


def dashboard_csv_defused(expected: str) -> Check:
    def check(response: Any, world: W) -> None:
        cells = [cell for row in csv_rows(response) for cell in row]
        assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
        assert expected in cells, cells

    return check


def svg_labels_escaped(response: Any, world: W) -> None:
    text = body(response)
    assert "<svg" in text
    shows_escaped("stage", "criterion")(response, world)


def json_not_html(response: Any, world: W) -> None:
    assert response["Content-Type"] == "application/json"
    blocked = json.loads(body(response))["blocked"]
    assert any(
        script("criterion") in message for messages in blocked.values() for message in messages
    )


def redirects_to_deal(response: Any, world: W) -> None:
    assert response["Location"] == reverse("deal_detail", args=[world.deal.pk])


def nothing_found(response: Any, world: W) -> None:
    text = body(response)
    assert "West deal" not in text and world.deal.title not in text


# --- request builders --------------------------------------------------------------------


def url(name: str, *args: Callable[[W], Any]) -> Callable[[W], str]:
    return lambda w: reverse(name, args=[arg(w) for arg in args])


def deal_pk(w: W) -> int:
    return w.deal.pk


def foreign_pk(w: W) -> int:
    return w.foreign_deal.pk


def edit_form(**changes: Any) -> Callable[[W], dict[str, Any]]:
    """The deal edit form as the page fills it in, with `changes` on top."""

    def data(w: W) -> dict[str, Any]:
        deal = w.deal
        return {
            "title": deal.title,
            "amount": "5000.00",
            "currency": "USD",
            "expected_close_date": deal.expected_close_date.isoformat(),
            "probability_override": "",
            "next_step": deal.next_step,
            "product": deal.product,
            "organization_name": deal.organization.name,
            "person_name": deal.person.name,
            "version": deal.version,
            "stage": deal.stage_id,
            **{k: (v(w) if callable(v) else v) for k, v in changes.items()},
        }

    return data


def move_form(**changes: Any) -> Callable[[W], dict[str, Any]]:
    def data(w: W) -> dict[str, Any]:
        form = {"stage": w.stages["proposal"].pk, "version": w.deal.version, "source": "menu"}
        form.update({k: (v(w) if callable(v) else v) for k, v in changes.items()})
        return {k: v for k, v in form.items() if v is not None}

    return data


def activity_form(**changes: Any) -> Callable[[W], dict[str, Any]]:
    base = {"type": "call", "subject": "Follow up", "due_at": "2031-05-04T10:00", "note": ""}
    return lambda w: {**base, **changes}


def organization_form(**changes: Any) -> Callable[[W], dict[str, Any]]:
    def data(w: W) -> dict[str, Any]:
        organization = w.deal.organization
        return {"name": organization.name, "sector": "", "website": "", **changes}

    return data


def person_form(**changes: Any) -> Callable[[W], dict[str, Any]]:
    def data(w: W) -> dict[str, Any]:
        person = w.deal.person
        form = {"name": person.name, "organization": person.organization_id, **changes}
        return {k: (v(w) if callable(v) else v) for k, v in form.items()}

    return data


def stage(name: str) -> Callable[[W], int]:
    return lambda w: w.stages[name].pk


HUGE_ID = 10**20  # past any 64-bit key
LONG = "x" * 201

CASES = [
    # -- markup and htmx attributes typed into text fields: escaped wherever shown ------
    Case(
        "xss-board-card",
        "GET",
        lambda w: f"{reverse('board')}?pipeline={w.pipeline.pk}",
        200,
        check=shows_escaped("title", "organization", "stage", "owner"),
    ),
    Case(
        "xss-deal-page",
        "GET",
        url("deal_detail", deal_pk),
        200,
        check=shows_escaped(
            "title",
            "organization",
            "person",
            "guidance",
            "owner",
            extra=(HX_ESCAPED, IMG_ESCAPED, HX_IN_TEXT_ESCAPED),
        ),
    ),
    Case(
        "xss-deal-edit-form-values",
        "GET",
        url("deal_edit", deal_pk),
        200,
        check=shows_escaped("title", "organization", "person", extra=(HX_ESCAPED,)),
    ),
    Case(
        "xss-card-next-stage-fragment",
        "GET",
        url("deal_next", deal_pk),
        200,
        htmx=True,
        check=shows_escaped("criterion", "guidance"),
    ),
    Case(
        "xss-gate-hints-are-json-not-html",
        "GET",
        url("deal_gate", deal_pk),
        200,
        check=json_not_html,
    ),
    Case(
        "xss-search-dropdown",
        "GET",
        lambda w: f"{reverse('search')}?q=script",
        200,
        htmx=True,
        check=shows_escaped("title", "organization", "person"),
    ),
    Case(
        "xss-search-query-echoed",
        "GET",
        lambda w: f"{reverse('search')}?q={script('query')}",
        200,
        check=shows_escaped("query"),
    ),
    Case(
        "xss-organization-page",
        "GET",
        lambda w: reverse("contacts:organization", args=[w.deal.organization_id]),
        200,
        check=shows_escaped("organization", "person", "title"),
    ),
    Case(
        "xss-person-page",
        "GET",
        lambda w: reverse("contacts:person", args=[w.deal.person_id]),
        200,
        check=shows_escaped("person", "organization", "title"),
    ),
    Case(
        "xss-organization-list",
        "GET",
        lambda w: reverse("contacts:organizations"),
        200,
        check=shows_escaped("organization"),
    ),
    Case(
        "xss-people-list",
        "GET",
        lambda w: reverse("contacts:people"),
        200,
        check=shows_escaped("person", "organization"),
    ),
    Case(
        "xss-notifications",
        "GET",
        lambda w: reverse("notifications"),
        200,
        check=shows_escaped("title"),
    ),
    Case(
        "xss-my-activities",
        "GET",
        lambda w: reverse("my_activities"),
        200,
        check=shows_escaped("title", extra=(HX_IN_TEXT_ESCAPED,)),
    ),
    Case(
        "xss-dashboard-svg-labels",
        "GET",
        lambda w: f"{reverse('reports:dashboard')}?pipeline={w.pipeline.pk}",
        200,
        actor="manager",
        check=svg_labels_escaped,
    ),
    Case(
        "xss-stage-settings-page",
        "GET",
        lambda w: reverse("stages:pipeline", args=[w.pipeline.pk]),
        200,
        actor="admin",
        check=shows_escaped("stage"),
    ),
    Case(
        "xss-criterion-settings-page",
        "GET",
        lambda w: reverse("stages:stage", args=[w.stages["qualified"].pk]),
        200,
        actor="admin",
        check=shows_escaped("criterion"),
    ),
    Case(
        "xss-audit-log-user-names",
        "GET",
        lambda w: reverse("accounts:audit"),
        200,
        actor="admin",
        check=shows_escaped("username"),
    ),
    # -- spreadsheet formulas in exports are neutralised ---------------------------------
    Case(
        "csv-board-export-defuses-formulas",
        "GET",
        lambda w: f"{reverse('board_export')}?pipeline={w.pipeline.pk}",
        200,
        check=formulas_defused,
    ),
    Case(
        "csv-audit-export-defuses-formulas",
        "GET",
        lambda w: f"{reverse('accounts:audit')}?format=csv&kind=login_failed",
        200,
        actor="admin",
        audited=AuditKind.EXPORT,
        check=audit_formula_defused,
    ),
    Case(
        "csv-dashboard-stage-names-defused",
        "GET",
        lambda w: (
            f"{reverse('reports:dashboard_csv', args=['pipeline'])}?pipeline={w.pipeline.pk}"
        ),
        200,
        actor="manager",
        check=dashboard_csv_defused("'@Negotiation"),
    ),
    Case(
        "csv-dashboard-rep-names-defused",
        "GET",
        lambda w: f"{reverse('reports:dashboard_csv', args=['reps'])}?pipeline={w.pipeline.pk}",
        200,
        actor="manager",
        check=dashboard_csv_defused("'=1+1 Formula"),
    ),
    # -- numbers and dates that are not --------------------------------------------------
    *[
        Case(f"edit-amount-{name}", "POST", url("deal_edit", deal_pk), 422, edit_form(amount=v))
        for name, v in [
            ("negative", "-5"),
            ("huge", "1e20"),
            ("not-a-number", "abc"),
            ("nan", "NaN"),
            ("infinity", "Infinity"),
            ("three-decimals", "12.345"),
        ]
    ],
    *[
        Case(
            f"edit-close-date-{name}",
            "POST",
            url("deal_edit", deal_pk),
            422,
            edit_form(expected_close_date=v),
        )
        for name, v in [
            ("february-30", "2030-02-30"),
            ("year-zero", "0000-01-01"),
            ("five-digit-year", "99999-12-31"),
        ]
    ],
    Case(
        "edit-probability-over-100",
        "POST",
        url("deal_edit", deal_pk),
        422,
        edit_form(probability_override="101"),
    ),
    Case(
        "edit-currency-markup",
        "POST",
        url("deal_edit", deal_pk),
        422,
        edit_form(currency="<b>"),
    ),
    Case("edit-title-over-long", "POST", url("deal_edit", deal_pk), 422, edit_form(title=LONG)),
    Case("edit-title-blank", "POST", url("deal_edit", deal_pk), 422, edit_form(title="   ")),
    Case("edit-title-nul-byte", "POST", url("deal_edit", deal_pk), 422, edit_form(title="a\x00b")),
    Case(
        "new-deal-amount-nan",
        "POST",
        lambda w: reverse("deal_new"),
        422,
        lambda w: {"title": "New", "currency": "USD", "amount": "NaN"},
    ),
    Case(
        "close-won-amount-negative",
        "POST",
        lambda w: reverse("deal_close", args=[w.deal.pk, "won"]),
        400,
        lambda w: {"version": w.deal.version, "amount": "-1"},
    ),
    Case(
        "gate-fix-lost-reason-over-long",
        "POST",
        url("deal_fix_move", deal_pk),
        422,
        lambda w: {"stage": w.stages["lost"].pk, "version": w.deal.version, "lost_reason": LONG},
    ),
    Case(
        "new-deal-form-ignores-stage-of-archived-pipeline",
        "GET",
        lambda w: f"{reverse('deal_new')}?stage={w.stages['retired'].pk}",
        200,
        check=lambda response, w: "Retired" not in body(response),
    ),
    Case(
        "activity-due-impossible",
        "POST",
        url("activity_create", deal_pk),
        422,
        activity_form(due_at="2030-13-45T25:61"),
    ),
    Case(
        "activity-unknown-type",
        "POST",
        url("activity_create", deal_pk),
        422,
        activity_form(type="exploit"),
    ),
    Case(
        "activity-note-over-long",
        "POST",
        url("activity_create", deal_pk),
        422,
        activity_form(note="n" * 5001),
    ),
    Case(
        "snooze-date-impossible",
        "POST",
        url("deal_snooze", deal_pk),
        422,
        lambda w: {"until": "2030-02-30", "reason": "Holiday"},
        htmx=True,
    ),
    Case(
        "snooze-date-in-the-past",
        "POST",
        url("deal_snooze", deal_pk),
        422,
        lambda w: {"until": "2001-01-01", "reason": "Holiday"},
        htmx=True,
    ),
    Case(
        "organization-revenue-negative",
        "POST",
        lambda w: reverse("contacts:organization_edit", args=[w.deal.organization_id]),
        422,
        organization_form(annual_revenue="-1"),
    ),
    Case(
        "organization-website-javascript-url",
        "POST",
        lambda w: reverse("contacts:organization_edit", args=[w.deal.organization_id]),
        422,
        organization_form(website="javascript:alert(1)"),
    ),
    Case(
        "person-email-invalid",
        "POST",
        lambda w: reverse("contacts:person_edit", args=[w.deal.person_id]),
        422,
        person_form(email="not-an-email"),
    ),
    Case(
        "stage-probability-150",
        "POST",
        lambda w: reverse("stages:new_stage", args=[w.pipeline.pk]),
        422,
        lambda w: {
            "name": "Negotiation",
            "kind": "open",
            "probability": "150",
            "forecast_category": "pipeline",
            "rotting_days": "0",
        },
        actor="admin",
    ),
    # -- unknown and foreign ids ---------------------------------------------------------
    Case("deal-unknown-id", "GET", lambda w: reverse("deal_detail", args=[999999]), 404),
    Case("deal-id-past-64-bits", "GET", lambda w: f"/deals/{HUGE_ID}/", 404),
    Case("deal-id-not-a-number", "GET", lambda w: "/deals/abc/", 404),
    Case("deal-foreign-page", "GET", url("deal_detail", foreign_pk), 404),
    Case(
        "move-foreign-deal",
        "POST",
        url("deal_move", foreign_pk),
        404,
        lambda w: {"stage": w.stages["qualified"].pk, "version": w.foreign_deal.version},
        htmx=True,
    ),
    Case(
        "edit-foreign-deal",
        "POST",
        url("deal_edit", foreign_pk),
        404,
        edit_form(version=lambda w: w.foreign_deal.version),
    ),
    Case(
        "activity-on-foreign-deal",
        "POST",
        url("activity_create", foreign_pk),
        404,
        activity_form(),
    ),
    Case(
        "delete-foreign-activity",
        "POST",
        lambda w: reverse("activity_delete", args=[w.foreign_activity.pk]),
        404,
    ),
    Case(
        "complete-foreign-activity",
        "POST",
        lambda w: reverse("activity_complete", args=[w.foreign_activity.pk]),
        404,
    ),
    Case(
        "read-foreign-notification",
        "POST",
        lambda w: reverse("notification_read", args=[w.foreign_notification.pk]),
        404,
    ),
    Case(
        "open-foreign-notification",
        "POST",
        lambda w: reverse("notification_open", args=[w.foreign_notification.pk]),
        404,
    ),
    Case(
        "snooze-foreign-deal",
        "POST",
        url("deal_snooze", foreign_pk),
        404,
        lambda w: {"until": (timezone.localdate() + timedelta(days=3)).isoformat(), "reason": "x"},
    ),
    Case(
        "edit-foreign-organization",
        "POST",
        lambda w: reverse("contacts:organization_edit", args=[w.foreign_organization.pk]),
        404,
        lambda w: {"name": "Taken over"},
    ),
    Case(
        "person-pointed-at-foreign-organization",
        "POST",
        lambda w: reverse("contacts:person_edit", args=[w.deal.person_id]),
        422,
        person_form(organization=lambda w: w.foreign_organization.pk),
    ),
    Case(
        "reassign-to-another-teams-rep",
        "POST",
        url("deal_reassign", deal_pk),
        400,
        lambda w: {"owner": w.users["outsider"].pk, "version": w.deal.version},
        actor="manager",
    ),
    Case(
        "reassign-to-deactivated-user",
        "POST",
        url("deal_reassign", deal_pk),
        400,
        lambda w: {"owner": w.users["retired"].pk, "version": w.deal.version},
        actor="manager",
    ),
    Case(
        "move-to-unknown-stage",
        "POST",
        url("deal_move", deal_pk),
        400,
        move_form(stage=999999),
        htmx=True,
    ),
    Case(
        "move-to-stage-id-past-64-bits",
        "POST",
        url("deal_move", deal_pk),
        400,
        move_form(stage=HUGE_ID),
        htmx=True,
    ),
    Case(
        "move-to-archived-stage",
        "POST",
        url("deal_move", deal_pk),
        400,
        move_form(stage=stage("old")),
        htmx=True,
    ),
    Case(
        "move-to-stage-of-archived-pipeline",
        "POST",
        url("deal_move", deal_pk),
        400,
        move_form(stage=stage("retired")),
        htmx=True,
    ),
    Case(
        "edit-to-stage-of-archived-pipeline",
        "POST",
        url("deal_edit", deal_pk),
        422,
        edit_form(stage=stage("retired")),
    ),
    Case(
        "board-column-of-unknown-stage",
        "GET",
        lambda w: reverse("column_more", args=[999999]),
        404,
    ),
    Case(
        "import-by-a-rep",
        "GET",
        lambda w: reverse("import_start"),
        404,
    ),
    # -- stale and missing versions ------------------------------------------------------
    Case(
        "move-stale-version",
        "POST",
        url("deal_move", deal_pk),
        409,
        move_form(version=2),
        htmx=True,
    ),
    Case(
        "move-missing-version",
        "POST",
        url("deal_move", deal_pk),
        400,
        move_form(version=None),
        htmx=True,
    ),
    Case(
        "move-version-not-a-number",
        "POST",
        url("deal_move", deal_pk),
        400,
        move_form(version="three"),
        htmx=True,
    ),
    Case(
        "move-version-past-64-bits",
        "POST",
        url("deal_move", deal_pk),
        409,
        move_form(version=HUGE_ID),
        htmx=True,
    ),
    Case(
        "edit-stale-version",
        "POST",
        url("deal_edit", deal_pk),
        409,
        edit_form(version=2, title="Overwritten"),
    ),
    Case("edit-missing-version", "POST", url("deal_edit", deal_pk), 422, edit_form(version="")),
    Case(
        "reassign-stale-version",
        "POST",
        url("deal_reassign", deal_pk),
        409,
        lambda w: {"owner": w.users["teammate"].pk, "version": 2},
        actor="manager",
    ),
    Case(
        "close-stale-version",
        "POST",
        lambda w: reverse("deal_close", args=[w.deal.pk, "won"]),
        409,
        lambda w: {"version": 2, "amount": "10"},
    ),
    # -- missing CSRF token --------------------------------------------------------------
    Case(
        "csrf-missing-on-move",
        "POST",
        url("deal_move", deal_pk),
        403,
        move_form(stage=stage("lead")),
        csrf=True,
        htmx=True,
    ),
    Case(
        "csrf-missing-on-edit",
        "POST",
        url("deal_edit", deal_pk),
        403,
        edit_form(title="Forged"),
        csrf=True,
    ),
    Case(
        "csrf-missing-on-activity",
        "POST",
        url("activity_create", deal_pk),
        403,
        activity_form(),
        csrf=True,
    ),
    Case(
        "csrf-missing-on-reassign",
        "POST",
        url("deal_reassign", deal_pk),
        403,
        lambda w: {"owner": w.users["manager"].pk, "version": w.deal.version},
        actor="manager",
        csrf=True,
    ),
    Case(
        "csrf-missing-on-configuration",
        "POST",
        lambda w: reverse("stages:create_pipeline"),
        403,
        lambda w: {"name": "Forged pipeline"},
        actor="admin",
        csrf=True,
    ),
    Case(
        "csrf-missing-on-logout",
        "POST",
        lambda w: reverse("logout"),
        403,
        csrf=True,
    ),
    # -- wrong HTTP method ---------------------------------------------------------------
    Case("method-get-on-move", "GET", url("deal_move", deal_pk), 405),
    Case("method-put-on-edit", "PUT", url("deal_edit", deal_pk), 405),
    Case("method-delete-on-deal", "DELETE", url("deal_detail", deal_pk), 405),
    Case(
        "method-get-on-delete-activity",
        "GET",
        lambda w: reverse("activity_delete", args=[w.activity.pk]),
        405,
    ),
    Case("method-post-on-board", "POST", lambda w: reverse("board"), 405),
    Case("method-post-on-export", "POST", lambda w: reverse("board_export"), 405),
    Case("method-get-on-read-all", "GET", lambda w: reverse("notifications_read_all"), 405),
    Case("method-get-on-logout", "GET", lambda w: reverse("logout"), 405),
    # -- replayed requests: the second copy changes nothing ------------------------------
    # The card is already there and its version moved on: a stale version is a conflict on
    # every path, a move into the stage the deal is in included (issue 14).
    Case(
        "replay-move",
        "POST",
        url("deal_move", deal_pk),
        409,
        move_form(stage=stage("proposal")),
        htmx=True,
        replay=True,
    ),
    Case(
        "replay-edit",
        "POST",
        url("deal_edit", deal_pk),
        409,
        edit_form(title="Edited once"),
        replay=True,
    ),
    Case(
        "replay-reassign",
        "POST",
        url("deal_reassign", deal_pk),
        409,
        lambda w: {"owner": w.users["teammate"].pk, "version": w.deal.version},
        actor="manager",
        replay=True,
    ),
    Case(
        "replay-close-won",
        "POST",
        lambda w: reverse("deal_close", args=[w.deal.pk, "won"]),
        409,
        lambda w: {"version": w.deal.version, "amount": "10"},
        replay=True,
    ),
    Case(
        "replay-delete-activity",
        "POST",
        lambda w: reverse("activity_delete", args=[w.activity.pk]),
        404,
        replay=True,
    ),
    Case(
        "replay-mark-all-read",
        "POST",
        lambda w: reverse("notifications_read_all"),
        302,
        replay=True,
    ),
    # -- extra POST fields (mass assignment) are ignored ---------------------------------
    Case(
        "mass-assignment-on-deal-edit",
        "POST",
        url("deal_edit", deal_pk),
        200,
        edit_form(
            owner=lambda w: w.users["outsider"].pk,
            pipeline=lambda w: w.archived_pipeline.pk,
            position="-1",
            closed_at="2020-01-01T00:00",
            stage_entered_at="2000-01-01T00:00",
            close_date_pushes="0",
            created_at="2000-01-01T00:00",
            external_id="forged",
            snoozed_until="2030-01-01",
            lost_reason="forged",
            probability_override="",
        ),
        htmx=True,
    ),
    Case(
        "mass-assignment-on-organization-edit",
        "POST",
        lambda w: reverse("contacts:organization_edit", args=[w.deal.organization_id]),
        302,
        organization_form(created_by="1", created_at="2000-01-01"),
    ),
    Case(
        "mass-assignment-on-move-override-by-rep",
        "POST",
        url("deal_move", deal_pk),
        400,
        move_form(override_reason="I say so", owner=lambda w: w.users["rep"].pk),
        htmx=True,
    ),
    Case(
        "move-source-not-offered",
        "POST",
        url("deal_move", deal_pk),
        400,
        move_form(source="import"),
        htmx=True,
    ),
    # -- odd query strings, bodies and headers -------------------------------------------
    Case(
        "search-over-long-query",
        "GET",
        lambda w: f"{reverse('search')}?q={'West' * 30}",
        200,
        check=nothing_found,
    ),
    Case("search-wildcard-query", "GET", lambda w: f"{reverse('search')}?q=%25%25", 200),
    Case("search-nul-byte", "GET", lambda w: f"{reverse('search')}?q=ab%00cd", 200),
    Case(
        "board-garbage-filters",
        "GET",
        lambda w: (
            f"{reverse('board')}?owner=abc&team=-1&close_from=2030-02-30&sort=evil&stage=%00"
        ),
        200,
    ),
    # Ids and offsets in query strings go through one strict parser (common/ids.py):
    # ASCII digits within a 64-bit key, anything else 400 ("²" passed isdigit() and then
    # failed int(): a 500 on the export and the settings audit).
    Case("board-pipeline-not-a-number", "GET", lambda w: f"{reverse('board')}?pipeline=x", 400),
    Case(
        "board-pipeline-unicode-digit", "GET", lambda w: f"{reverse('board')}?pipeline=%C2%B2", 400
    ),
    Case(
        "board-column-negative-offset",
        "GET",
        lambda w: f"{reverse('column_more', args=[w.stages['lead'].pk])}?offset=-5",
        400,
    ),
    Case(
        "board-column-offset-past-64-bits",
        "GET",
        lambda w: (
            f"{reverse('column_more', args=[w.stages['lead'].pk])}?offset=99999999999999999999"
        ),
        400,
    ),
    Case(
        "board-column-offset-far-past-the-end",
        "GET",
        lambda w: f"{reverse('column_more', args=[w.stages['lead'].pk])}?offset={2**63 - 1}",
        200,
    ),
    Case(
        "export-pipeline-unicode-digit",
        "GET",
        lambda w: f"{reverse('board_export')}?pipeline=%C2%B2",
        400,
    ),
    Case(
        "settings-audit-pipeline-unicode-digit",
        "GET",
        lambda w: f"{reverse('stages:audit')}?pipeline=%C2%B2",
        400,
        actor="admin",
    ),
    Case(
        "settings-audit-pipeline-past-64-bits",
        "GET",
        lambda w: f"{reverse('stages:audit')}?pipeline={HUGE_ID}",
        400,
        actor="admin",
    ),
    Case(
        "new-deal-stage-unicode-digit",
        "GET",
        lambda w: f"{reverse('deal_new')}?stage=%C2%B2",
        400,
    ),
    Case(
        "new-person-organization-unicode-digit",
        "GET",
        lambda w: f"{reverse('contacts:person_create')}?organization=%C2%B2",
        400,
    ),
    Case(
        "organization-suggest-nul-byte",
        "GET",
        lambda w: f"{reverse('contacts:organization_suggest')}?organization_name=ab%00cd",
        400,
    ),
    Case(
        "person-suggest-nul-byte",
        "GET",
        lambda w: f"{reverse('contacts:person_suggest')}?person_name=ab%00cd",
        400,
    ),
    Case(
        "dashboard-custom-period-backwards",
        "GET",
        lambda w: (
            f"{reverse('reports:dashboard')}?period=custom&date_from=2030-02-01&date_to=2030-01-01"
        ),
        200,
        actor="manager",
    ),
    Case(
        "dashboard-csv-unknown-panel",
        "GET",
        lambda w: reverse("reports:dashboard_csv", args=["secrets"]),
        404,
        actor="manager",
    ),
    Case(
        "dashboard-csv-foreign-team-filter",
        "GET",
        lambda w: (
            f"{reverse('reports:dashboard_csv', args=['pipeline'])}"
            f"?team={w.users['outsider'].team_id}"
        ),
        400,
        actor="manager",
    ),
    Case(
        "export-pipeline-not-a-number",
        "GET",
        lambda w: f"{reverse('board_export')}?pipeline=x",
        400,
    ),
    Case(
        "notifications-page-not-a-number",
        "GET",
        lambda w: f"{reverse('notifications')}?page=-1",
        200,
    ),
    Case(
        "json-body-to-move",
        "POST",
        url("deal_move", deal_pk),
        400,
        lambda w: json.dumps({"stage": w.stages["proposal"].pk, "version": w.deal.version}),
        content_type="application/json",
        htmx=True,
    ),
    Case(
        "too-many-fields",
        "POST",
        url("deal_edit", deal_pk),
        400,
        lambda w: {f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)},
    ),
    Case(
        "body-too-big",
        "POST",
        url("deal_edit", deal_pk),
        400,
        edit_form(note="n" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)),
    ),
    Case(
        "forged-host-header",
        "GET",
        lambda w: reverse("board"),
        400,
        headers={"Host": "evil.example"},
    ),
    Case(
        "open-redirect-after-unsnooze",
        "POST",
        url("deal_unsnooze", deal_pk),
        302,
        lambda w: {"next": "https://evil.example/phish"},
        check=redirects_to_deal,
    ),
    Case(
        "import-upload-not-a-csv",
        "POST",
        lambda w: reverse("import_start"),
        400,
        lambda w: {
            "kind": "deals",
            "pipeline": w.pipeline.pk,
            "file": SimpleUploadedFile("payload.exe", b"MZ\x90\x00", "application/octet-stream"),
        },
        actor="manager",
    ),
]


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_request(world, case):
    client = world.client(case.actor, csrf=case.csrf)
    if case.replay:
        first = send(client, case, world)
        assert first.status_code in (200, 302), "the original request should have worked"
    before = snapshot()

    response = send(client, case, world)

    assert response.status_code == case.status
    after = snapshot()
    if case.audited:
        log = "accounts.AuditEvent"
        added = after[log][len(before[log]) :]
        assert after[log][: len(before[log])] == before[log] and len(added) == 1
        assert AuditEvent.objects.latest("pk").kind == case.audited
        after[log] = before[log]
    assert changed_tables(before, after) == []
    if case.check is not None:
        case.check(response, world)


def test_fix_and_move_naming_an_organization_two_records_share_attaches_the_oldest(
    client_for, rep, stages
):
    """Two organizations called "Acme": fix-and-move used get_or_create and answered 500."""
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="organization"
    )
    oldest = OrganizationFactory(name="Acme", created_by=rep)
    OrganizationFactory(name="Acme", created_by=rep)
    deal = DealFactory(owner=rep, stage=stages["lead"], organization=None)

    response = client_for(rep).post(
        reverse("deal_fix_move", args=[deal.pk]),
        {"stage": stages["qualified"].pk, "version": deal.version, "organization": "Acme"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    deal.refresh_from_db()
    assert (deal.stage, deal.organization) == (stages["qualified"], oldest)
    assert Organization.objects.filter(name="Acme").count() == 2
