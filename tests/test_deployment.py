"""The deployment files agree with the code they start.

docker compose cannot run in CI, so these tests read docker-compose.yml, the
Dockerfile, the Makefile and the README as text and check that what they name
exists in the repository.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def read(name: str) -> str:
    return (ROOT / name).read_text()


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(read("docker-compose.yml"))["services"]


def command_words(service: dict[str, Any]) -> list[str]:
    """The service's command as words, whether written as a string or a list."""
    command = service["command"]
    words = shlex.split(command) if isinstance(command, str) else list(command)
    # `sh -c "a && b"` hides the real commands inside one argument.
    return [word for part in words for word in shlex.split(part)]


def gunicorn_app(words: list[str]) -> str:
    after_gunicorn = words[words.index("gunicorn") + 1 :]
    return next(word for word in after_gunicorn if re.fullmatch(r"[\w.]+:\w+", word))


def module_file(dotted: str) -> Path:
    return ROOT.joinpath(*dotted.split(".")).with_suffix(".py")


def test_compose_defines_db_redis_web_worker_and_beat(services):
    assert {"db", "redis", "web", "worker", "beat"} <= services.keys()


@pytest.mark.parametrize("name", ["db", "redis", "web"])
def test_long_running_service_has_healthcheck(services, name):
    assert services[name]["healthcheck"]["test"]


def test_db_healthcheck_uses_pg_isready(services):
    assert "pg_isready" in services["db"]["healthcheck"]["test"]


def test_redis_healthcheck_pings(services):
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_web_healthcheck_requests_healthz_with_urllib(services):
    script = " ".join(services["web"]["healthcheck"]["test"])
    assert "urllib" in script
    assert "/healthz/" in script


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_app_service_waits_for_healthy_db_and_redis(services, name):
    depends_on = services[name]["depends_on"]
    assert depends_on["db"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_web_serves_wsgi_application_with_gunicorn(services):
    assert gunicorn_app(command_words(services["web"])) == "pipeline_crm.wsgi:application"


def test_web_wsgi_module_exists_in_repository(services):
    module, _ = gunicorn_app(command_words(services["web"])).split(":")
    assert module_file(module) == ROOT / "pipeline_crm" / "wsgi.py"
    assert module_file(module).is_file()


def test_web_migrates_before_starting_gunicorn(services):
    words = command_words(services["web"])
    assert words.index("migrate") < words.index("gunicorn")


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_celery_service_runs_its_role_for_pipeline_crm_app(services, name):
    words = command_words(services[name])
    assert words[0] == "celery"
    assert words[words.index("-A") + 1] == "pipeline_crm"
    assert name in words


def test_celery_app_module_exists():
    assert (ROOT / "pipeline_crm" / "celery.py").is_file()


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_app_service_requires_secret_key_from_environment(services, name):
    assert re.fullmatch(r"\$\{SECRET_KEY:\?.+\}", services[name]["environment"]["SECRET_KEY"])


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_app_service_runs_with_debug_off(services, name):
    assert services[name]["environment"]["DEBUG"] == "0"


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_app_service_uses_compose_postgres_and_redis(services, name):
    environment = services[name]["environment"]
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert "@db:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")


def test_dockerfile_installs_requirements_lock_with_hashes():
    dockerfile = read("Dockerfile")
    assert "COPY requirements.lock" in dockerfile
    assert re.search(r"pip install .*--require-hashes -r requirements\.lock", dockerfile)


def test_dockerfile_serves_wsgi_application_with_gunicorn():
    assert re.search(
        r'^CMD \["gunicorn", "pipeline_crm\.wsgi:application"', read("Dockerfile"), re.M
    )


@pytest.mark.parametrize("target", ["run", "test", "lint", "check-deploy"])
def test_makefile_defines_target(target):
    assert re.search(rf"^{re.escape(target)}:", read("Makefile"), re.M)


def test_makefile_test_target_runs_browser_prerequisite():
    assert re.search(r"^test:.*\bbrowser\b", read("Makefile"), re.M)


@pytest.mark.parametrize("command", ["make run", "make test"])
def test_readme_documents_make_command(command):
    assert command in read("README.md")


def test_vendored_files_listed_in_readme_exist_with_licence():
    listed = re.findall(r"^\| `([^`]+)` \|", read("static/vendor/README.md"), re.M)
    vendor = ROOT / "static" / "vendor"
    assert "sortablejs/Sortable.min.js" in listed
    for name in listed:
        assert (vendor / name).is_file(), name
        assert (vendor / name).parent.joinpath("LICENSE").is_file(), name
