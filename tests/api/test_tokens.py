from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from api import tokens
from api.models import ApiToken, TokenScope
from common.errors import NotVisible

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_token_is_stored_only_as_its_sha256(rep):
    new = tokens.create_token(by=rep, name="zapier", scope=TokenScope.READ)
    row = ApiToken.objects.get(pk=new.token.pk)
    assert new.secret.startswith(f"pcrm_{row.prefix}_")
    assert row.secret_hash == hashlib.sha256(new.secret.encode()).hexdigest()
    assert new.secret not in str(ApiToken.objects.filter(pk=row.pk).values().get())


def test_token_authenticates_and_records_last_use(rep):
    new = tokens.create_token(by=rep, name="zapier", scope=TokenScope.READ)
    response = bearer(new.secret).get("/api/v1/deals/")
    assert response.status_code == 200
    assert ApiToken.objects.get(pk=new.token.pk).last_used_at is not None


def test_wrong_secret_with_a_real_prefix_is_refused(rep):
    new = tokens.create_token(by=rep, name="zapier", scope=TokenScope.READ)
    forged = new.secret[:-4] + "AAAA"
    response = bearer(forged).get("/api/v1/deals/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_refused(rep):
    new = tokens.create_token(by=rep, name="zapier", scope=TokenScope.READ)
    tokens.revoke_token(new.token.pk, by=rep)
    assert bearer(new.secret).get("/api/v1/deals/").status_code == 401


def test_expired_token_is_refused(rep):
    new = tokens.create_token(
        by=rep, name="zapier", scope=TokenScope.READ, expires_at=timezone.now() + timedelta(days=1)
    )
    ApiToken.objects.filter(pk=new.token.pk).update(expires_at=timezone.now() - timedelta(1))
    assert bearer(new.secret).get("/api/v1/deals/").status_code == 401


def test_deactivated_users_token_is_refused(rep):
    new = tokens.create_token(by=rep, name="zapier", scope=TokenScope.READ)
    rep.is_active = False
    rep.save()
    assert bearer(new.secret).get("/api/v1/deals/").status_code == 401


def test_no_credentials_is_a_401_problem(db):
    response = APIClient().get("/api/v1/deals/")
    assert response.status_code == 401
    assert response.json()["status"] == 401


def test_read_only_token_cannot_write(rep, stages, api_for):
    client = api_for(rep, TokenScope.READ)
    response = client.post(
        "/api/v1/deals/", {"title": "X", "stage": stages["lead"].pk}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "This token is read-only."


def test_rep_cannot_revoke_someone_elses_token(rep, teammate):
    new = tokens.create_token(by=teammate, name="mine", scope=TokenScope.READ)
    with pytest.raises(NotVisible):
        tokens.revoke_token(new.token.pk, by=rep)
    assert ApiToken.objects.get(pk=new.token.pk).revoked_at is None


def test_admin_may_revoke_anyones_token(rep, admin_user):
    new = tokens.create_token(by=rep, name="mine", scope=TokenScope.READ)
    tokens.revoke_token(new.token.pk, by=admin_user)
    assert ApiToken.objects.get(pk=new.token.pk).revoked_by == admin_user


def test_settings_page_shows_the_secret_once(rep, client_for):
    client = client_for(rep)
    response = client.post("/accounts/tokens/new/", {"name": "crm sync", "scope": "read_write"})
    assert response.status_code == 201
    secret = response.context["secret"]
    assert secret.startswith("pcrm_")
    again = client.get("/accounts/tokens/")
    assert secret not in again.content.decode()
    assert "crm sync" in again.content.decode()


def test_settings_page_revokes(rep, client_for):
    new = tokens.create_token(by=rep, name="old", scope=TokenScope.READ)
    response = client_for(rep).post(f"/accounts/tokens/{new.token.pk}/revoke/")
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=new.token.pk).revoked_at is not None


def test_settings_page_answers_404_for_anothers_token(rep, outsider, client_for):
    new = tokens.create_token(by=outsider, name="theirs", scope=TokenScope.READ)
    response = client_for(rep).post(f"/accounts/tokens/{new.token.pk}/revoke/")
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=new.token.pk).revoked_at is None


def test_session_writes_need_the_csrf_token(rep, stages):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(rep)
    assert client.get("/api/v1/deals/").status_code == 200
    response = client.post(
        "/api/v1/deals/", {"title": "X", "stage": stages["lead"].pk}, format="json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
