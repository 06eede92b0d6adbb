"""Import uploads cannot fill the disk: nothing stays behind a refused upload, and a quota
bounds what one user keeps (imports/services.py).

Before: a cell over the CSV parser's field limit answered 500, and the file of every
upload refused after it was stored (100 MB per request) stayed under IMPORT_ROOT.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from django.urls import reverse

from imports import runner, services
from imports.models import ImportJob
from tests.imports.imports_support import HEADER, csv_of, import_root, upload  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

ROW = "A1,rep,GTX Basic,Acme,Prospecting,2016-10-20,,"


@pytest.fixture
def root(settings) -> Path:
    return Path(settings.IMPORT_ROOT)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def post_upload(client, text: str, name: str = "deals.csv"):
    return client.post(reverse("import_start"), {"kind": "deals", "file": upload(text, name)})


def test_a_cell_over_the_csv_field_limit_is_refused_and_leaves_nothing(
    client_for, manager, stages, root
):
    too_long = "n" * (csv.field_size_limit() + 1)
    text = csv_of(ROW, f'A2,rep,GTX Basic,"{too_long}",Prospecting,,,')

    response = post_upload(client_for(manager), text)

    assert response.status_code == 400
    assert "field larger than field limit" in response.content.decode()
    assert ImportJob.objects.count() == 0
    assert files_under(root) == []


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty
        ",,,\n1,2,3\n",  # no column names
    ],
    ids=["empty", "no-header"],
)
def test_refused_uploads_leave_no_file(client_for, manager, stages, root, text):
    response = post_upload(client_for(manager), text)

    assert response.status_code == 400
    assert ImportJob.objects.count() == 0
    assert files_under(root) == []


def test_a_quota_bounds_what_one_user_keeps(
    client_for, manager, admin_user, stages, root, settings
):
    text = csv_of(*[ROW] * 40)
    size = len(text.encode())
    settings.IMPORT_QUOTA_BYTES = 2 * size
    client = client_for(manager)

    assert [post_upload(client, text).status_code for _ in range(3)] == [302, 302, 400]
    assert services.kept_bytes(manager) == 2 * size
    assert len(files_under(root)) == 2
    refused = post_upload(client, text)
    assert "limit" in refused.content.decode()
    # The quota is the user's own: another importer is not held back by it.
    assert post_upload(client_for(admin_user), text).status_code == 302

    first = ImportJob.objects.filter(created_by=manager).order_by("pk").first()
    assert client.post(reverse("import_discard", args=[first.pk])).status_code == 302
    assert services.kept_bytes(manager) == size
    assert post_upload(client, text).status_code == 302


def test_a_finished_import_releases_its_file(
    manager, stages, root, django_capture_on_commit_callbacks
):
    job = services.start_import(by=manager, upload=upload(csv_of(ROW)))
    stored = Path(job.file.path)
    assert stored.exists() and services.kept_bytes(manager) > 0

    services.confirm_import(job, by=manager, run_in_background=False)
    with django_capture_on_commit_callbacks(execute=True):
        finished = runner.run_import(job.pk)

    assert finished.status == "done"
    assert not stored.exists()
    assert services.kept_bytes(manager) == 0
    assert finished.summary_file  # the row-by-row summary stays downloadable
