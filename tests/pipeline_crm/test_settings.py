"""Settings read from the environment, each case in a fresh interpreter (settings load once)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(64),
    "ALLOWED_HOSTS": "crm.example.com",
}


def run(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    kept = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**kept, "DJANGO_SETTINGS_MODULE": "pipeline_crm.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def setting(env: dict[str, str], expression: str) -> Any:
    code = f"from django.conf import settings as s; import json; print(json.dumps({expression}))"
    result = run(env, code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_database_url_query_options_reach_the_driver():
    url = "postgres://crm:p%40ss@db.example:5433/crm?sslmode=require&connect_timeout=3"

    database = setting({"DATABASE_URL": url}, 's.DATABASES["default"]')

    assert database["OPTIONS"] == {
        "sslmode": "require",
        "connect_timeout": 3,
        "options": "-c jit=off",
    }
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.example", 5433, "crm")
    assert (database["USER"], database["PASSWORD"]) == ("crm", "p@ss")


def test_postgres_keeps_connections_with_health_checks_unless_told_otherwise():
    url = {"DATABASE_URL": "postgres://crm@db.example/crm"}

    kept = setting(
        url, '[s.DATABASES["default"][k] for k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")]'
    )
    closed = setting({**url, "CONN_MAX_AGE": "0"}, 's.DATABASES["default"]["CONN_MAX_AGE"]')

    assert kept == [60, True]
    assert closed == 0


def test_sqlite_keeps_immediate_transactions_and_its_busy_timeout():
    options = setting(
        {"DATABASE_URL": "sqlite:////tmp/crm.sqlite3"}, 's.DATABASES["default"]["OPTIONS"]'
    )

    assert options == {"transaction_mode": "IMMEDIATE", "timeout": 20}


def test_local_plain_http_relaxes_only_https_on_loopback():
    env = {**PRODUCTION, "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOCAL_PLAIN_HTTP": "1"}

    values = setting(
        env,
        "[s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, s.DEBUG, s.SESSION_COOKIE_HTTPONLY]",
    )

    assert values == [False, False, False, 0, False, True]


def test_local_plain_http_is_refused_for_a_real_host():
    env = {**PRODUCTION, "ALLOWED_HOSTS": "127.0.0.1,crm.example.com", "LOCAL_PLAIN_HTTP": "1"}

    result = run(env, "")

    assert result.returncode != 0
    assert "LOCAL_PLAIN_HTTP is for loopback only" in result.stderr


def test_probes_are_exempt_from_the_https_redirect():
    code = (
        "from django.test import Client; c = Client(SERVER_NAME='crm.example.com'); "
        "print(c.get('/healthz').status_code, c.get('/accounts/login/').status_code)"
    )

    result = run(PRODUCTION, code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["200", "301"]


def test_var_dir_moves_what_the_app_writes():
    paths = setting(
        {"VAR_DIR": "/srv/crm"},
        "[str(s.IMPORT_ROOT), s.CELERY_BEAT_SCHEDULE_FILENAME, str(s.BEAT_HEARTBEAT_FILE)]",
    )

    assert paths == ["/srv/crm/imports", "/srv/crm/celerybeat-schedule", "/srv/crm/beat-heartbeat"]


def test_a_pool_size_gives_each_process_a_checked_pool_instead_of_kept_connections():
    url = {"DATABASE_URL": "postgres://crm@db.example/crm", "DB_POOL_SIZE": "8"}

    database = setting(
        url,
        '[s.DATABASES["default"][k] for k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")]'
        ' + [{k: v for k, v in s.DATABASES["default"]["OPTIONS"]["pool"].items()'
        ' if k != "check"}]',
    )

    assert database == [0, False, {"min_size": 1, "max_size": 8, "timeout": 10}]
