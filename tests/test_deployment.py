"""The deployment files agree with the code they start.

docker compose cannot run in CI, so these tests read docker-compose.yml, the
Dockerfile, the Makefile and the README as text and check that what they name
exists in the repository. tests/test_prod_local.py runs the compose services'
commands for real, as processes.
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


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def module_file(dotted: str) -> Path:
    return ROOT.joinpath(*dotted.split(".")).with_suffix(".py")


APP_SERVICES = ["migrate", "web", "worker", "beat"]


def test_compose_defines_db_redis_migrate_web_worker_and_beat(services):
    assert {"db", "redis", "migrate", "web", "worker", "beat"} <= services.keys()


@pytest.mark.parametrize("name", ["db", "redis", "web", "worker", "beat"])
def test_long_running_service_has_healthcheck(services, name):
    assert services[name]["healthcheck"]["test"]


def test_db_healthcheck_uses_pg_isready(services):
    assert "pg_isready" in services["db"]["healthcheck"]["test"]


def test_redis_healthcheck_pings(services):
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


@pytest.mark.parametrize("name", ["web", "beat"])
def test_healthcheck_runs_this_services_check_of_the_healthcheck_module(services, name):
    from pipeline_crm.healthcheck import CHECKS

    test = services[name]["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "pipeline_crm.healthcheck"]
    assert test[4:] == [name]
    assert name in CHECKS


def test_worker_healthcheck_pings_its_own_node_through_the_broker(services):
    kind, script = services["worker"]["healthcheck"]["test"]
    words = shlex.split(script)
    assert kind == "CMD-SHELL"
    assert words[:5] == ["celery", "-A", "pipeline_crm", "inspect", "ping"]
    # $$ is compose's escape: the container's shell expands $HOSTNAME, Celery's node name.
    assert option(words, "--destination") == "celery@$$HOSTNAME"


def test_beat_scheduler_touches_the_heartbeat_its_healthcheck_reads():
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULER == "pipeline_crm.celery:HeartbeatScheduler"
    assert settings.BEAT_HEARTBEAT_FILE.parent == settings.VAR_DIR


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_app_service_waits_for_healthy_db_and_redis_and_finished_migrations(services, name):
    depends_on = services[name]["depends_on"]
    assert depends_on["db"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"


def test_migrate_runs_once_after_db_and_redis(services):
    migrate = services["migrate"]
    assert command_words(migrate) == ["python", "manage.py", "migrate", "--noinput"]
    # Compose would restart a finished one-shot under the app's `unless-stopped`.
    assert migrate["restart"] == "no"
    assert set(migrate["depends_on"]) == {"db", "redis"}


def test_only_the_migrate_service_migrates(services):
    for name in ["web", "worker", "beat"]:
        assert "migrate" not in command_words(services[name]), name


def test_web_serves_asgi_application_with_gunicorn_and_uvicorn_workers(services):
    words = command_words(services["web"])
    assert gunicorn_app(words) == "pipeline_crm.asgi:application"
    assert option(words, "--worker-class") == "uvicorn_worker.UvicornWorker"


def test_web_asgi_module_and_worker_class_exist():
    from uvicorn_worker import UvicornWorker  # noqa: F401 - importable is the point

    assert module_file("pipeline_crm.asgi").is_file()
    assert re.search(r"^uvicorn-worker==", read("requirements.lock"), re.M)


def test_web_healthcheck_asks_on_the_port_gunicorn_binds(services):
    web = services["web"]
    # gunicorn binds 0.0.0.0:$PORT when no --bind is given; the check reads $PORT too.
    assert "--bind" not in command_words(web)
    assert web["environment"]["PORT"] == "8000"
    assert web["ports"] == [f"{web['environment']['PORT']}:8000"]


def test_web_pools_connections_under_asgi(services):
    assert services["web"]["environment"]["DB_POOL_SIZE"] == "${DB_POOL_SIZE:-8}"


def test_web_and_worker_share_a_named_volume_at_the_import_root(services):
    from django.conf import settings

    compose = yaml.safe_load(read("docker-compose.yml"))
    workdir = re.search(r"^WORKDIR (\S+)", read("Dockerfile"), re.M).group(1)
    import_root = settings.IMPORT_ROOT.relative_to(settings.BASE_DIR)
    mounts = {name: services[name].get("volumes", []) for name in ["web", "worker"]}
    assert mounts["web"] == mounts["worker"] == [f"media:{workdir}/{import_root}"]
    assert "media" in compose["volumes"]


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_celery_service_runs_its_role_for_pipeline_crm_app(services, name):
    words = command_words(services[name])
    assert words[0] == "celery"
    assert words[words.index("-A") + 1] == "pipeline_crm"
    assert name in words


def test_celery_app_module_exists():
    assert (ROOT / "pipeline_crm" / "celery.py").is_file()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_requires_secret_key_from_environment(services, name):
    assert re.fullmatch(r"\$\{SECRET_KEY:\?.+\}", services[name]["environment"]["SECRET_KEY"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_runs_with_debug_off(services, name):
    assert services[name]["environment"]["DEBUG"] == "0"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_uses_compose_postgres_and_redis(services, name):
    environment = services[name]["environment"]
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert "@db:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_never_serves_plain_http_as_prod_local_does(services, name):
    assert "LOCAL_PLAIN_HTTP" not in services[name]["environment"]


def test_dockerfile_installs_requirements_lock_with_hashes():
    dockerfile = read("Dockerfile")
    assert "COPY requirements.lock" in dockerfile
    assert re.search(r"pip install .*--require-hashes -r requirements\.lock", dockerfile)


def test_dockerfile_serves_the_same_asgi_command_as_compose(services):
    command = re.search(r"^CMD (\[.*\])$", read("Dockerfile"), re.M).group(1)
    assert yaml.safe_load(command) == command_words(services["web"])


def test_dockerfile_gives_the_app_user_its_writable_directory_only():
    dockerfile = read("Dockerfile")
    owned = dockerfile.index("mkdir -p var/imports && chown -R app:app var")
    assert owned < dockerfile.index("USER app")
    # Nothing else is handed to the app user: it cannot rewrite its own code.
    assert dockerfile.count("chown") == 1 and "--chown" not in dockerfile
    # The build context brings no local var/ (databases, uploads) into the image.
    assert "var" in read(".dockerignore").split()


def test_production_lock_has_no_development_packages():
    dev = re.search(r"^dev = \[(.*?)^\]", read("pyproject.toml"), re.M | re.S).group(1)
    names = re.findall(r'"([A-Za-z0-9_.-]+)==', dev)
    pinned = set(re.findall(r"^([a-z0-9_.-]+)==", read("requirements.lock"), re.M))
    assert names and not {name.lower() for name in names} & pinned


@pytest.mark.parametrize("target", ["run", "test", "lint", "check-deploy", "prod-local"])
def test_makefile_defines_target(target):
    assert re.search(rf"^{re.escape(target)}:", read("Makefile"), re.M)


def test_makefile_test_target_runs_browser_prerequisite():
    assert re.search(r"^test:.*\bbrowser\b", read("Makefile"), re.M)


@pytest.mark.parametrize("command", ["make run", "make test", "make prod-local"])
def test_readme_documents_make_command(command):
    assert command in read("README.md")


def test_vendored_files_listed_in_readme_exist_with_licence():
    listed = re.findall(r"^\| `([^`]+)` \|", read("static/vendor/README.md"), re.M)
    vendor = ROOT / "static" / "vendor"
    assert "sortablejs/Sortable.min.js" in listed
    for name in listed:
        assert (vendor / name).is_file(), name
        assert (vendor / name).parent.joinpath("LICENSE").is_file(), name
