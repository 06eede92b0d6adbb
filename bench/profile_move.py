"""Where a move's Python time goes, in load-independent figures, on a kept bench database.

    python -m bench --sizes 100000 --only NONE --database bench_x --keep   # data, once
    python -m bench.profile_move --database bench_x [--moves 200] [--top 30]

Runs B2's move (a rep's board drop, through the test client and the full middleware
stack) and B0's authenticated floor on the kept database, and prints per request:
Python function calls (exact, whatever the machine's load), thread CPU time, SQL
statements, and the calls spent under each part of the move (session and user, the view's
reads, `move_deal`, the answer's card, totals and rendering). Then cProfile's top
functions by own time. Nothing is written; the moves are real (versions go up).
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import os
import pstats
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench import db


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_move")
    parser.add_argument("--database", default="bench")
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--stale", action="store_true", help="also profile a refused (409) move")
    return parser.parse_args(argv)


def _parts() -> dict[Any, str]:
    """The code objects whose calls (with everything under them) make up a named part."""
    from django.contrib.auth import get_user
    from django.contrib.sessions.backends.db import SessionStore
    from django.template.response import SimpleTemplateResponse

    from deals import events, live, queries, services
    from deals.views import board

    named = {
        SessionStore.load: "session",
        get_user: "user",
        board.changeable_deal: "view: deal read",
        board.MoveCommand.parse: "view: command",
        board.active_stage: "view: stage read",
        services._lock_current: "move_deal: lock",
        services.gate.evaluate: "move_deal: gate",
        services._position: "move_deal: position",
        services.move_deal: "move_deal: other",
        events.publish: "move_deal: event insert",
        events.dispatch: "after commit: outbox hand-off",
        live.announce_after_commit: "move_deal: live announcement",
        queries.board_card: "answer: card",
        queries.column_heads: "answer: totals",
        SimpleTemplateResponse.render: "answer: render",
    }
    from django.template.context import RequestContext
    from django.template.defaulttags import URLNode

    from bench import urls as bench_urls
    from common import ratelimit
    from common.templatetags import formats as money_tags
    from deals import rows

    named[RequestContext.bind_template] = "answer: render: context processors"
    named[URLNode.render] = "answer: render: url tags"
    for name in dir(money_tags):
        fn = getattr(money_tags, name)
        if callable(fn) and getattr(fn, "__module__", "") == money_tags.__name__:
            named[fn] = "answer: render: money filter"
    from django.core.handlers.wsgi import WSGIRequest

    named[WSGIRequest._load_post_and_files] = "view: POST parsing"
    named[ratelimit._count] = "view: rate limit"
    named[board._filters] = "answer: board filters"
    named[board._prepare_cards] = "answer: card facts"
    named[board._moved] = "answer: other"
    named[board._move_refused] = "409: other"
    named[queries.live_card] = "409: card"
    named[queries.card_after] = "409: card after"
    named[queries.column_stages] = "409: stages"
    # The view itself, not its decorators' wrappers (whose code every wrapped view shares).
    named[inspect.unwrap(board.move)] = "view: other"
    named[inspect.unwrap(bench_urls.touch)] = "floor view: lock and update"

    named[rows.lock] = "move_deal: lock row"
    named[rows.load_related] = "move_deal: related rows"
    named[rows.update] = "move_deal: update"
    named[rows.append_history] = "move_deal: history"
    named[live._announce_changes] = "after commit: live XADD"
    return {getattr(fn, "__code__", None): label for fn, label in named.items() if fn is not None}


class PartCounter:
    """sys.setprofile: every Python call is counted against the innermost named part."""

    def __init__(self, parts: dict[Any, str]) -> None:
        self.parts = parts
        self.stack: list[tuple[Any, str]] = []
        self.counts: Counter[str] = Counter()

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "c_call":
            self.counts[self.stack[-1][1] if self.stack else "rest (middleware, request)"] += 1
        elif event == "call":
            label = self.parts.get(frame.f_code)
            if label is not None:
                self.stack.append((frame, label))
            self.counts[self.stack[-1][1] if self.stack else "rest (middleware, request)"] += 1
        elif event == "return" and self.stack and self.stack[-1][0] is frame:
            self.stack.pop()


def measure(name: str, fn: Callable[[], Any], *, runs: int, top: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(10):
        fn()
    cpu = []
    for _ in range(runs):
        started = time.thread_time()
        fn()
        cpu.append(time.thread_time() - started)
    with CaptureQueriesContext(connection) as queries:
        fn()
    statements = [q["sql"] for q in queries.captured_queries]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    calls = stats.total_calls / runs  # type: ignore[attr-defined]
    counter = PartCounter(_parts())
    sys.setprofile(counter)
    for _ in range(runs):
        fn()
    sys.setprofile(None)
    print(f"\n== {name}: {runs} requests ==")
    print(f"  Python calls per request  {calls:,.0f}")
    print(f"  thread CPU p50            {statistics.median(cpu) * 1000:.2f} ms")
    print(f"  SQL statements            {len(statements)}")
    if os.environ.get("PROFILE_SQL"):
        for sql in statements:
            print(f"    {sql[:300]}")
    print("  calls per request by part (everything under the innermost named function):")
    for label, count in sorted(counter.counts.items(), key=lambda kv: -kv[1]):
        print(f"    {count / runs:9,.0f}  {label}")
    print(f"  top {top} functions by own time:")
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = os.environ.get("BENCH_DATABASE_URL", db.DEFAULT_SERVER)
    redis_url = os.environ.get("BENCH_REDIS_URL", db.DEFAULT_REDIS)
    db.configure_django(
        db.database_url(server, args.database),
        redis_url=redis_url if db.redis_reachable(redis_url) else "",
    )
    from django.test import Client

    from accounts.models import User
    from bench import b2_move
    from bench.datagen import Dataset
    from deals.models import Deal
    from stages.models import Stage, StageKind

    rep = User.objects.get(username="rep0_0")
    pipeline_id = Deal.objects.filter(owner=rep).values_list("pipeline_id", flat=True)[0]
    opened = list(
        Stage.objects.filter(pipeline_id=pipeline_id, kind=StageKind.OPEN, is_archived=False)
        .order_by("position")
        .values_list("pk", flat=True)
    )
    data = Dataset(0, pipeline_id, opened, 0, 0, 0, [], [rep.pk])
    client = Client()
    client.force_login(rep)
    driver = b2_move.MoveDriver(client, data, b2_move.rep_open_deals(rep.pk, data))
    statuses: Counter[int] = Counter()

    def move() -> None:
        statuses[driver.move()] += 1

    touched = Deal.objects.filter(owner=rep).order_by("-id").values_list("pk", flat=True)[0]

    def touch() -> None:
        assert client.post(f"/bench/touch/{touched}/").status_code == 200

    stale_id, stale_stage, stale_version = b2_move.rep_open_deals(rep.pk, data)[-1]
    aimed = opened[(opened.index(stale_stage) + 1) % len(opened)]

    def stale() -> None:
        # A version behind: refused (409) with the fresh card, as B3's losers are.
        response = client.post(
            f"/deals/{stale_id}/move/",
            {"stage": aimed, "version": stale_version - 1, "source": "board", "from": aimed},
            headers={"HX-Request": "true"},
        )
        statuses[response.status_code] += 1

    measure("authenticated floor (B0)", touch, runs=args.moves, top=args.top)
    measure("move (B2)", move, runs=args.moves, top=args.top)
    if args.stale:
        measure("stale move (409)", stale, runs=args.moves, top=args.top)
    print(f"\nmove statuses: {dict(statuses)}")
    return 0 if set(statuses) <= {200, 409} and statuses[200] else 1


if __name__ == "__main__":
    sys.exit(main())
