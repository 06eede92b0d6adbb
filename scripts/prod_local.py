"""Run docker-compose.yml's app services on this machine, without a container engine.

    make prod-local                      # http://127.0.0.1:8000/, Ctrl-C stops everything
    .venv/bin/python scripts/prod_local.py --help

Reads the migrate, web, worker and beat services from docker-compose.yml (command,
environment, health check), interpolates `${VAR:-default}` as compose does, and runs
them as processes with production settings (DEBUG=0) on the local PostgreSQL and Redis:
migrate to completion first, then web, worker and beat, each polled with its own health
check until healthy. What differs from the containers, and why:

- DATABASE_URL and REDIS_URL point at the local servers (compose names hosts `db` and
  `redis` that exist only on its network); the database is created when missing.
- The values compose takes from `.env`: a fresh random SECRET_KEY per run, ALLOWED_HOSTS
  and CSRF_TRUSTED_ORIGINS for loopback, TRUSTED_PROXY_COUNT=0 (nothing in front).
- LOCAL_PLAIN_HTTP=1: there is no TLS proxy, so cookies are not marked Secure and HTTP is
  not redirected; settings refuse it for any host but loopback.
- web binds 127.0.0.1:PORT instead of 0.0.0.0 (GUNICORN_CMD_ARGS); PORT as the image's.
- VAR_DIR (default var/prod-local) holds what the containers keep under /app/var: import
  uploads (web and worker share it, as they share the compose volume), beat's files.
- HOSTNAME is set, as Docker sets it, for the worker's `inspect ping` health check.
- Static files are collected into staticfiles/ first, as the image build does.
- `--set NAME=VALUE` adds to every service's environment, as a compose override file
  would (the smoke test sets WEBHOOKS_ALLOW_LOOPBACK=1 to reach its local receiver).

Every service runs in its own process group; on Ctrl-C, SIGTERM or a service exiting,
all of them are stopped by process group id (SIGTERM, then SIGKILL after a grace period).
`--pid-file` records those ids (JSON: [name, pid] per group, one-shot steps included)
for whoever must make sure of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent
SERVICES = ("web", "worker", "beat")
STOP_GRACE_SECONDS = 20
# The image's own environment (Dockerfile ENV) that the services rely on.
IMAGE_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PORT": "8000"}
INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)"
)


class ProdLocalError(Exception):
    pass


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: stop everything and leave."""


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's variable substitution: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in variables
        set_and_not_empty = present and variables[name] != ""
        if op in {":-", "-"}:
            return variables[name] if (set_and_not_empty if op == ":-" else present) else arg
        if op in {":?", "?"} and not (set_and_not_empty if op == ":?" else present):
            raise ProdLocalError(f"{name}: {arg}")
        return variables.get(name, "")

    return INTERPOLATION.sub(substitute, value)


