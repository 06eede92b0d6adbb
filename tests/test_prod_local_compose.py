"""scripts/prod_local.py takes its services from docker-compose.yml and changes only what
it says it changes. Runs without PostgreSQL or Redis; tests/test_prod_local.py runs them."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def prod_local() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prod_local", ROOT / "scripts/prod_local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.fixture
def loaded(prod_local, tmp_path, monkeypatch):
    # What compose would take from the shell; other tests' settings may have set some.
    for name in ["WEB_CONCURRENCY", "SECURE_SSL_REDIRECT", "POSTGRES_PASSWORD"]:
        monkeypatch.delenv(name, raising=False)
    args = argparse.Namespace(
        database_url="postgres://postgres@127.0.0.1:5432/crm_local",
        redis_url="redis://127.0.0.1:6379/5",
        port=8123,
        var_dir=tmp_path,
        set=["WEBHOOKS_ALLOW_LOOPBACK=1"],
    )
    migrate, services = prod_local.load_services(args)
    return {"migrate": migrate, **{service.name: service for service in services}}


def test_set_adds_to_every_services_environment(loaded):
    assert {name: s.env["WEBHOOKS_ALLOW_LOOPBACK"] for name, s in loaded.items()} == {
        "migrate": "1",
        "web": "1",
        "worker": "1",
        "beat": "1",
    }


def test_set_refuses_what_is_not_name_equals_value(prod_local):
    with pytest.raises(argparse.ArgumentTypeError):
        prod_local.environment_setting("no equals sign")
    assert prod_local.environment_setting("A_1=x=y") == "A_1=x=y"


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:-x}", {"A": "set"}, "set"),
        ("${A}/$A", {"A": "v"}, "v/v"),
        ("celery@$$HOSTNAME", {"HOSTNAME": "ignored"}, "celery@$HOSTNAME"),
    ],
)
def test_interpolation_follows_compose(prod_local, text, variables, expected):
    assert prod_local.interpolate(text, variables) == expected


def test_required_variable_missing_is_an_error(prod_local):
    with pytest.raises(prod_local.ProdLocalError, match="set SECRET_KEY"):
        prod_local.interpolate("${SECRET_KEY:?set SECRET_KEY in .env}", {})


@pytest.mark.parametrize("name", ["migrate", "web", "worker", "beat"])
def test_service_runs_composes_command_with_this_virtualenvs_programs(loaded, compose, name):
    program, *arguments = compose[name]["command"]
    local = sys.executable if program == "python" else str(Path(sys.executable).parent / program)

    assert loaded[name].argv == [local, *arguments]


@pytest.mark.parametrize("name", ["migrate", "web", "worker", "beat"])
def test_service_keeps_composes_production_environment(loaded, name):
    env = loaded[name].env

    assert env["DEBUG"] == "0"
    assert len(env["SECRET_KEY"]) >= 50
    assert env["SECURE_SSL_REDIRECT"] == "1"


@pytest.mark.parametrize("name", ["migrate", "web", "worker", "beat"])
def test_service_points_at_local_servers_over_plain_http_on_loopback(loaded, tmp_path, name):
    env = loaded[name].env

    assert env["DATABASE_URL"] == "postgres://postgres@127.0.0.1:5432/crm_local"
    assert env["REDIS_URL"] == "redis://127.0.0.1:6379/5"
    assert env["ALLOWED_HOSTS"] == "127.0.0.1,localhost"
    assert env["LOCAL_PLAIN_HTTP"] == "1"
    assert env["TRUSTED_PROXY_COUNT"] == "0"
    assert env["VAR_DIR"] == str(tmp_path)


def test_services_share_one_secret_key(loaded):
    assert len({loaded[name].env["SECRET_KEY"] for name in loaded}) == 1


def test_web_keeps_its_own_compose_settings_and_binds_loopback(loaded):
    env = loaded["web"].env

    assert env["DB_POOL_SIZE"] == "8"
    assert env["WEB_CONCURRENCY"] == "2"
    assert (env["PORT"], env["GUNICORN_CMD_ARGS"]) == ("8123", "--bind 127.0.0.1:8123")


def test_health_checks_are_composes(loaded, compose, prod_local):
    for name in ["web", "worker", "beat"]:
        assert loaded[name].healthcheck == prod_local.interpolated(
            compose[name]["healthcheck"], {}
        )
    shell = prod_local.healthcheck_argv(loaded["worker"].healthcheck["test"])
    assert shell[:2] == ["/bin/sh", "-c"] and "celery@$HOSTNAME" in shell[2]
