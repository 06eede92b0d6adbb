"""B7: the live board under load: N open event streams on one uvicorn process.

One web process serves pipeline_crm.asgi (bench settings, the run's Redis), as one
uvicorn worker of production's gunicorn does. The bench opens N Server-Sent Events
streams to it (/live/stream/, as a rep), then measures:

- memory per stream: the process's RSS before and after opening them;
- delivery: a real move (POST /deals/<id>/move/ to the same process) at a time, each
  after a quiet spell; from sending it until each stream received that deal's
  announcement, p50/p95 over every (stream, move), and per move the time until the last
  stream had it;
- the move path: moves/s from a few concurrent clients with no stream open, then with
  the N streams open (and reading every announcement), and how much slower that is. The
  arms run in the order without, with, with, without (half an arm's moves each), so a
  drift in the machine's load or the process's warmth falls on both alike.
- the server process's CPU per move in each arm (from /proc), and the fan-out probe:
  with the streams open and no moves, announcements added straight to Redis at the
  with-arm's move rate; the server's CPU per announcement over its idle CPU, as a share
  of a move's own CPU, is about how much slower moves get when the server's core is what
  limits them. Unlike moves/s on a shared machine it hardly depends on the load.
- under the throughput arm, when a sample of the streams heard each move after its
  answer reached the client (the server batches announcements under a stream of moves).

The streams are held by a child process (bench.live_streams), not by this one: parsing
500 streams here slowed the load generator's own moves, which is no cost of the server's.
It still shares the machine's two cores with the server (as do PostgreSQL and Redis); its
CPU per move is reported too. Nothing is pinned to a core.
"""

from __future__ import annotations

import asyncio
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
from bench.live_streams import Receivers

ROOT = Path(__file__).resolve().parent.parent
DELIVERY_MOVES = 20
THROUGHPUT_MOVES = 300
CLIENTS = 4
WARMUP_MOVES = 60
# The fan-out probe: announcements added straight to the Redis stream at the with-arm's
# move rate for this long, no moves meanwhile, against as long a quiet spell before it.
PROBE_SECONDS = 5.0
# After the throughput arm, time for the last batch to reach the streams (the server
# feeds them at most every deals.live.FLUSH_SECONDS).
FLUSH_WAIT = 1.5


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
        # When each move's answer came: (deal, version it wrote) -> perf_counter.
        self.answered: dict[tuple[int, int], float] = {}

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
            self.answered[(deal_id, version + 1)] = time.perf_counter()
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


class Arm:
    """One side of the comparison, summed over its rounds."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu = 0.0
        self.moves = 0
        self.windows: list[tuple[float, float]] = []

    async def run(self, mover: Mover, pid: int, moves: int) -> None:
        """`moves` moves from CLIENTS concurrent clients, the server's CPU meanwhile."""
        cpu = cpu_s(pid)
        started = time.perf_counter()
        await mover.throughput(moves, CLIENTS)
        ended = time.perf_counter()
        self.seconds += ended - started
        self.cpu += cpu_s(pid) - cpu
        self.moves += moves
        self.windows.append((started, ended))

    @property
    def rate(self) -> float:
        return self.moves / self.seconds

    @property
    def cpu_ms_per_move(self) -> float:
        return self.cpu * 1000 / self.moves


