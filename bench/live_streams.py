"""B7's open streams, held by a process of their own (`Receivers`).

The browsers of a real team read their streams on their own machines. Here they share
the machine's cores with the server, but no longer the load generator's process and
interpreter lock: reading 500 streams in the process that also sends the moves slowed
the moves down on the client's side, which is no cost of the server's.

Only standard-library imports: the child process starts fresh (spawn) and never sets up
Django.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

# Arrival times are kept for every stream while timing delivery, and for every SAMPLE-th
# stream otherwise (under the throughput arm), so reading stays cheap for the rest.
SAMPLE = 10


class _Stream:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sampled: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.sampled = sampled
        self.heard: dict[tuple[int, int], float] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        buffer = b""
        while chunk := await self.reader.read(65536):
            if not (self.sampled or _Held.recording_all):
                continue
            # perf_counter is CLOCK_MONOTONIC: comparable with the load generator's.
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


async def _open(port: int, cookie: str, sampled: bool) -> _Stream:
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
    return _Stream(reader, writer, sampled)


class _Held:
    recording_all = True

    def __init__(self, port: int, cookie: str) -> None:
        self.port = port
        self.cookie = cookie
        self.streams: list[_Stream] = []

    async def open(self, n: int) -> float:
        started = time.perf_counter()
        for first in range(0, n, 50):
            batch = range(first, min(first + 50, n))
            self.streams += await asyncio.gather(
                *(_open(self.port, self.cookie, i % SAMPLE == 0) for i in batch)
            )
        return time.perf_counter() - started

    async def wait(self, key: tuple[int, int], timeout: float) -> list[float | None]:
        """When each stream heard `key` (None: not within `timeout`)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and any(key not in s.heard for s in self.streams):
            await asyncio.sleep(0.005)
        return [s.heard.get(key) for s in self.streams]

    def sampled(self) -> list[dict[tuple[int, int], float]]:
        return [s.heard for s in self.streams if s.sampled]

    async def close(self) -> None:
        for stream in self.streams:
            stream.close()
        await asyncio.gather(*(s.task for s in self.streams), return_exceptions=True)
        self.streams = []


async def _serve(conn: Connection, port: int, cookie: str) -> None:
    held = _Held(port, cookie)
    loop = asyncio.get_running_loop()
    while True:
        # The pipe is polled without blocking the loop, which keeps reading the streams.
        while not conn.poll():
            await asyncio.sleep(0.002)
        command, *args = conn.recv()
        try:
            if command == "open":
                reply: Any = await held.open(*args)
            elif command == "wait":
                reply = await held.wait(*args)
            elif command == "record_all":
                _Held.recording_all = args[0]
                reply = None
            elif command == "sampled":
                reply = held.sampled()
            elif command == "close":
                reply = await held.close()
            else:
                await held.close()
                conn.send(None)
                return
        except Exception as error:
            reply = error
        await loop.run_in_executor(None, conn.send, reply)


def _main(conn: Connection, port: int, cookie: str) -> None:
    asyncio.run(_serve(conn, port, cookie))


class Receivers:
    """A child process holding N open streams to `port`, driven from the bench."""

    def __init__(self, port: int, cookie: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_main, args=(child, port, cookie), daemon=True)
        self.process.start()

    def call(self, *command: Any) -> Any:
        self.conn.send(command)
        reply = self.conn.recv()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def __enter__(self) -> Receivers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            with contextlib.suppress(EOFError, OSError):
                self.call("quit")
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
