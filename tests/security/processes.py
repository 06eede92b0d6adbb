"""Real services for the fault tests, each started by the test and stopped by its pid.

- `RedisServer`: a private redis-server on a port of its own (never the shared one), so
  a test may stop and restart it while the app and a worker use it.
- `Worker`: a `celery worker` process on the test database and a private Redis.
- `TcpProxy`: a forwarder in front of PostgreSQL; stopping it drops every connection
  through it and refuses new ones, as a restarting database server does.
- `AppServer`: gunicorn serving the app through such a proxy, one process and one
  thread, so it keeps one persistent database connection as production does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port(preferred: int = 0) -> int:
    """`preferred` if nothing listens there, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError("no free port")


def wait_for(check: Callable[[], bool], *, seconds: float = 30, step: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def stop(process: subprocess.Popen[bytes] | None, *, kill: bool = False) -> str:
    """Stop a process this test started (by its own handle), and return its output."""
    if process is None or process.poll() is not None:
        return _output(process)
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return _output(process)


def _output(process: subprocess.Popen[bytes] | None) -> str:
    if process is None or process.stdout is None:
        return ""
    with contextlib.suppress(ValueError, OSError):
        return process.stdout.read().decode(errors="replace")
    return ""


def database_url(*, port: int | None = None) -> str:
    """The URL of the database the tests run on, optionally through another port."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{user}{password}@{host}:{port or db['PORT'] or 5432}/{db['NAME']}"


class RedisServer:
    """redis-server on 127.0.0.1:`port`, no persistence; restartable on the same port."""

    binary = shutil.which("redis-server") or "redis-server"

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert wait_for(lambda: listening(self.port), seconds=10), "redis-server did not start"

    def stop(self) -> None:
        stop(self.process)
        assert wait_for(lambda: not listening(self.port), seconds=10)


# A worker whose broker returns unacknowledged messages after 3 s instead of kombu's
# default hour, so a test can see a killed worker's message redelivered.
WORKER = """
import sys
from pipeline_crm.celery import app
app.conf.broker_transport_options = {
    **(app.conf.broker_transport_options or {}),
    "visibility_timeout": 3,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
app.worker_main(sys.argv[1:])
"""


class Worker:
    """`celery worker` on the test database and `broker`; `pool` is solo or prefork."""

    def __init__(self, broker: str, *, pool: str = "solo") -> None:
        self.broker = broker
        self.pool = pool
        self.process: subprocess.Popen[bytes] | None = None
        self.output = ""

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": self.broker,
            "DJANGO_SETTINGS_MODULE": "pipeline_crm.settings",
        }
        command = [
            sys.executable,
            "-c",
            WORKER,
            "worker",
            f"--pool={self.pool}",
            "--concurrency=1",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=INFO",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    def children(self) -> list[int]:
        """Pool processes of a prefork worker."""
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None and kill:
            # A prefork worker's pool processes are ours too; SIGKILL reaches only the pid.
            for child in self.children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        self.output += stop(self.process, kill=kill)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`. `stop()` drops every connection and refuses
    new ones; `start()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: socket.socket | None = None
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.running = threading.Event()

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.server.settimeout(0.1)
        self.running.set()
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def stop(self) -> None:
        self.running.clear()
        if self.server is not None:
            self.server.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while self.running.is_set():
            try:
                client, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class AppServer:
    """gunicorn with one sync worker (one thread, one persistent database connection)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DJANGO_SETTINGS_MODULE": "pipeline_crm.settings",
            "LOG_LEVEL": "WARNING",
        }
        env.pop("REDIS_URL", None)
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "pipeline_crm.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--threads",
            "1",
            "--timeout",
            "60",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert wait_for(lambda: self.get("/healthz")[0] == 200, seconds=30), stop(self.process)

    def get(self, path: str, *, cookie: str = "") -> tuple[int, str, dict[str, str]]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if cookie:
            request.add_header("Cookie", cookie)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)
        except OSError:
            return 0, "", {}

    def stop(self) -> str:
        return stop(self.process)
