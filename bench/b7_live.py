"""B7: the live board under load: N open event streams on one uvicorn process.

One web process serves pipeline_crm.asgi (bench settings, the run's Redis), as one
uvicorn worker of production's gunicorn does. The bench opens N Server-Sent Events
streams to it (/live/stream/, as a rep), then measures:

- memory per stream: the process's RSS before and after opening them;
- delivery: a real move (POST /deals/<id>/move/ to the same process) at a time; from
  sending it until each stream received that deal's announcement, p50/p95 over every
  (stream, move), and per move the time until the last stream had it;
- the move path: moves/s from a few concurrent clients with no stream open, then with
  the N streams open (and reading every announcement), and how much slower that is.

The client runs in this process on the same cores as the server: at N=500 it parses
every frame of 500 streams, which the browsers of a real team would do elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import stats
from bench.b2_move import rep_open_deals
from bench.b3_concurrent import Server, session_cookie
from bench.datagen import Dataset

ROOT = Path(__file__).resolve().parent.parent
DELIVERY_MOVES = 20
THROUGHPUT_MOVES = 300
CLIENTS = 4


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


class Uvicorn(Server):
    """One uvicorn process serving the ASGI app (not gunicorn's several WSGI workers)."""

    def __init__(self) -> None:
        super().__init__(workers=1)

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", "pipeline_crm.asgi:application"),
            *("--host", self.host, "--port", str(self.port), "--log-level", "warning"),
            *("--backlog", "4096", "--no-access-log"),
        ]


class Stream:
    """One open /live/stream/: records when each (deal, version) announcement arrived
    (while `recording`; otherwise it only drains what arrives, as cheaply as it can)."""

    recording = True

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.heard: dict[tuple[int, int], float] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        buffer = b""
        while chunk := await self.reader.read(65536):
            if not Stream.recording:
                continue
            now = time.perf_counter()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"data: {") and b'"deal"' in line:
                    data = json.loads(line[6:])
                    self.heard.setdefault((data["deal"], data["version"]), now)

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


async def open_stream(port: int, cookie: str) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /live/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    seen = b""
    while b"retry:" not in seen:
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError(f"stream refused: {seen[:200]!r}")
        seen += chunk
    return Stream(reader, writer)


class Mover:
    """Moves a rep's own open deals one stage on over HTTP/1.1, as the board's drop does;
    one connection per move (the browser's keep-alive would only help)."""

    def __init__(self, port: int, session: str, data: Dataset, rep_id: int) -> None:
        self.port = port
        self.csrf = secrets.token_hex(16)
        self.cookie = f"sessionid={session}; csrftoken={self.csrf}"
        self.state = {pk: [stage, version] for pk, stage, version in rep_open_deals(rep_id, data)}
        self.opened = data.open_stage_ids
        self.statuses: dict[int, int] = {}

    def deals(self, share: int, of: int) -> list[int]:
        return [pk for i, pk in enumerate(sorted(self.state)) if i % of == share]

    async def move(self, deal_id: int) -> tuple[int, int]:
        """Move `deal_id` on; (status, the version it has now)."""
        stage_id, version = self.state[deal_id]
        target = self.opened[(self.opened.index(stage_id) + 1) % len(self.opened)]
        body = urlencode({"stage": target, "version": version, "source": "board"}).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            (
                f"POST /deals/{deal_id}/move/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Cookie: {self.cookie}\r\nX-CSRFToken: {self.csrf}\r\nHX-Request: true\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + body
        )
        await writer.drain()
        answer = await reader.read()  # until the server closes
        writer.close()
        status = int(answer.split(b" ", 2)[1])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.state[deal_id] = [target, version + 1]
        return status, self.state[deal_id][1]

    async def throughput(self, total: int, clients: int) -> float:
        """Moves/s of `clients` concurrent movers, `total` moves in all."""
        left = [total]

        async def client(share: int) -> None:
            mine = self.deals(share, clients)
            i = 0
            while left[0] > 0:
                left[0] -= 1
                await self.move(mine[i % len(mine)])
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        return total / (time.perf_counter() - started)


