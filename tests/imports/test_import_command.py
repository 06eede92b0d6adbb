"""manage.py import_csv: the same import from the command line, with a progress display."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from deals.models import Deal
from imports.models import ImportJob
from tests.imports.imports_support import csv_of, import_root  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]


@pytest.fixture
def sample_file(tmp_path):
    path = tmp_path / "pipeline.csv"
    path.write_text(
        csv_of(
            "A1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,1054",
            "A2,Moses Frase,GTX Basic,Acme,Negotiating,2016-10-20,,",
        )
    )
    return path


def test_command_imports_and_reports_progress_and_totals(admin_user, rep, stages, sample_file):
    out = io.StringIO()

    call_command("import_csv", str(sample_file), "--as", admin_user.username, stdout=out)

    text = out.getvalue()
    assert "2/2 rows (100%)" in text
    assert "1 created, 0 updated, 0 unchanged, 0 skipped, 1 failed" in text
    assert "Unknown stage (deal_stage): 1" in text
    assert list(Deal.objects.values_list("external_id", flat=True)) == ["A1"]


def test_command_maps_stages_and_owners_from_options(admin_user, rep, stages, sample_file):
    call_command(
        "import_csv",
        str(sample_file),
        "--stage",
        "Negotiating=Proposal",
        "--owner",
        f"Moses Frase={rep.username}",
        stdout=io.StringIO(),
    )

    assert Deal.objects.get(external_id="A2").stage == stages["proposal"]


def test_dry_run_saves_no_deal(admin_user, rep, stages, sample_file):
    out = io.StringIO()

    call_command("import_csv", str(sample_file), "--dry-run", stdout=out)

    assert "stage “Negotiating” (1 rows) → NOT MAPPED" in out.getvalue()
    assert Deal.objects.count() == 0


def test_command_undoes_an_import(admin_user, rep, stages, sample_file):
    call_command("import_csv", str(sample_file), stdout=io.StringIO())
    job = ImportJob.objects.get()

    call_command("import_csv", "--undo", str(job.pk), stdout=io.StringIO())

    assert Deal.objects.count() == 0


def test_command_refuses_a_rep(rep, stages, sample_file):
    with pytest.raises(CommandError, match="may not import"):
        call_command("import_csv", str(sample_file), "--as", rep.username)


def test_command_reads_a_mapping_file_with_stages_by_name(
    admin_user, rep, stages, sample_file, tmp_path
):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("stages:\n  Negotiating: Demo\ndefault_currency: EUR\n")

    call_command("import_csv", str(sample_file), "--mapping", str(mapping), stdout=io.StringIO())

    assert Deal.objects.get(external_id="A1").currency == "EUR"
    assert ImportJob.objects.get().mapping["stages"]["Negotiating"] == stages["demo"].pk
