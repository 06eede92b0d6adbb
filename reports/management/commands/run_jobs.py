"""Run the periodic jobs once, in-process: for `make run` users without a worker."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common import outbox
from deals import notifications, stalled
from reports import forecasts
from reports.dashboard import stays


class Command(BaseCommand):
    help = (
        "Flag stalled deals and notify owners, recompute forecasts, store the dashboard's "
        "completed stays, take this week's snapshot and drain the outbox; prints what each "
        "step did, with time and SQL statement counts."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--digest",
            action="store_true",
            help="Also send the daily e-mail digests that are due.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with self._step("stalled check") as note:
            result = stalled.refresh_flags()
            note(
                f"{sum(result.added.values())} flag(s) added, "
                f"{sum(result.cleared.values())} cleared, {result.notified} notification(s)"
            )
        with self._step("activity reminders") as note:
            note(f"{notifications.remind_activities()} reminder(s)")
        with self._step("forecast recompute") as note:
            recomputed = forecasts.recompute()
            note(
                f"{recomputed.win_rates} stage rate(s); forecast cells: "
                f"{sum(recomputed.inserted.values())} written, {recomputed.deleted} replaced "
                "or removed (unchanged cells are left alone)"
            )
        with self._step("dashboard stays") as note:
            note(f"{stays.refresh().added} completed stay(s) stored")
        with self._step("forecast snapshot") as note:
            note(f"{forecasts.take_snapshot()} row(s) this week")
        with self._step("outbox drain") as note:
            note(f"{outbox.drain()} message(s) dispatched")
        if options["digest"]:
            with self._step("e-mail digests") as note:
                note(f"{notifications.send_digests()} sent")

    def _step(self, name: str) -> _Step:
        return _Step(self, name)


class _Step:
    """Times a step and counts its SQL statements, then prints one line about it."""

    def __init__(self, command: Command, name: str) -> None:
        self.command = command
        self.name = name
        self.text = ""

    def __enter__(self) -> Any:
        self.queries = CaptureQueriesContext(connection)
        self.queries.__enter__()
        self.started = time.perf_counter()
        return self.note

    def note(self, text: str) -> None:
        self.text = text

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.started
        self.queries.__exit__(*exc)
        if exc[0] is None:
            self.command.stdout.write(
                f"{self.name}: {self.text} ({elapsed:.2f}s, {len(self.queries)} statements)"
            )