def interpolated(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [interpolated(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(item, variables) for key, item in node.items()}
    return node


def duration(text: str | None, default: float) -> float:
    """Compose durations: `10s`, `1m30s`, `500ms`."""
    if not text:
        return default
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    return sum(float(amount) * units[unit] for amount, unit in parts) or default


def environment_list(environment: Any) -> dict[str, str]:
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def executable(word: str) -> str:
    """The image's `python`, `gunicorn`, `celery` are this virtualenv's."""
    if word == "python":
        return sys.executable
    local = BIN / word
    return str(local) if local.exists() else word


def argv(command: Any) -> list[str]:
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    return [executable(words[0]), *words[1:]]


def healthcheck_argv(test: list[str]) -> list[str]:
    if test[0] == "CMD":
        return argv(test[1:])
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    raise ProdLocalError(f"unsupported health check {test!r}")


class Service:
    """One compose service as a local process in its own process group."""

    def __init__(self, name: str, spec: dict[str, Any], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv(spec["command"])
        self.env = env
        self.healthcheck = spec.get("healthcheck") or {}
        self.process: subprocess.Popen[str] | None = None

    def start(self, output: TextIO) -> None:
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._relay, args=(output,), daemon=True).start()

    def _relay(self, output: TextIO) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            output.write(f"{self.name:<7}| {line}")
            output.flush()

    def healthy(self) -> bool:
        if not self.healthcheck.get("test"):
            return True
        timeout = duration(self.healthcheck.get("timeout"), 30)
        try:
            result = subprocess.run(
                healthcheck_argv(self.healthcheck["test"]),
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def group_alive(self) -> bool:
        if self.process is None:
            return False
        self.process.poll()
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True


def stop_all(services: list[Service]) -> None:
    """SIGTERM to every process group, then SIGKILL to what is left after the grace."""
    for service in reversed(services):
        service.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and any(s.group_alive() for s in services):
        time.sleep(0.2)
    for service in services:
        if service.group_alive():
            print(f"prod-local: {service.name} ignored SIGTERM; killing it", file=sys.stderr)
            service.signal_group(signal.SIGKILL)
    for service in services:
        if service.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=5)


def ensure_database(database_url: str) -> None:
    """Create the database named by the URL when missing (compose's db image does that)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres", query=""))
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if found.fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"prod-local: created database {name}", flush=True)


def local_environment(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """(variables compose would read from the shell and .env, values replaced or added)."""
    origins = f"http://127.0.0.1:{args.port},http://localhost:{args.port}"
    variables = {
        **os.environ,
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CSRF_TRUSTED_ORIGINS": origins,
        "TRUSTED_PROXY_COUNT": "0",
    }
    kept = {k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    overlay = {
        **kept,
        "PATH": f"{BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "LOCAL_PLAIN_HTTP": "1",
        "PORT": str(args.port),
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{args.port}",
        "VAR_DIR": str(args.var_dir),
        "HOSTNAME": socket.gethostname(),
        **dict(item.split("=", 1) for item in args.set),
    }
    return variables, overlay


def environment_setting(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_]\w*=.*", text, re.DOTALL):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return text


def load_services(args: argparse.Namespace) -> tuple[Service, list[Service]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    variables, overlay = local_environment(args)
    found: dict[str, Service] = {}
    for name in ("migrate", *SERVICES):
        if name not in compose["services"]:
            raise ProdLocalError(f"docker-compose.yml has no {name} service")
        spec = interpolated(compose["services"][name], variables)
        env = {**IMAGE_ENVIRONMENT, **environment_list(spec.get("environment", {})), **overlay}
        found[name] = Service(name, spec, env)
    return found["migrate"], [found[name] for name in SERVICES]


def wait_healthy(services: list[Service], timeout: float) -> None:
    pending = list(services)
    deadline = time.monotonic() + timeout
    while pending:
        for service in list(pending):
            if service.exited() is not None:
                raise ProdLocalError(f"{service.name} exited with status {service.exited()}")
            if service.healthy():
                print(f"prod-local: {service.name} is healthy", flush=True)
                pending.remove(service)
        if pending and time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            raise ProdLocalError(f"not healthy within {timeout:.0f} s: {names}")
        if pending:
            time.sleep(1)


class Started:
    """Every process group started so far, written to the pid file as it grows."""

    def __init__(self, pid_file: Path | None) -> None:
        self.services: list[Service] = []
        self.pid_file = pid_file

    def start(self, service: Service, output: TextIO) -> None:
        self.services.append(service)
        service.start(output)
        if self.pid_file is not None:
            pids = [[s.name, s.process.pid] for s in self.services if s.process is not None]
            self.pid_file.write_text(json.dumps(pids))


def run_once(service: Service, started: Started, output: TextIO, *extra: str) -> None:
    """A one-shot step (compose's migrate service): it must finish successfully."""
    step = Service(service.name, {"command": [*service.argv, *extra]}, service.env)
    started.start(step, output)
    assert step.process is not None
    status = step.process.wait()
    if status != 0:
        raise ProdLocalError(f"{' '.join(step.argv[1:])} failed with status {status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/pipeline_crm_local"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "prod-local")
    parser.add_argument(
        "--demo", action="store_true", help="load the demo data after migrating (not in compose)"
    )
    parser.add_argument(
        "--pid-file", type=Path, help="keep the started process group ids here (JSON)"
    )
    parser.add_argument("--ready-timeout", type=float, default=180)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=environment_setting,
        help="add to every service's environment (as a compose override); repeatable",
    )
    args = parser.parse_args()
    args.var_dir = args.var_dir.resolve()

    def request_stop(signum: int, frame: object) -> None:
        raise Stopped

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    started = Started(args.pid_file)
    output = sys.stdout
    try:
        migrate, services = load_services(args)
        (args.var_dir / "imports").mkdir(parents=True, exist_ok=True)
        ensure_database(args.database_url)
        manage = Service("build", {"command": ["python", "manage.py"]}, migrate.env)
        # The image collects static files when it is built (Dockerfile).
        run_once(manage, started, output, "collectstatic", "--noinput", "-v0")
        run_once(migrate, started, output)
        if args.demo:
            run_once(manage, started, output, "seed_demo", "--force")
        for service in services:
            started.start(service, output)
        wait_healthy(services, args.ready_timeout)
        print(f"prod-local: ready on http://127.0.0.1:{args.port}/ (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(1)
            for service in services:
                if service.exited() is not None:
                    raise ProdLocalError(f"{service.name} exited with status {service.exited()}")
    except Stopped:
        return 0
    except ProdLocalError as error:
        print(f"prod-local: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second signal must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_all(started.services)
        print("prod-local: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
