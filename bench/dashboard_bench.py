"""Benchmark the managers' dashboard on PostgreSQL (not a test).

Creates a scratch database, fills it set-based (generate_series, one statement per
table) with N deals and about ten stage-history rows per deal, then times every panel
and the whole page, for a manager (one team) and for an admin (everything):

    .venv/bin/python bench/dashboard_bench.py --deals 100000
    .venv/bin/python bench/dashboard_bench.py --deals 100000 --reuse   # skip generation

The server is taken from BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432);
the scratch database is named by --database (default h5bench) and dropped first unless
--reuse is given. Nothing else on the server is touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEAMS = 20
REPS_PER_TEAM = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--database", default="h5bench")
    parser.add_argument("--reuse", action="store_true", help="keep existing data")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    return parser.parse_args()


def prepare_database(server: str, name: str, *, reuse: bool) -> None:
    import psycopg

    parts = urlsplit(server)
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return
        if exists:
            conn.execute(f'DROP DATABASE "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def generate(deals: int) -> None:
    """Teams, people, one pipeline, then deals, history, flags, gate events, activities."""
    from django.db import connection, transaction

    from accounts.models import Role, Team, User
    from stages.models import EntryCriterion, Pipeline, Stage, StageKind

    with transaction.atomic():
        pipeline = Pipeline.objects.create(name="Sales")
        names = ["Lead in", "Qualified", "Demo", "Proposal", "Negotiation"]
        opened = [
            Stage.objects.create(
                pipeline=pipeline, name=n, position=i, probability=10 + 15 * i, rotting_days=14
            )
            for i, n in enumerate(names)
        ]
        won = Stage.objects.create(
            pipeline=pipeline, name="Won", position=10, kind=StageKind.WON, probability=100
        )
        lost = Stage.objects.create(
            pipeline=pipeline, name="Lost", position=11, kind=StageKind.LOST, probability=0
        )
        criteria = [
            EntryCriterion.objects.create(stage=stage, kind="checklist", label=f"Check {i}")
            for i, stage in enumerate(opened[1:])
        ]
        User.objects.create_user("admin", role=Role.ADMIN, is_superuser=True, is_staff=True)
        for t in range(TEAMS):
            manager = User.objects.create_user(f"manager{t}", role=Role.MANAGER)
            team = Team.objects.create(name=f"Team {t}", manager=manager)
            manager.team = team
            manager.save()
            User.objects.bulk_create(
                User(username=f"rep{t}_{r}", role=Role.REP, team=team, password="!")
                for r in range(REPS_PER_TEAM)
            )

    open_ids = "ARRAY[" + ",".join(str(s.pk) for s in opened) + "]"
    crit_ids = "ARRAY[" + ",".join(str(c.pk) for c in criteria) + "]"
    crit_stage = "ARRAY[" + ",".join(str(c.stage_id) for c in criteria) + "]"
    steps = [
        (
            "deals",
            f"""
            INSERT INTO deals_deal (title, owner_id, pipeline_id, stage_id, amount, currency,
                expected_close_date, close_date_pushes, next_step, lost_reason, product,
                stage_entered_at, position, version, snooze_reason, external_id, created_at,
                updated_at)
            SELECT 'Deal ' || g, reps.ids[1 + (g % array_length(reps.ids, 1))], {pipeline.pk},
                   {opened[0].pk}, round((500 + random() * 50000)::numeric, 2),
                   CASE WHEN g % 10 = 0 THEN 'EUR' ELSE 'USD' END,
                   (now() + (random() * 120 - 30) * interval '1 day')::date, 0, '', '', '',
                   now(), g * 1024, 1, '', '',
                   now() - (1 + random() * 400) * interval '1 day', now()
            FROM generate_series(1, {deals}) g,
                 (SELECT array_agg(id ORDER BY id) AS ids FROM accounts_user
                  WHERE role = 'rep') reps
            """,
        ),
        (
            "history",
            f"""
            INSERT INTO deals_stagechange (deal_id, seq, from_stage_id, to_stage_id,
                pipeline_id, at, by_id, source, override_reason, overridden)
            WITH d AS (
                -- A deal lives 10 to 120 days; its k changes spread over that life.
                SELECT id, owner_id, created_at, 5 + floor(random() * 11)::int AS k,
                       random() AS fate, 10 + random() * 110 AS life_days
                FROM deals_deal
            ),
            steps AS (
                SELECT d.id AS deal_id, s.seq, d.owner_id, d.created_at,
                       CASE
                         WHEN s.seq = d.k AND d.fate < 0.25 THEN {won.pk}
                         WHEN s.seq = d.k AND d.fate < 0.45 THEN {lost.pk}
                         ELSE ({open_ids})[1 + floor(random() * {len(opened)})::int]
                       END AS to_stage,
                       CASE WHEN s.seq = 1 THEN 0
                            ELSE random() * 2 * d.life_days / d.k
                       END AS gap_days
                FROM d CROSS JOIN LATERAL generate_series(1, d.k) AS s(seq)
            )
            SELECT deal_id, seq,
                   LAG(to_stage) OVER w, to_stage, {pipeline.pk},
                   LEAST(now(), created_at + SUM(gap_days) OVER w * interval '1 day'),
                   owner_id, CASE WHEN seq = 1 THEN 'create' ELSE 'board' END, '', '[]'
            FROM steps
            WINDOW w AS (PARTITION BY deal_id ORDER BY seq)
            """,
        ),
        (
            "deal state",
            f"""
            UPDATE deals_deal d
            SET stage_id = last.to_stage_id, stage_entered_at = last.at,
                closed_at = CASE WHEN last.to_stage_id IN ({won.pk}, {lost.pk})
                                 THEN last.at END,
                lost_reason = CASE WHEN last.to_stage_id = {lost.pk} THEN 'Price' ELSE '' END
            FROM (SELECT DISTINCT ON (deal_id) deal_id, to_stage_id, at
                  FROM deals_stagechange ORDER BY deal_id, seq DESC) last
            WHERE d.id = last.deal_id
            """,
        ),
        (
            "stalled flags",
            f"""
            INSERT INTO deals_stalledflag (deal_id, rule, flagged_at)
            SELECT id, 'in_stage_too_long', now() FROM deals_deal
            WHERE stage_id = ANY({open_ids}) AND random() < 0.3
            """,
        ),
        (
            "gate events",
            f"""
            INSERT INTO deals_gateevent (deal_id, stage_id, criterion_id, requirement, outcome,
                by_id, source, at)
            SELECT d.id, ({crit_stage})[c], ({crit_ids})[c], 'Confirm: Check ' || (c - 1),
                   CASE WHEN random() < 0.2 THEN 'overridden' ELSE 'blocked' END,
                   d.owner_id, 'board', now() - random() * 400 * interval '1 day'
            FROM (SELECT id, owner_id, 1 + floor(random() * {len(criteria)})::int AS c
                  FROM deals_deal, generate_series(1, 2) WHERE random() < 0.5) d
            """,
        ),
        (
            "activities",
            """
            INSERT INTO deals_activity (type, subject, note, due_at, done, done_at, owner_id,
                deal_id, created_at)
            SELECT 'call', 'Call', '', now() - random() * 400 * interval '1 day', r < 0.8,
                   CASE WHEN r < 0.8 THEN now() - random() * 400 * interval '1 day' END,
                   owner_id, id, now()
            FROM (SELECT id, owner_id, random() AS r FROM deals_deal,
                  generate_series(1, 3)) d
            """,
        ),
    ]
    with connection.cursor() as cursor:
        for label, sql in steps:
            started = time.perf_counter()
            cursor.execute(sql)
            took = time.perf_counter() - started
            print(f"  {label:<14} {cursor.rowcount:>10,} rows  {took:6.1f} s")
        cursor.execute("ANALYZE")


def measure(repeat: int) -> None:
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from accounts.models import User
    from deals.models import Deal, StageChange
    from reports.dashboard.filters import filter_form
    from reports.dashboard.panels import PANELS, Dashboard

    print(
        f"\n{Deal.objects.count():,} deals, {StageChange.objects.count():,} stage-history rows"
        f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    for username in ["manager0", "admin"]:
        user = User.objects.get(username=username)
        scope = filter_form({}, user=user)
        assert scope.is_valid(), scope.errors
        dashboard_scope = scope.scope(now=timezone.now())
        deals = dashboard_scope.deals().count()
        print(f"\n{username} (sees {deals:,} deals), period {dashboard_scope.period}")
        print(f"  {'panel':<12} {'median ms':>10} {'queries':>8}")
        for slug in PANELS:
            timings = []
            for _ in range(repeat):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    Dashboard(dashboard_scope).panel(slug)
                    timings.append(time.perf_counter() - started)
            print(f"  {slug:<12} {statistics.median(timings) * 1000:>10.0f} {len(queries):>8}")
        client = Client()
        client.force_login(user)
        timings = []
        for _ in range(repeat):
            reset_queries()
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get("/reports/dashboard/")
                timings.append(time.perf_counter() - started)
            assert response.status_code == 200
        print(f"  {'whole page':<12} {statistics.median(timings) * 1000:>10.0f} {len(queries):>8}")


def main() -> None:
    args = parse_args()
    server = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432")
    prepare_database(server, args.database, reuse=args.reuse)
    os.environ["DATABASE_URL"] = f"{server.rstrip('/')}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_crm.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from deals.models import Deal

    # Also on --reuse: apps added since the data was generated need their tables.
    call_command("migrate", verbosity=0)

    if not args.reuse or not Deal.objects.exists():
        print(f"Generating {args.deals:,} deals in {args.database}")
        started = time.perf_counter()
        generate(args.deals)
        print(f"  generated in {time.perf_counter() - started:.1f} s")
    measure(args.repeat)


if __name__ == "__main__":
    main()
