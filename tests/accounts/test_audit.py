"""The security audit log: what is recorded, who may read it, its CSV export."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent
from deals.services import move_deal
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory, UserFactory


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()


def test_successful_and_failed_logins_are_recorded(db):
    UserFactory(username="sam", password="s3cret-pass")
    client = Client()
    client.post(reverse("login"), {"username": "sam", "password": "bad"}, REMOTE_ADDR="10.1.1.1")
    client.post(reverse("login"), {"username": "sam", "password": "s3cret-pass"})
    kinds = list(AuditEvent.objects.order_by("id").values_list("kind", "username", "ip"))
    assert kinds == [("login_failed", "sam", "10.1.1.1"), ("login", "sam", "127.0.0.1")]


def test_lockout_is_recorded(db, settings):
    UserFactory(username="sam", password="s3cret-pass")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "sam", "password": "bad"})
    assert AuditEvent.objects.filter(kind="lockout", username="sam").exists()


def test_gate_override_is_recorded(manager, rep, stages):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    move_deal(
        deal, stages["qualified"], by=manager, expected_version=1, override_reason="Verbal yes"
    )
    event = AuditEvent.objects.get(kind="gate_override")
    assert event.user == manager and "Verbal yes" in event.detail


def test_role_change_in_admin_is_recorded(admin_user, rep):
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:accounts_user_change", args=[rep.pk]),
        {
            "username": rep.username,
            "role": "manager",
            "team": rep.team_id,
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(kind="role_change")
    assert "role=manager" in event.detail and event.user == admin_user


def test_audit_page_is_404_for_managers(manager):
    client = Client()
    client.force_login(manager)
    assert client.get(reverse("accounts:audit")).status_code == 404


def test_audit_page_lists_and_filters_events(admin_user, rep):
    AuditEvent.objects.create(kind="login", username="rep")
    AuditEvent.objects.create(kind="login_failed", username="<b>eve</b>")
    client = Client()
    client.force_login(admin_user)
    html = client.get(reverse("accounts:audit"), {"kind": "login_failed"}).content.decode()
    assert "&lt;b&gt;eve&lt;/b&gt;" in html
    assert "<td>rep</td>" not in html


def test_audit_csv_neutralises_formulas_and_records_the_export(admin_user):
    AuditEvent.objects.create(kind="login_failed", username="=HYPERLINK(1)")
    client = Client()
    client.force_login(admin_user)
    response = client.get(reverse("accounts:audit"), {"format": "csv"})
    body = response.content.decode()
    assert response["Content-Type"].startswith("text/csv")
    assert "'=HYPERLINK(1)" in body
    assert AuditEvent.objects.filter(kind="export", user=admin_user).exists()


def test_audit_rows_cannot_be_deleted_in_admin(admin_user):
    event = AuditEvent.objects.create(kind="login", username="x")
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:accounts_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
