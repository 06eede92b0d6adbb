"""API clients: `api_for(user, scope=…)` returns a client that sends a fresh personal token."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from api import tokens
from api.models import TokenScope


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()


@pytest.fixture
def api_for(db):
    def make(user, scope: str = TokenScope.READ_WRITE) -> APIClient:
        new = tokens.create_token(by=user, name="test", scope=scope)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {new.secret}")
        client.token = new.token
        return client

    return make
