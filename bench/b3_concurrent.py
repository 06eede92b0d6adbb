"""B3: concurrent moves against a real gunicorn on loopback, then an integrity check.

The server is the production entry point (pipeline_crm.wsgi, bench settings), several
sync workers. Client threads speak plain HTTP with http.client, each logged in (a
session cookie made in-process) with a CSRF cookie and header, and POST board drops.
Threads come in pairs sharing a rep (the same person in two tabs): each thread moves
its own deals, and now and then one of the pair's two "hot" deals, which its twin moves
too, so stale versions meet and the server must answer 409. A thread learns a deal's
fresh version from the database after a refusal, as the page's re-rendered card would
tell a browser. The run stops by itself after a number of moves or seconds.
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg

from bench import integrity, stats
from bench.datagen import Dataset

ROOT = Path(__file__).resolve().parent.parent
HOT_PER_PAIR = 2
HOT_SHARE = 0.25
# 200 moved, 409 stale version, 204 a stale client "moved" a deal to the stage it is in
# (the board treats that as a reorder).
EXPECTED = {200, 204, 409}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn serving the app in a process group of its own; stopped on exit."""

    def __init__(self, *, workers: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        gunicorn = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "gunicorn"
        if not gunicorn.exists():
            gunicorn = ROOT / ".venv" / "bin" / "gunicorn"
        return [
            str(gunicorn),
            "pipeline_crm.wsgi:application",
            "--bind",
            f"{self.host}:{self.port}",
            "--workers",
            str(self.workers),
            "--chdir",
            str(ROOT),
            "--log-level",
            "warning",
            "--no-control-socket",
            "--graceful-timeout",
            "5",
        ]

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=os.environ.copy(),
            start_new_session=True,
        )
        from bench.b0_floors import wait_for

        try:
            wait_for(self.host, self.port)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def session_cookie(user: Any) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class Shared:
    """What all client threads share: the budget, the clock, the results."""

    def __init__(self, *, total: int, seconds: float) -> None:
        self.lock = threading.Lock()
        self.left = total
        self.deadline = time.monotonic() + seconds
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.moves: list[tuple[int, int, int, int]] = []
        self.errors: list[str] = []  # exceptions in client threads
        self.samples: list[str] = []  # unexpected answers, for the report

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() > self.deadline:
                return False
            self.left -= 1
            return True


class ClientThread(threading.Thread):
    def __init__(
        self,
        *,
        shared: Shared,
        server: Server,
        db_url: str,
        session: str,
        own: dict[int, list[int]],
        hot: dict[int, list[int]],
        opened: list[int],
        seed: int,
    ) -> None:
        super().__init__(daemon=True)
        self.shared = shared
        self.server = server
        self.db_url = db_url
        self.csrf = secrets.token_hex(16)  # a 32-character secret, as Django's cookie holds
        self.cookie = f"sessionid={session}; csrftoken={self.csrf}"
        self.own = own
        self.hot = hot
        self.opened = opened
        self.random = random.Random(seed)

    def run(self) -> None:
        try:
            with psycopg.connect(self.db_url, autocommit=True) as db:
                while self.shared.take():
                    self.one_move(db)
        except Exception as error:  # reported, never hidden: the run then fails its check
            with self.shared.lock:
                self.shared.errors.append(repr(error))

    def one_move(self, db: psycopg.Connection) -> None:
        use_hot = not self.own or self.random.random() < HOT_SHARE
        pool = self.hot if use_hot else self.own
        deal_id = self.random.choice(list(pool))
        stage_id, version = pool[deal_id]
        target = self.opened[(self.opened.index(stage_id) + 1) % len(self.opened)]
        body = urlencode({"stage": target, "version": version, "source": "board"})
        headers = {
            "Cookie": self.cookie,
            "X-CSRFToken": self.csrf,
            "HX-Request": "true",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        started = time.perf_counter()
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
        conn.request("POST", f"/deals/{deal_id}/move/", body, headers)
        response = conn.getresponse()
        content = response.read()
        conn.close()
        elapsed = time.perf_counter() - started
        with self.shared.lock:
            self.shared.latencies.append(elapsed)
            self.shared.statuses[response.status] += 1
            if response.status == 200:
                self.shared.moves.append((deal_id, stage_id, target, version + 1))
            elif response.status not in EXPECTED and len(self.shared.samples) < 5:
                text = content.decode(errors="replace")[:300]
                self.shared.samples.append(f"HTTP {response.status} for deal {deal_id}: {text}")
        if response.status == 200:
            pool[deal_id] = [target, version + 1]
        else:
            row = db.execute(
                "SELECT stage_id, version FROM deals_deal WHERE id = %s", [deal_id]
            ).fetchone()
            pool[deal_id] = [row[0], row[1]]


def _deals_of(rep_id: int, data: Dataset, limit: int) -> list[tuple[int, int, int]]:
    from deals.models import Deal

    return list(
        Deal.objects.filter(owner_id=rep_id, stage_id__in=data.open_stage_ids)
        .order_by("-id")
        .values_list("id", "stage_id", "version")[:limit]
    )


def run(
    data: Dataset,
    db_url: str,
    *,
    threads: int,
    workers: int,
    total: int,
    seconds: float,
    server: Server | None = None,
) -> dict[str, Any]:
    """Start gunicorn (unless given one), fire the moves, stop, check integrity."""
    from accounts.models import User

    pairs = threads // 2
    # Reps not used by B2 (which takes the first rep), each with enough deals of their own.
    reps = User.objects.filter(pk__in=data.rep_ids[-pairs:]).order_by("pk")
    shared = Shared(total=total, seconds=seconds)
    clients = []
    for index, rep in enumerate(reps):
        deals = _deals_of(rep.pk, data, 200)
        hot = {d: [s, v] for d, s, v in deals[:HOT_PER_PAIR]}
        rest = deals[HOT_PER_PAIR:]
        for twin in range(2):
            own = {d: [s, v] for d, s, v in rest[twin::2]}
            clients.append(
                dict(
                    session=session_cookie(rep),
                    own=own,
                    hot={d: list(sv) for d, sv in hot.items()},
                    seed=index * 2 + twin,
                )
            )
    before = integrity.snapshot()
    owned = server is None
    server = server or Server(workers=workers).__enter__()
    try:
        started = time.perf_counter()
        pool = [
            ClientThread(
                shared=shared,
                server=server,
                db_url=db_url,
                opened=data.open_stage_ids,
                **spec,
            )
            for spec in clients
        ]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        if owned:
            server.__exit__()
    after = integrity.snapshot()
    checks = integrity.moves_errors(before, after, shared.moves)
    checks.update(integrity.global_errors())
    checks["client_errors"] = len(shared.errors)
    checks["unexpected_statuses"] = sum(
        n for status, n in shared.statuses.items() if status not in EXPECTED
    )
    requests = sum(shared.statuses.values())
    return {
        "threads": len(pool),
        "workers": workers,
        "requests": requests,
        "seconds": round(wall, 2),
        "moves_per_s": round(len(shared.moves) / wall, 1),
        "requests_per_s": round(requests / wall, 1),
        **stats.summary(shared.latencies),
        "statuses": {str(k): v for k, v in sorted(shared.statuses.items())},
        "conflicts_409": shared.statuses.get(409, 0),
        "integrity": checks,
        "integrity_errors": sum(abs(v) for v in checks.values()),
        "client_error_samples": shared.errors[:3],
        "unexpected_answer_samples": shared.samples,
    }
