"""`python -m bench`: generate data at each size, measure B0-B8, write the results.

    python -m bench --sizes 10000,100000,1000000     # make bench  -> bench/results/latest.*
    python -m bench --quick                          # make bench-quick -> var/bench/quick.*

Needs a PostgreSQL server (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432)
where it may create and drop one database (--database, default "bench"). With a Redis at
BENCH_REDIS_URL (default redis://127.0.0.1:6379/11) moves hand their follow-up work to it
as production does; without one, that work runs in-process and moves are slower.
Exits non-zero when a step fails or an integrity check finds an error; timings are only
printed, never judged here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import db

ROOT = Path(__file__).resolve().parent.parent
QUICK_SIZE = 10_000


@dataclass(frozen=True)
class Profile:
    floor_runs: int
    board_runs: int
    move_runs: int
    threads: int
    b3_total: int
    b3_seconds: float
    naive_sample: int
    dashboard_runs: int
    live_moves: int  # B7: moves per throughput pass (without, then with the streams)


FULL = Profile(200, 30, 200, 16, 4000, 30, 200, 3, 300)
QUICK = Profile(100, 10, 100, 16, 600, 15, 50, 2, 100)
# Above 100k deals a board or a move costs seconds on a 2-core machine: fewer runs keep
# the 1M step within about half an hour (p99 of 60 moves is their second slowest).
LARGE = Profile(100, 3, 60, 16, 4000, 30, 100, 1, 100)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="deals, comma-separated")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE:,} deals, fewer runs")
    parser.add_argument("--history", type=int, default=10, help="mean history rows per deal")
    parser.add_argument("--database", default="bench")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--seed", type=float, default=0.42)
    parser.add_argument(
        "--streams", type=int, default=500, help="B7: open live streams (quick: 100)"
    )
    parser.add_argument("--out", type=Path, help="results directory")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use the data a --keep run left in --database when it has the size asked "
        "(one size only; steps that change data may have run on it already)",
    )
    parser.add_argument(
        "--only", default="", help="run only these steps, e.g. B4,B5 (data is generated anyway)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep other sizes' results already in the output (add 1M to a 10k+100k run)",
    )
    return parser.parse_args(argv)


def log(text: str) -> None:
    print(text, flush=True)


class Run:
    """One size: its results dict, and each step run with its failure recorded, not raised."""

    def __init__(
        self,
        results: dict[str, Any],
        size: int,
        save: Callable[[], None],
        only: set[str] | None = None,
    ) -> None:
        # With --only, the steps not re-run keep their previous figures (--merge).
        self.out: dict[str, Any] = (
            {**results["sizes"].get(str(size), {}), "errors": {}} if only else {"errors": {}}
        )
        results["sizes"][str(size)] = self.out
        self.save = save
        self.only = only

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.only and name.split()[0] not in self.only:
            return None
        started = time.perf_counter()
        try:
            value = fn()
        except Exception:
            self.out["errors"][name] = traceback.format_exc()
            log(f"  {name} FAILED:\n{traceback.format_exc()}")
            value = None
        else:
            log(f"  {name} done in {time.perf_counter() - started:.1f} s")
            # Steps re-run with --only may be at another commit than the rest of the size.
            self.out.setdefault("step_commits", {})[name.split()[0]] = self.out.get("commit")
        self.save()
        return value


def measure_size(
    size: int, args: argparse.Namespace, profile: Profile, ctx: dict[str, Any], run: Run
) -> None:
    from django.test import Client

    from accounts.models import User
    from bench import (
        b0_floors,
        b1_board,
        b2_move,
        b3_concurrent,
        b4_jobs,
        b5_dashboard,
        b6_api,
        b7_live,
        b8_automations,
        datagen,
    )
    from deals.models import Deal

    raw, url = ctx["raw"], ctx["url"]
    log(f"\n== {size:,} deals (load average {os.getloadavg()[0]:.1f}) ==")
    run.out["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run.out["load_average_at_start"] = round(os.getloadavg()[0], 1)
    run.out["commit"] = ctx["commit"]
    started = time.perf_counter()
    data = datagen.existing(size) if args.reuse else None
    if data is None:
        data = datagen.generate(size, history=args.history, seed=args.seed, log=log)
    else:
        log("    reusing the data left by a --keep run")
    generated = time.perf_counter() - started
    vacuum = datagen.vacuum_analyze(log=log)
    open_deals = raw.execute(
        "SELECT count(*) FROM deals_deal WHERE stage_id = ANY(%s)", [data.open_stage_ids]
    ).fetchone()[0]
    run.out["data"] = {
        **data.as_json(),
        "open_deals": open_deals,
        "generate_s": round(generated, 1),
        "vacuum_s": vacuum,
    }
    admin = User.objects.get(pk=data.admin_id)
    rep = User.objects.get(pk=data.rep_ids[0])
    manager = User.objects.get(pk=data.manager_ids[0])
    b0: dict[str, Any] = run.out.setdefault("b0", {})

    def floors() -> None:
        b0["select1"] = b0_floors.select_one(raw, runs=profile.floor_runs)
        b0["bare_move"] = b0_floors.bare_move(raw, data, runs=profile.floor_runs)
        client = Client()
        client.force_login(rep)
        b0["hello_in_process"] = b0_floors.hello_in_process(client, runs=profile.floor_runs)
        # One of the rep's deals; only its updated_at changes, so B2 may still move it.
        touched = Deal.objects.filter(owner=rep).order_by("-id").values_list("pk", flat=True)[0]
        b0["authenticated"] = b0_floors.authenticated_floor(
            client, touched, runs=profile.floor_runs
        )

    run.step("B0 floors", floors)

    def jobs() -> None:
        run.out["b4"] = b4_jobs.measure(sample=profile.naive_sample)
        # The jobs wrote flags, notifications and forecasts: fresh statistics for the rest.
        datagen.vacuum_analyze()

    run.step("B4 jobs", jobs)

    def board() -> None:
        run.out["b1"] = {
            "admin": b1_board.measure(admin, raw, runs=profile.board_runs),
            "rep": b1_board.measure(rep, raw, runs=profile.board_runs),
        }

    run.step("B1 board", board)

    def move() -> None:
        floor = (b0.get("bare_move") or {}).get("p50_ms", 0)
        django_floor = (b0.get("authenticated") or {}).get("p50_ms", 0)
        run.out["b2"] = b2_move.measure(
            rep,
            data,
            runs=profile.move_runs,
            floor_p50_ms=floor,
            django_floor_p50_ms=django_floor,
            django_floor=b0.get("authenticated"),
        )
        result = run.out["b2"]
        log(
            f"    p50 {result['p50_ms']} ms, Python CPU {result['python_cpu_p50_ms']} ms, "
            f"{result['python_calls']:,} Python calls, {result['statements']} statements; "
            f"÷ authenticated floor: {result['ratio_to_django_floor']}x wall, "
            f"{result['cpu_to_django_floor']}x CPU, {result['calls_to_django_floor']}x calls"
        )

    run.step("B2 move", move)

    def api() -> None:
        run.out["b6"] = b6_api.measure(rep, data, runs=profile.move_runs)

    run.step("B6 API", api)

    def concurrent() -> None:
        with b3_concurrent.Server(workers=args.workers) as server:
            b0["hello_http"] = b0_floors.hello_http(
                server.host, server.port, runs=profile.floor_runs
            )
            run.out["b3"] = b3_concurrent.run(
                data,
                url,
                threads=profile.threads,
                workers=args.workers,
                total=profile.b3_total,
                seconds=profile.b3_seconds,
                server=server,
            )
        result = run.out["b3"]
        log(
            f"    {result['requests']} requests, {result['moves_per_s']} moves/s, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
            f"statuses {result['statuses']}, integrity errors {result['integrity_errors']}"
        )
        if result["integrity_errors"]:
            raise AssertionError(f"integrity check failed: {result['integrity']}")

    run.step("B3 concurrent moves", concurrent)

    def live_streams() -> None:
        streams = min(args.streams, 100) if args.quick else args.streams
        run.out["b7"] = result = b7_live.measure(
            rep, data, streams=streams, moves=profile.live_moves
        )
        if "skipped" in result:
            log(f"    skipped: {result['skipped']}")
            return
        log(
            f"    {result['streams']} streams, {result['kb_per_stream']} KB each; delivery "
            f"p50 {result['delivery_p50_ms']} ms, p95 {result['delivery_p95_ms']} ms, all "
            f"{result['all_streams_p50_ms']} ms; moves/s {result['moves_per_s_without_streams']}"
            f" -> {result['moves_per_s_with_streams']} ({result['slower_pct']} % slower); "
            f"server CPU per move {result['server_cpu_ms_per_move'][0]} -> "
            f"{result['server_cpu_ms_per_move'][1]} ms; fan-out CPU per move "
            f"{result['fanout_cpu_ms_per_move']} ms = {result['fanout_share_pct']} % of a "
            f"move's; receivers' CPU per move "
            f"{result['receivers_cpu_ms_per_move']} ms; under load heard "
            f"p50 {result['under_load_after_answer_p50_ms']} ms, "
            f"p95 {result['under_load_after_answer_p95_ms']} ms after the answer"
        )

    run.step("B7 live", live_streams)

    def dashboard() -> None:
        # At the largest size a panel takes minutes for an admin: one cold run each, and
        # the whole page (the sum of its panels) is left out.
        small = profile is not LARGE
        options = {"runs": profile.dashboard_runs, "warm": small, "page": small}
        # The same with a custom period of five years: every stay and entry is read.
        from django.utils import timezone

        years = b5_dashboard.five_years(timezone.localdate())
        run.out["b5"] = {
            "admin": b5_dashboard.measure(admin, **options),
            "manager": b5_dashboard.measure(manager, **options),
            "admin 5 years": b5_dashboard.measure(admin, **options, query=years),
            "manager 5 years": b5_dashboard.measure(manager, **options, query=years),
        }

    run.step("B5 dashboard", dashboard)

    def automations() -> None:
        run.out["b8"] = b8_automations.measure(admin, rep, data, runs=profile.move_runs)
        result = run.out["b8"]
        log(
            f"    scan {result['scan']['first_s']} s ({result['scan']['first_runs']} runs, "
            f"{result['scan']['first_statements']} statements), again "
            f"{result['scan']['second_s']} s, 5 min later {result['scan']['later_s']} s "
            f"({result['scan']['later_runs']} runs); event to action "
            f"p50 {result['latency']['event_to_action'].get('p50_ms')} ms"
        )

    run.step("B8 automations", automations)
    run.out["load_average_at_end"] = round(os.getloadavg()[0], 1)
    run.save()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = QUICK if args.quick else FULL
    sizes = [QUICK_SIZE] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    out = args.out or (ROOT / "var" / "bench" if args.quick else ROOT / "bench" / "results")
    stem = "quick" if args.quick else "latest"
    server = os.environ.get("BENCH_DATABASE_URL", db.DEFAULT_SERVER)
    url = db.database_url(server, args.database)
    redis_url = os.environ.get("BENCH_REDIS_URL", db.DEFAULT_REDIS)
    if not db.redis_reachable(redis_url):
        log(f"No Redis at {redis_url}: follow-up tasks run in-process during moves.")
        redis_url = ""

    if not args.reuse:
        log(f"Creating database {args.database!r} on {server}")
        db.recreate_database(server, args.database)
    db.configure_django(url, redis_url=redis_url)
    from django.core.management import call_command
    from django.db import connection

    from bench import report

    call_command("migrate", verbosity=0)
    raw = db.raw_connection(url)
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": report.machine(raw),
        "tasks": "Celery via Redis (no worker consuming)" if redis_url else "in-process",
        "seed": args.seed,
        "history_per_deal": args.history,
        "sizes": {},
    }
    only = {step.strip().upper() for step in args.only.split(",") if step.strip()} or None
    previous = out / f"{stem}.json"
    if args.merge and previous.exists():
        kept = json.loads(previous.read_text()).get("sizes", {})
        # A size run again replaces its old figures, unless only some steps are re-run.
        results["sizes"] = {k: v for k, v in kept.items() if only or int(k) not in sizes}

    def save() -> None:
        results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        report.write(results, out, stem)

    failed = False
    try:
        for size in sizes:
            run = Run(results, size, save, only=only)
            try:
                chosen = LARGE if size > 100_000 and not args.quick else profile
                measure_size(
                    size,
                    args,
                    chosen,
                    {"raw": raw, "url": url, "commit": results["machine"]["commit"]},
                    run,
                )
            except Exception:
                run.out["errors"]["generate"] = traceback.format_exc()
                log(traceback.format_exc())
                save()
            failed = failed or bool(run.out["errors"])
    finally:
        raw.close()
        connection.close()
        if redis_url:
            db.forget_queued_tasks(redis_url)
        if not args.keep:
            db.drop_database(server, args.database)
    json_path, md_path = report.write(results, out, stem)
    log("\n" + md_path.read_text())
    log(f"Results: {json_path} and {md_path}")
    if failed:
        log("Some steps failed (see above); exit status 1.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
