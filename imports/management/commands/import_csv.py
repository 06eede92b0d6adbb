"""Import a CSV file from the command line, through the same services as the web page.

    manage.py import_csv sales_pipeline.csv --as admin \\
        --organizations accounts.csv --team-members sales_teams.csv --products products.csv \\
        --create-missing --stage Engaging=Qualified

The columns are guessed as on the web page (or taken from --mapping: a saved mapping's
name, or a JSON/YAML file); --dry-run prints the preview's problems and stops. Rows are
imported in this process, batch by batch, with a progress line; --undo JOB undoes one.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import policy
from accounts.models import User
from common.errors import DomainError
from imports import preview, runner, services, undo
from imports.mapping import Mapping
from imports.models import ImportJob, ImportKind, ImportMapping
from stages.models import Pipeline, Stage


class Command(BaseCommand):
    help = "Import deals, organizations, people or activities from a CSV file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", help="The CSV file.")
        parser.add_argument("--kind", choices=list(ImportKind.values), default="deals")
        parser.add_argument("--as", dest="username", help="Importing user (default: an admin).")
        parser.add_argument("--mapping", help="A saved mapping's name, or a JSON/YAML file.")
        parser.add_argument("--save-mapping", help="Save the mapping used under this name.")
        parser.add_argument("--pipeline", help="Pipeline name or id (default: the first).")
        parser.add_argument("--organizations", help="Companion file of organization details.")
        parser.add_argument("--team-members", help="Companion file: member, manager, team.")
        parser.add_argument("--products", help="Companion file of product names.")
        parser.add_argument(
            "--create-missing",
            action="store_true",
            help="Create unknown owners, their managers and teams (admins only).",
        )
        parser.add_argument("--override-reason", default="", help="Import gate failures too.")
        parser.add_argument(
            "--stage", action="append", default=[], help="FILE_VALUE=STAGE (repeatable)."
        )
        parser.add_argument(
            "--owner", action="append", default=[], help="FILE_VALUE=USERNAME (repeatable)."
        )
        parser.add_argument("--date-order", choices=["dmy", "mdy"])
        parser.add_argument("--lost-reason", help="Lost reason for lost rows that have none.")
        parser.add_argument("--dry-run", action="store_true", help="Preview only.")
        parser.add_argument("--undo", type=int, metavar="JOB", help="Undo import JOB.")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self._user(options["username"])
        if options["undo"]:
            job = ImportJob.objects.filter(pk=options["undo"]).first()
            if job is None:
                raise CommandError(f"No import {options['undo']}.")
            try:
                result = undo.undo_import(job, by=by)
            except DomainError as error:
                raise CommandError(error.message) from None
            self.stdout.write(self.style.SUCCESS(f"Undone: {result}"))
            return
        if not options["path"]:
            raise CommandError("Give the CSV file to import (or --undo JOB).")
        job = self._start(by, options)
        scan = services.current_scan(job)
        result = preview.build(job, by=by, scan_result=scan)
        self._report_preview(job, result)
        if options["dry_run"]:
            return
        if not result.ready:
            raise CommandError("The mapping is incomplete; see above.")
        if options["save_mapping"]:
            services.save_mapping(job, by=by, name=options["save_mapping"])
        services.confirm_import(job, by=by, run_in_background=False)
        started = time.monotonic()
        job = runner.run_import(job.pk, progress=lambda j: self._progress(j, started))
        self._report(job, time.monotonic() - started)

    def _user(self, username: str | None) -> User:
        users = User.objects.filter(is_active=True)
        user = users.filter(username=username).first() if username else policy.admins().first()
        if user is None:
            raise CommandError(f"No active user {username or 'with the admin role'}.")
        if not policy.can_import(user):
            raise CommandError(f"{user.username} may not import (managers and admins only).")
        return user

    def _open(self, path: str | None) -> Any:
        if not path:
            return None
        try:
            return open(path, "rb")
        except OSError as error:
            raise CommandError(str(error)) from None

    def _start(self, by: User, options: dict[str, Any]) -> ImportJob:
        pipeline = None
        if options["pipeline"]:
            key = options["pipeline"]
            pipeline = Pipeline.objects.filter(
                **({"pk": int(key)} if key.isdigit() else {"name__iexact": key})
            ).first()
            if pipeline is None:
                raise CommandError(f"No pipeline {key}.")
        saved = None
        from_file: dict[str, Any] | None = None
        if options["mapping"]:
            source = Path(options["mapping"])
            if source.is_file():
                from_file = yaml.safe_load(source.read_text()) or {}
            else:
                saved = ImportMapping.objects.filter(name=options["mapping"]).first()
                if saved is None:
                    raise CommandError(f"No saved mapping or file called {options['mapping']}.")
        companions = {
            name: self._open(options[name])
            for name in ("organizations", "team_members", "products")
        }
        main = self._open(options["path"])
        try:
            reference = services.read_companions(**companions)
            job = services.start_import(
                by=by,
                upload=File(main, name=Path(options["path"]).name),
                kind=options["kind"],
                pipeline=pipeline,
                saved=saved,
                reference=reference,
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        finally:
            for handle in (main, *companions.values()):
                if handle is not None:
                    handle.close()
        mapping = Mapping.from_json(job.mapping)
        if from_file:
            mapping = self._apply_file(mapping, from_file, job)
        for pair in options["stage"]:
            value, stage = self._pair(pair)
            mapping.stages[value] = self._stage(job, stage)
        for pair in options["owner"]:
            value, username = self._pair(pair)
            owner = User.objects.filter(username=username).first()
            if owner is None:
                raise CommandError(f"No user {username}.")
            mapping.owners[value] = owner.pk
        mapping.create_missing = mapping.create_missing or options["create_missing"]
        if options["date_order"]:
            mapping.date_order = options["date_order"]
        if options["lost_reason"]:
            mapping.default_lost_reason = options["lost_reason"]
        return services.update_mapping(
            job,
            by=by,
            mapping=mapping,
            pipeline=job.pipeline,
            override_reason=options["override_reason"],
        )

    def _apply_file(self, mapping: Mapping, data: dict[str, Any], job: ImportJob) -> Mapping:
        """A mapping file: the JSON a job stores, where stages may be given by name."""
        merged = {**mapping.to_json(), **{k: v for k, v in data.items() if k != "stages"}}
        result = Mapping.from_json(merged)
        result.encoding, result.delimiter = mapping.encoding, mapping.delimiter
        for value, stage in (data.get("stages") or {}).items():
            result.stages[str(value)] = self._stage(job, str(stage))
        return result

    def _pair(self, text: str) -> tuple[str, str]:
        value, sep, target = text.partition("=")
        if not sep:
            raise CommandError(f"Expected VALUE=TARGET, got {text!r}.")
        return value.strip(), target.strip()

    def _stage(self, job: ImportJob, name: str) -> int:
        stages = Stage.objects.filter(pipeline=job.pipeline, is_archived=False)
        stage = stages.filter(pk=int(name)).first() if name.isdigit() else None
        stage = stage or stages.filter(name__iexact=name).first()
        if stage is None:
            raise CommandError(f"No stage {name!r} in {job.pipeline}.")
        return stage.pk

    def _report_preview(self, job: ImportJob, result: preview.Preview) -> None:
        write = self.stdout.write
        write(f"Import #{job.pk}: {job.original_name}, {job.total_rows:,} rows ({job.kind})")
        for name, header in sorted(result.mapping.columns.items()):
            write(f"  {name:<20} ← {header}")
        if result.ignored_headers:
            write(f"  ignored columns: {', '.join(result.ignored_headers)}")
        for item in result.missing_required:
            write(self.style.ERROR(f"  no column chosen for {item.label}"))
        for value, count, stage_id in result.stage_values:
            target = Stage.objects.filter(pk=stage_id).first() if stage_id else None
            write(f"  stage “{value}” ({count:,} rows) → {target or 'NOT MAPPED'}")
        for value, count in result.unknown_owners:
            write(f"  unknown owner “{value}” ({count:,} rows)")
        scanned = f"first {result.scanned:,} rows checked: " if result.scanned else ""
        actions = ", ".join(f"{n:,} {a}" for a, n in sorted(result.actions.items()))
        write(f"  {scanned}{actions}")
        for entry in result.problems:
            style = self.style.ERROR if entry["error"] else self.style.WARNING
            write(style(f"  {entry['label']} ({entry['column']}): {entry['count']:,}"))
            for example in entry["examples"]:
                write(f"      {example}")

    def _progress(self, job: ImportJob, started: float) -> None:
        elapsed = max(time.monotonic() - started, 0.001)
        line = (
            f"\r  {job.processed_rows:,}/{job.total_rows:,} rows ({job.percent}%) · "
            f"{job.created_count:,} created · {job.updated_count:,} updated · "
            f"{job.failed_count:,} failed · {job.processed_rows / elapsed:,.0f} rows/s"
        )
        if sys.stdout.isatty():
            self.stdout.write(line, ending="")
            self.stdout.flush()
        elif job.processed_rows % 10_000 < runner.BATCH_SIZE or job.percent == 100:
            self.stdout.write(line.strip())

    def _report(self, job: ImportJob, seconds: float) -> None:
        self.stdout.write("")
        style = self.style.SUCCESS if job.status == "done" else self.style.ERROR
        self.stdout.write(
            style(
                f"Import #{job.pk} {job.get_status_display().lower()} in {seconds:.1f}s: "
                f"{job.created_count:,} created, {job.updated_count:,} updated, "
                f"{job.unchanged_count:,} unchanged, {job.skipped_count:,} skipped, "
                f"{job.failed_count:,} failed."
            )
        )
        if job.summary.get("seconds"):
            spent = job.summary["seconds"]
            self.stdout.write(
                f"  {spent['rows']}s for the rows, {spent['follow_ups']}s for the follow-ups "
                "(stalled flags, forecasts)"
            )
        if job.summary.get("error"):
            self.stdout.write(self.style.ERROR(f"  {job.summary['error']}"))
        if job.summary_file:
            self.stdout.write(f"  summary: {job.summary_file.path}")