async def _measure(
    server: Uvicorn, session: str, mover: Mover, streams: int, moves: int
) -> dict[str, Any]:
    pid = server.process.pid if server.process else 0
    cookie = f"sessionid={session}"
    # Warm up the process (imports, first queries, caches) before anything is measured.
    await mover.throughput(WARMUP_MOVES, CLIENTS)
    # The arms in the order without, with, with, without (half of each arm's moves at a
    # time), so that a drift in the machine's load or the process's warmth meanwhile falls
    # on both alike.
    without, with_streams = Arm(), Arm()
    result: dict[str, Any] = {"streams": streams}
    with Receivers(server.port, cookie) as receivers:
        await without.run(mover, pid, moves // 2)
        before = rss_kb(pid)
        opening = receivers.call("open", streams)
        await asyncio.sleep(2)
        after = rss_kb(pid)
        result |= {
            "opening_s": round(opening, 1),
            "rss_before_mb": round(before / 1024, 1),
            "rss_after_mb": round(after / 1024, 1),
            "kb_per_stream": round((after - before) / streams, 1),
            **(await _delivery(mover, receivers)),
        }
        receivers.call("record_all", False)
        client = cpu_s(receivers.process.pid)
        await with_streams.run(mover, pid, moves // 2)
        await with_streams.run(mover, pid, moves // 2)
        receivers_cpu = cpu_s(receivers.process.pid) - client
        await asyncio.sleep(FLUSH_WAIT)
        heard = receivers.call("sampled")
        fanout = await _fanout_cpu_ms(pid, with_streams.rate, mover.deals(0, 1)[0])
        receivers.call("close")
        await asyncio.sleep(1)
        await without.run(mover, pid, moves // 2)
    # Under the throughput arm, when a sampled stream heard each move, after its answer
    # reached the client (negative: before).
    under_load = [
        h[key] - at
        for key, at in mover.answered.items()
        if any(start <= at <= end for start, end in with_streams.windows)
        for h in heard
        if key in h
    ]
    loaded = stats.summary(under_load) if under_load else {}
    cpu_without, cpu_with = without.cpu_ms_per_move, with_streams.cpu_ms_per_move
    return result | {
        # The proxy: the server's CPU for feeding every stream one move's announcement, at
        # the with-arm's move rate, as a share of a move's own CPU. When the server's core
        # is what limits moves, that is about how much slower they get.
        "fanout_cpu_ms_per_move": round(fanout, 2),
        "fanout_share_pct": round(fanout / cpu_without * 100, 1),
        "moves_per_s_without_streams": round(without.rate, 1),
        "moves_per_s_with_streams": round(with_streams.rate, 1),
        "slower_pct": round((1 - with_streams.rate / without.rate) * 100, 1),
        # The server process's CPU per move in each arm: the difference is the streams'
        # cost too, but as the difference of two noisy figures it is the rougher one.
        "server_cpu_ms_per_move": [round(cpu_without, 2), round(cpu_with, 2)],
        "stream_cpu_ms_per_move": round(cpu_with - cpu_without, 2),
        # The receivers' process, reading every frame of every stream, on the same cores.
        "receivers_cpu_ms_per_move": round(receivers_cpu * 1000 / with_streams.moves, 2),
        "under_load_after_answer_p50_ms": loaded.get("p50_ms"),
        "under_load_after_answer_p95_ms": loaded.get("p95_ms"),
        "clients": CLIENTS,
        "throughput_moves": moves,
        "statuses": {str(k): v for k, v in sorted(mover.statuses.items())},
    }


async def _fanout_cpu_ms(pid: int, rate: float, deal_id: int) -> float:
    """The server's CPU per announcement for feeding the open streams, announcements
    coming at `rate` a second (as moves did in the with-arm), over what it spends idle
    with them open (heartbeats): the streams' cost per move, without the move's own
    cost to subtract, which on a shared machine varies more than this is."""
    import redis

    from deals.live import REPLAY_SIZE, STREAM_KEY, Announcement

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    idle_cpu, started = cpu_s(pid), time.perf_counter()
    await asyncio.sleep(PROBE_SECONDS)
    idle = (cpu_s(pid) - idle_cpu) / (time.perf_counter() - started)
    data = Announcement(deal_id, 0, "deal.updated", None).data()
    cpu, started, sent = cpu_s(pid), time.perf_counter(), 0
    while (elapsed := time.perf_counter() - started) < PROBE_SECONDS:
        if sent < elapsed * rate:
            client.xadd(STREAM_KEY, {"data": data}, maxlen=REPLAY_SIZE, approximate=True)
            sent += 1
        await asyncio.sleep(0.002)
    await asyncio.sleep(FLUSH_WAIT)
    spent = cpu_s(pid) - cpu - idle * (time.perf_counter() - started)
    return spent * 1000 / max(sent, 1)


async def _delivery(mover: Mover, receivers: Receivers) -> dict[str, Any]:
    """One move at a time, each after a quiet spell longer than the server's batching
    interval (deals.live.FLUSH_SECONDS): from sending it until each stream heard it. How
    long moves made in a row wait for their batch is the throughput arm's figure."""
    from deals.live import FLUSH_SECONDS

    delays: list[float] = []
    last: list[float] = []
    missed = 0
    for deal_id in mover.deals(0, 1)[:DELIVERY_MOVES]:
        sent = time.perf_counter()
        status, version = await mover.move(deal_id)
        if status != 200:
            continue
        heard = receivers.call("wait", (deal_id, version), 10.0)
        arrived = [at - sent for at in heard if at is not None]
        missed += len(heard) - len(arrived)
        delays += arrived
        last.append(max(arrived, default=10.0))
        await asyncio.sleep(FLUSH_SECONDS + 0.1)
    per_stream = stats.summary(delays) if delays else {}
    return {
        "delivery_moves": len(last),
        "delivery_p50_ms": per_stream.get("p50_ms"),
        "delivery_p95_ms": per_stream.get("p95_ms"),
        "all_streams_p50_ms": round(sorted(last)[len(last) // 2] * 1000, 1) if last else None,
        "all_streams_max_ms": round(max(last) * 1000, 1) if last else None,
        "missed": missed,
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
