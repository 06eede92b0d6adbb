"""`make prod-local` end to end over HTTP: compose's services as processes, DEBUG off.

scripts/prod_local.py runs docker-compose.yml's migrate, web (gunicorn + uvicorn workers),
worker and beat on a database of its own (the configured one's name + `_prodlocal`,
created fresh and dropped afterwards) and the configured Redis database (its task queue
purged first), on a free port. The tests drive it as a user would: log in, open the
board, move a card, import a CSV that the worker process imports, subscribe a webhook
endpoint (a receiver on loopback, started by the tests; `--set WEBHOOKS_ALLOW_LOOPBACK=1`
is the only setting added to compose's) and receive a move's signed delivery from the
worker. Then everything the
script started is stopped by process group id, and the last test checks nothing is left.

Needs PostgreSQL and Redis (CI's PostgreSQL pass); elsewhere these tests skip, saying why.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.webhooks.receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 300
pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_urls() -> tuple[str, str, str]:
    """(URL of our scratch database, of the server's maintenance database, its name)."""
    db = settings.DATABASES["default"]
    name = f"{db['NAME']}_prodlocal"
    auth = urllib.parse.quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + urllib.parse.quote(db["PASSWORD"], safe="")
    server = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"{server}/{name}", f"{server}/postgres", name


def drop_database(maintenance_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def purge_task_queue(redis_url: str) -> None:
    """Tasks other tests left on this Redis database must not reach our worker."""
    import kombu

    with kombu.Connection(redis_url, connect_timeout=2) as connection:
        connection.default_channel.queue_purge("celery")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Stack:
    """The running script, its output file and the process groups it reported."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    pid_file: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def groups(self) -> list[tuple[str, int]]:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return [(name, pid) for name, pid in json.loads(self.pid_file.read_text())]
        return []

    def stop(self) -> list[str]:
        """Stop the script as Ctrl-C would; kill whatever it left (by pgid), naming it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        left = [f"{name} (pgid {pgid})" for name, pgid in self.groups() if group_alive(pgid)]
        for _, pgid in self.groups():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        return left


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback that accepts every delivery."""
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://127.0.0.1:6379/0 (CI does)")
    database_url, maintenance_url, name = database_urls()
    drop_database(maintenance_url, name)
    purge_task_queue(settings.REDIS_URL)
    workdir = tmp_path_factory.mktemp("prod-local")
    port = free_port()
    log = workdir / "output.log"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "prod_local.py"),
        "--demo",
        f"--database-url={database_url}",
        f"--redis-url={settings.REDIS_URL}",
        f"--port={port}",
        f"--var-dir={workdir / 'var'}",
        f"--pid-file={workdir / 'pids.json'}",
        f"--ready-timeout={STARTUP_SECONDS}",
        # Webhooks refuse loopback addresses unless told; the receiver is on 127.0.0.1.
        "--set=WEBHOOKS_ALLOW_LOOPBACK=1",
    ]
    # One web worker process is enough here, and the machine's cores are shared.
    env = {**os.environ, "WEB_CONCURRENCY": "1"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    running = Stack(process, port, log, workdir / "pids.json")
    try:
        deadline = time.monotonic() + STARTUP_SECONDS + 60
        while "prod-local: ready on" not in running.output():
            assert process.poll() is None, running.output()[-5000:]
            assert time.monotonic() < deadline, running.output()[-5000:]
            time.sleep(1)
        yield running
    finally:
        running.stop()
        drop_database(maintenance_url, name)


# --- a user agent: cookies, CSRF token, no automatic redirects --------------------------


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Answer:
    status: int
    headers: Any
    body: str


@dataclass
class Browser:
    base: str
    cookies: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), NoRedirects
        )

    def request(
        self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        if data is not None:
            request.add_header("Origin", self.base)
            request.add_header("X-CSRFToken", self.csrf_token())
        try:
            with self.opener.open(request, timeout=60) as response:
                return Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read().decode())

    def get(self, path: str, **headers: str) -> Answer:
        return self.request(path, headers=headers)

    def post(self, path: str, fields: dict[str, Any], **headers: str) -> Answer:
        body = urllib.parse.urlencode(fields).encode()
        content = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request(path, body, {**content, **headers})

    def upload(
        self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]
    ) -> Answer:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        ]
        for key, (filename, content) in files.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; '
                f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                + content
                + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        content_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return self.request(path, body, content_type)

    def csrf_token(self) -> str:
        return next((c.value for c in self.cookies if c.name == "csrftoken"), "") or ""

    def log_in(self, username: str) -> Answer:
        self.get("/accounts/login/")
        return self.post("/accounts/login/", {"username": username, "password": "demo"})


@dataclass
class Card:
    deal: int
    version: int
    stage: int
    movable: bool


class BoardCards(HTMLParser):
    """The board's cards, each with its column's stage (open stages, left to right)."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[Card] = []
        self.columns: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "ol" and "cards" in classes and "dropzone" not in classes:
            self.columns.append(int(found["data-stage"] or 0))
        elif tag == "li" and "card" in classes and (found.get("id") or "").startswith("deal-"):
            self.cards.append(
                Card(
                    deal=int((found["id"] or "").removeprefix("deal-")),
                    version=int(found["data-version"] or 0),
                    stage=self.columns[-1],
                    movable="data-locked" not in found,
                )
            )


def board_cards(html: str) -> BoardCards:
    parser = BoardCards()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def manager(stack: Stack) -> Browser:
    browser = Browser(f"http://127.0.0.1:{stack.port}")
    answer = browser.log_in("manager")
    assert answer.status == 302, answer.body[:2000]
    return browser


# --- the tests ---------------------------------------------------------------------------


def test_liveness_answers_json_without_login(stack):
    answer = Browser(f"http://127.0.0.1:{stack.port}").get("/healthz")

    assert (answer.status, json.loads(answer.body)) == (200, {"status": "ok"})


def test_readiness_reports_database_migrations_and_redis_ready(stack):
    answer = Browser(f"http://127.0.0.1:{stack.port}").get("/readyz")

    assert answer.status == 200
    assert json.loads(answer.body)["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "redis": "ok",
    }


def test_production_settings_are_in_force(stack):
    answer = Browser(f"http://127.0.0.1:{stack.port}").get("/no-such-page/")

    assert answer.status == 404
    assert "Traceback" not in answer.body and "URLconf" not in answer.body  # DEBUG is off
    assert answer.headers["server"] == "uvicorn"  # the ASGI server compose runs


def test_manager_logs_in_and_lands_on_the_board(manager):
    answer = manager.get("/")

    assert answer.status == 200
    assert board_cards(answer.body).cards


def test_manager_moves_a_card_to_the_first_column(manager):
    board = board_cards(manager.get("/").body)
    first = board.columns[0]
    card = next(c for c in board.cards if c.movable and c.stage != first)

    answer = manager.post(
        f"/deals/{card.deal}/move/",
        {"stage": first, "version": card.version},
        **{"HX-Request": "true"},
    )

    assert answer.status == 200, answer.body[:2000]
    moved = next(c for c in board_cards(manager.get("/").body).cards if c.deal == card.deal)
    assert (moved.stage, moved.version) == (first, card.version + 1)


def test_csv_import_is_run_by_the_worker_process(stack, manager):
    rows = (
        "Deal name,Stage,Amount\n"
        "Prod-local smoke one,Lead in,1000\n"
        "Prod-local smoke two,Lead in,2500\n"
    )
    answer = manager.upload("/import/", {"kind": "deals"}, {"file": ("smoke.csv", rows.encode())})
    assert answer.status == 302, answer.body[:3000]
    job = re.fullmatch(r"/import/(\d+)/", answer.headers["Location"]).group(1)

    confirmed = manager.post(f"/import/{job}/confirm/", {})
    assert confirmed.headers["Location"] == f"/import/{job}/status/", confirmed.body[:3000]

    deadline = time.monotonic() + 120
    while "status-done" not in (page := manager.get(f"/import/{job}/status/").body):
        assert "status-failed" not in page, page
        assert time.monotonic() < deadline, page
        time.sleep(1)
    assert re.search(r"<dt>Created</dt><dd>2</dd>", page)
    assert re.search(r"worker .*Task imports\.run_import\[[-\w]+\] succeeded", stack.output())
    assert "Prod-local smoke two" in manager.get("/").body


def signature_is_valid(secret: str, received: Any) -> bool:
    """Standard Webhooks, checked as a subscriber would (not with the app's own code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (
        f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode()
        + received.body
    )
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return f"v1,{expected}" in received.headers["webhook-signature"].split()


def test_a_move_is_delivered_signed_to_a_webhook_by_the_worker(stack, manager, receiver):
    subscribed = manager.post(
        "/accounts/webhooks/new/", {"url": receiver.url, "events": "deal.moved"}
    )
    assert subscribed.status == 201, subscribed.body[:3000]
    found = re.search(r'<code id="new-secret">([^<]+)</code>', subscribed.body)
    assert found, subscribed.body[:3000]
    secret = html.unescape(found.group(1))
    board = board_cards(manager.get("/").body)
    # Backwards to the first column: no entry criteria to meet.
    first = board.columns[0]
    card = next(c for c in board.cards if c.movable and c.stage != first)

    moved = manager.post(
        f"/deals/{card.deal}/move/",
        {"stage": first, "version": card.version},
        **{"HX-Request": "true"},
    )
    assert moved.status == 200, moved.body[:2000]

    def delivered() -> list[Any]:
        return [
            call
            for call in receiver.accepted()
            if json.loads(call.body)["data"].get("deal_id") == card.deal
        ]

    deadline = time.monotonic() + 120
    while not delivered():
        assert time.monotonic() < deadline, stack.output()[-5000:]
        time.sleep(0.5)
    call = delivered()[0]
    message = json.loads(call.body)
    assert message["type"] == "deal.moved"
    assert (message["data"]["from_stage_id"], message["data"]["to_stage_id"]) == (
        card.stage,
        first,
    )
    assert signature_is_valid(secret, call)
    assert re.search(r"worker .*Task webhooks\.deliver\[[-\w]+\] succeeded", stack.output())


def test_stopping_leaves_no_process_behind(stack):
    groups = stack.groups()
    assert {name for name, _ in groups} >= {"migrate", "web", "worker", "beat"}

    left = stack.stop()

    assert stack.process.returncode == 0, stack.output()[-3000:]
    assert left == []
    assert not [pgid for _, pgid in groups if group_alive(pgid)]
