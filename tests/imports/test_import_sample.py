"""The outside data set (../shared/data/crm-sales-opportunities), imported end to end.

All 8,800 opportunities go through the ordinary path (services, runner), on whichever
database the suite runs on (CI runs it on SQLite and on PostgreSQL); then the same file
again, which must change nothing; then undo, which must leave nothing behind.
"""

from __future__ import annotations

import csv
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files import File
from django.db.models import Count, F, Max, Sum

from accounts.models import Role, Team, User
from contacts.models import Organization
from deals.models import Deal, StageChange
from imports import runner, services
from imports.mapping import Mapping
from imports.models import ImportStatus
from imports.undo import undo_import
from tests.imports.imports_support import SAMPLE_DIR, import_root  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

SAMPLE = Path(SAMPLE_DIR)


def sample_rows() -> list[dict[str, str]]:
    with open(SAMPLE / "sales_pipeline.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def import_sample(by: User):
    with (
        open(SAMPLE / "accounts.csv", "rb") as accounts,
        open(SAMPLE / "sales_teams.csv", "rb") as teams,
        open(SAMPLE / "products.csv", "rb") as products,
    ):
        reference = services.read_companions(
            organizations=accounts, team_members=teams, products=products
        )
    with open(SAMPLE / "sales_pipeline.csv", "rb") as main:
        job = services.start_import(
            by=by, upload=File(main, name="sales_pipeline.csv"), reference=reference
        )
    mapping = Mapping.from_json(job.mapping)
    mapping.create_missing = True
    services.update_mapping(job, by=by, mapping=mapping, pipeline=job.pipeline)
    services.confirm_import(job, by=by, run_in_background=False)
    return runner.run_import(job.pk)


@pytest.fixture
def first_import(admin_user, stages):
    started = time.monotonic()
    job = import_sample(admin_user)
    return job, time.monotonic() - started


def test_every_opportunity_is_imported(first_import):
    job, seconds = first_import

    assert (job.status, job.created_count, job.failed_count) == (ImportStatus.DONE, 8800, 0)
    assert Deal.objects.count() == 8800
    assert seconds < 60


def test_stages_map_prospecting_engaging_won_lost(first_import, stages):
    counts = dict(Deal.objects.values_list("stage").annotate(n=Count("id")).order_by())

    assert counts == {
        stages["lead"].pk: 500,
        stages["qualified"].pk: 1589,
        stages["won"].pk: 4238,
        stages["lost"].pk: 2473,
    }


def test_agents_become_reps_their_managers_managers_offices_teams(first_import):
    reps = User.objects.filter(role=Role.REP, team__isnull=False)
    managers = User.objects.filter(role=Role.MANAGER, managed_teams__isnull=False)

    assert (reps.count(), managers.count(), Team.objects.count()) == (35, 6, 6)
    moses = User.objects.get(first_name="Moses", last_name="Frase")
    assert moses.team.name == "Central (Dustin Brinkmann)"
    assert moses.team.manager.get_full_name() == "Dustin Brinkmann"
    assert not moses.has_usable_password()


def test_accounts_become_organizations_with_sector_employees_and_revenue(first_import):
    acme = Organization.objects.get(name="Acme Corporation")

    assert Organization.objects.count() == 85
    assert (acme.sector, acme.employees, acme.annual_revenue) == (
        "technology",  # "technolgy" in the file, corrected and reported
        2822,
        Decimal("1100040000.00"),
    )
    assert not Organization.objects.filter(sector="technolgy").exists()


def test_quirks_are_handled_and_reported(first_import):
    job, _ = first_import
    problems = {entry["kind"]: entry["count"] for entry in job.summary["problems"]}

    assert Deal.objects.filter(product="GTX Pro").count() == 1480
    assert not Deal.objects.filter(product="GTXPro").exists()
    assert Deal.objects.filter(organization__isnull=True).count() == 1425
    assert set(Deal.objects.filter(stage__kind="lost").values_list("lost_reason", flat=True)) == {
        "Lost (imported)"
    }
    assert problems == {
        "product_spelling": 1480,
        "no_organization": 1425,
        "lost_reason_default": 2473,
        "sector_spelling": 12,  # accounts.csv's "technolgy"
    }


def test_close_dates_and_amounts_match_the_file(first_import):
    won = [r for r in sample_rows() if r["deal_stage"] == "Won"]

    total = Deal.objects.filter(stage__kind="won").aggregate(s=Sum("amount"))["s"]

    assert total == sum(Decimal(r["close_value"]) for r in won)
    assert not Deal.objects.filter(
        stage__kind__in=["won", "lost"], closed_at__isnull=True
    ).exists()
    assert not Deal.objects.filter(stage__kind="open", closed_at__isnull=False).exists()


def test_history_is_contiguous_and_marked_import(first_import):
    deals = Deal.objects.annotate(rows=Count("stage_changes"), last=Max("stage_changes__seq"))

    assert not deals.exclude(rows=F("last")).exists()
    assert not deals.exclude(rows=F("version")).exists()
    assert set(StageChange.objects.values_list("source", flat=True)) == {"import"}
    assert StageChange.objects.count() == 2 * (4238 + 2473) + 1589 + 500


def test_importing_the_file_again_duplicates_nothing(first_import, admin_user):
    again = import_sample(admin_user)

    assert (again.created_count, again.unchanged_count, again.failed_count) == (0, 8800, 0)
    assert Deal.objects.count() == 8800
    assert Organization.objects.count() == 85
    assert User.objects.count() == 41 + 1


def test_undo_leaves_nothing_behind(first_import, admin_user):
    job, _ = first_import

    undo_import(job, by=admin_user)

    assert (Deal.objects.count(), StageChange.objects.count(), Organization.objects.count()) == (
        0,
        0,
        0,
    )
    assert list(User.objects.all()) == [admin_user]
    assert not Team.objects.exists()
