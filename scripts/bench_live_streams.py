"""The live board under load: N open event streams on one uvicorn process, one change.

Measures, on one web process serving pipeline_crm.asgi: the memory each open stream
costs (the process's RSS before and after opening them) and, for one announcement
written to the Redis stream, the time until each connection received it (p50, p95,
all). Not yet part of `make bench`; run by hand:

    DATABASE_URL=... REDIS_URL=redis://127.0.0.1:6379/<n> \\
        .venv/bin/python scripts/bench_live_streams.py --streams 500

DATABASE_URL must name a migrated database with the demo data (`manage.py seed_demo`):
every stream is opened as its `manager`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
SESSION = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from accounts.models import User
user = User.objects.get(username="manager")
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print("KEY", session.session_key)
"""


def session_key() -> str:
    out = subprocess.check_output(
        [PYTHON, "manage.py", "shell", "-c", SESSION],
        cwd=ROOT,
        text=True,
        stderr=subprocess.DEVNULL,
    )
    return next(line.split()[1] for line in out.splitlines() if line.startswith("KEY "))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


async def open_stream(port: int, key: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /live/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    seen = b""
    while b"retry:" not in seen:
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError(f"stream refused: {seen[:200]!r}")
        seen += chunk
    return reader, writer


async def heard(reader: asyncio.StreamReader) -> float:
    seen = b""
    while b"event: deal" not in seen:
        seen += await reader.read(4096)
    return time.perf_counter()


async def measure(streams: int, port: int, pid: int, key: str, redis_url: str) -> str:
    import redis

    for _ in range(100):  # until uvicorn answers
        try:
            _, writer = await open_stream(port, key)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.3)
    await asyncio.sleep(1)
    before = rss_kb(pid)
    started = time.perf_counter()
    connections = []
    for first in range(0, streams, 50):
        batch = min(50, streams - first)
        connections += await asyncio.gather(*(open_stream(port, key) for _ in range(batch)))
    opening = time.perf_counter() - started
    await asyncio.sleep(2)
    after = rss_kb(pid)
    waiting = [asyncio.create_task(heard(reader)) for reader, _ in connections]
    await asyncio.sleep(0.5)
    sent = time.perf_counter()
    redis.Redis.from_url(redis_url).xadd(
        "live:deals", {"data": '{"deal":0,"version":0,"event":"bench","by":null}'}, maxlen=1000
    )
    delays = sorted(t - sent for t in await asyncio.gather(*waiting))
    for _, writer in connections:
        writer.close()

    def ms(share: float) -> float:
        return delays[min(len(delays) - 1, int(share * len(delays)))] * 1000

    return (
        f"{streams} streams opened in {opening:.1f} s; RSS {before / 1024:.0f} MB -> "
        f"{after / 1024:.0f} MB ({(after - before) / streams:.0f} KB per stream); one "
        f"announcement reached them: p50 {ms(0.5):.0f} ms, p95 {ms(0.95):.0f} ms, "
        f"all {delays[-1] * 1000:.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--port", type=int, default=8731)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        print("REDIS_URL must be set: the announcement goes through Redis.", file=sys.stderr)
        return 2
    key = session_key()
    server = subprocess.Popen(
        [
            *(PYTHON, "-m", "uvicorn", "pipeline_crm.asgi:application"),
            *("--port", str(args.port), "--log-level", "warning", "--backlog", "4096"),
        ],
        cwd=ROOT,
    )
    try:
        print(asyncio.run(measure(args.streams, args.port, server.pid, key, redis_url)))
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