async def _measure(
    server: Uvicorn, session: str, mover: Mover, streams: int, moves: int
) -> dict[str, Any]:
    pid = server.process.pid if server.process else 0
    cookie = f"sessionid={session}"
    # Warm up the process (imports, first queries) before anything is measured.
    await mover.throughput(20, 2)

    async def timed() -> tuple[float, float, float]:
        """Moves/s, and the server's and this client's CPU ms per move."""
        server_cpu, client_cpu = cpu_s(pid), time.process_time()
        rate = await mover.throughput(moves, CLIENTS)
        return (
            rate,
            (cpu_s(pid) - server_cpu) * 1000 / moves,
            (time.process_time() - client_cpu) * 1000 / moves,
        )

    without, server_without, client_without = await timed()

    before = rss_kb(pid)
    started = time.perf_counter()
    opened: list[Stream] = []
    for first in range(0, streams, 50):
        batch = min(50, streams - first)
        opened += await asyncio.gather(*(open_stream(server.port, cookie) for _ in range(batch)))
    opening = time.perf_counter() - started
    await asyncio.sleep(2)
    after = rss_kb(pid)

    delays: list[float] = []
    last: list[float] = []
    missed = 0
    for deal_id in mover.deals(0, 1)[:DELIVERY_MOVES]:
        sent = time.perf_counter()
        status, version = await mover.move(deal_id)
        if status != 200:
            continue
        key = (deal_id, version)
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline and any(key not in s.heard for s in opened):
            await asyncio.sleep(0.005)
        arrived = [s.heard[key] - sent for s in opened if key in s.heard]
        missed += len(opened) - len(arrived)
        delays += arrived
        last.append(max(arrived, default=10.0))
        await asyncio.sleep(0.2)

    Stream.recording = False
    with_streams, server_with, client_with = await timed()
    Stream.recording = True
    for stream in opened:
        stream.close()

    per_stream = stats.summary(delays) if delays else {}
    return {
        "streams": streams,
        "opening_s": round(opening, 1),
        "rss_before_mb": round(before / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
        "kb_per_stream": round((after - before) / streams, 1),
        "delivery_moves": len(last),
        "delivery_p50_ms": per_stream.get("p50_ms"),
        "delivery_p95_ms": per_stream.get("p95_ms"),
        "all_streams_p50_ms": round(sorted(last)[len(last) // 2] * 1000, 1) if last else None,
        "all_streams_max_ms": round(max(last) * 1000, 1) if last else None,
        "missed": missed,
        "moves_per_s_without_streams": round(without, 1),
        "moves_per_s_with_streams": round(with_streams, 1),
        "slower_pct": round((1 - with_streams / without) * 100, 1) if without else None,
        # Where the difference goes: the server's fan-out, and this client reading
        # every frame of every stream on the same cores.
        "server_cpu_ms_per_move": [round(server_without, 2), round(server_with, 2)],
        "client_cpu_ms_per_move": [round(client_without, 2), round(client_with, 2)],
        "clients": CLIENTS,
        "throughput_moves": moves,
        "statuses": {str(k): v for k, v in sorted(mover.statuses.items())},
    }


def measure(rep: Any, data: Dataset, *, streams: int, moves: int = THROUGHPUT_MOVES) -> dict:
    """B7 at `streams` open streams; needs the run's Redis (REDIS_URL), as production."""
    if not os.environ.get("REDIS_URL"):
        # Production fans out through Redis; without it there is nothing like it to measure.
        return {"skipped": "no Redis at BENCH_REDIS_URL"}
    session = session_cookie(rep)
    mover = Mover(0, session, data, rep.pk)
    with Uvicorn() as server:
        mover.port = server.port
        return asyncio.run(_measure(server, session, mover, streams, moves))
