#!/usr/bin/env python
"""Measure a 100,000-row deals import (not a test: it takes about a minute).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h8 .venv/bin/python scripts/import_benchmark.py

Makes a 100k-row file in the sample data set's shape (its rows repeated with fresh
opportunity ids), migrates and seeds the database when empty, imports the file through
`manage.py import_csv` in this process (the same runner the Celery task uses), then
imports it again (every row unchanged) and undoes it. Prints wall time, CPU time and
peak memory of each step. The database named by DATABASE_URL is written to: use your own.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT.parent / "shared" / "data" / "crm-sales-opportunities"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_crm.settings")


def make_file(path: Path, rows: int) -> None:
    with open(SAMPLE / "sales_pipeline.csv", newline="") as handle:
        source = list(csv.DictReader(handle))
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(source[0]))
        writer.writeheader()
        for index in range(rows):
            row = dict(source[index % len(source)])
            row["opportunity_id"] = f"B{index:07d}"
            writer.writerow(row)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(name: str, action) -> None:  # type: ignore[no-untyped-def]
    cpu = time.process_time()
    wall = time.monotonic()
    output = io.StringIO()
    action(output)
    last = [line for line in output.getvalue().splitlines() if line.strip()][-2:]
    print(
        f"{name}: {time.monotonic() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU "
        f"(this process), peak RSS {peak_mb():.0f} MB"
    )
    for line in last:
        print(f"    {line.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="Do not undo at the end.")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from imports.models import ImportJob
    from stages.models import Pipeline

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    call_command("migrate", verbosity=0)
    if not Pipeline.objects.exists():
        call_command("seed_demo", "--force", stdout=io.StringIO())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline-100k.csv"
        started = time.monotonic()
        make_file(path, args.rows)
        print(
            f"file: {args.rows:,} rows, {path.stat().st_size / 1e6:.1f} MB "
            f"({time.monotonic() - started:.1f} s to write)"
        )
        options = [
            str(path),
            "--organizations",
            str(SAMPLE / "accounts.csv"),
            "--team-members",
            str(SAMPLE / "sales_teams.csv"),
            "--products",
            str(SAMPLE / "products.csv"),
            "--create-missing",
            "--override-reason",
            "Benchmark: legacy data",
        ]
        step("import", lambda out: call_command("import_csv", *options, stdout=out))
        first = ImportJob.objects.order_by("-id").first()
        step("re-import", lambda out: call_command("import_csv", *options, stdout=out))
        second = ImportJob.objects.order_by("-id").first()
        if not args.keep:
            for job in (second, first):
                step(
                    f"undo #{job.pk}",
                    lambda out, job=job: call_command(
                        "import_csv", "--undo", str(job.pk), stdout=out
                    ),
                )


if __name__ == "__main__":
    main()
