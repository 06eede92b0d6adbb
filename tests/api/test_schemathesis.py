"""Property-based: schemathesis generates requests from the OpenAPI schema and sends them
to the app (WSGI, in-process) with an admin's read-write token. No answer may be a 5xx,
and every answer must match what the schema says (status, content type, body, headers).

Bounded (a few examples per operation) so it runs in CI on a loaded two-core machine.
Domain rules may refuse schema-valid input (a duplicate stage name, a gate), so the check
that "valid data is accepted" is not asked; every other default check is.
"""

from __future__ import annotations

import socket

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import tokens
from api.models import TokenScope
from pipeline_crm.wsgi import application
from tests.factories import ActivityFactory, DealFactory

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def keep_test_connection():
    """The WSGI handler closes the database connection after each request; the test's
    transaction lives on that connection, so keep it open, as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def no_dns(monkeypatch):
    """Generated webhook addresses must not reach the network: every name fails to resolve."""

    def unresolvable(*args, **kwargs):
        raise socket.gaierror("no DNS in tests")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)


@pytest.fixture
def admin_token(admin_user, stages, rep, keep_test_connection, no_dns):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=deal, owner=rep)
    return tokens.create_token(by=admin_user, name="fuzz", scope=TokenScope.READ_WRITE).secret


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, admin_token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {admin_token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
