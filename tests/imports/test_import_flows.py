"""Import flows of issue 16: confirm answers at once, and the preview's counts are honest."""

from __future__ import annotations

import threading

import pytest
from django.urls import reverse

from imports import runner
from imports.models import ImportJob
from tests.imports.imports_support import csv_of, eager, import_root, start  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root", "eager")]

ROW = "A1,rep,GTX Basic,Acme,Prospecting,2016-10-20,,"


def test_confirm_without_a_broker_answers_before_the_import_has_run(
    client_for, admin_user, rep, stages, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Zero-setup default: the import runs beside the request, so the browser gets the
    progress page at once instead of waiting for the whole file with nothing on screen."""
    settings.IMPORT_RUNNER = "thread"
    release, ran = threading.Event(), threading.Event()

    def slow_import(job_id, **kwargs):
        release.wait(timeout=5)
        ran.set()
        return ImportJob.objects.none()

    monkeypatch.setattr(runner, "run_import", slow_import)
    monkeypatch.setattr("imports.tasks.run", slow_import)
    job = start(admin_user, csv_of(ROW))
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(admin_user).post(reverse("import_confirm", args=[job.pk]))
    answered_before_the_import_ran = not ran.is_set()
    release.set()
    assert ran.wait(timeout=5)
    assert response.status_code == 302
    assert response.url == reverse("import_status", args=[job.pk])
    assert answered_before_the_import_ran


def preview_of(client, job):
    return client.get(reverse("import_preview", args=[job.pk])).content.decode()


def test_confirm_button_counts_only_rows_that_would_be_written(client_for, admin_user, stages):
    # "nobody" owns nothing here: every row fails on its owner.
    job = start(admin_user, csv_of(*(f"X{i},nobody,GTX,Acme,Prospecting,,," for i in range(3))))
    page = preview_of(client_for(admin_user), job)
    assert "3 fail" in page
    assert "Import 3 rows" not in page
    assert "Import 0 rows" in page and "Nothing to import" in page


def test_preview_shows_the_gate_problem_while_owners_are_unresolved(
    client_for, admin_user, stages
):
    from stages.models import CriterionKind
    from tests.factories import CriterionFactory

    CriterionFactory(stage=stages["lead"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    job = start(
        admin_user,
        csv_of("G1,nobody,GTX,Acme,Lead in,2016-10-20,,"),
        stages={"Lead in": stages["lead"].pk},
    )
    page = preview_of(client_for(admin_user), job)
    assert "Budget ok" in page


def test_a_re_import_of_the_same_file_previews_as_unchanged(client_for, admin_user, rep, stages):
    from tests.imports.imports_support import run

    text = csv_of(*(f"U{i},rep,GTX Basic,Acme,Prospecting,2016-10-20,,100" for i in range(4)))
    first = run(admin_user, text)
    assert first.created_count == 4
    again = start(admin_user, text)
    page = preview_of(client_for(admin_user), again)
    assert "4 unchanged" in page
    assert "update" not in page.split('class="import-actions"', 1)[1].split("</p>", 1)[0]
    assert "Nothing to import" in page


def test_the_import_page_explains_the_feature_to_its_users(client_for, admin_user):
    page = client_for(admin_user).get(reverse("import_start")).content.decode()
    assert "Check the preview" in page and "Undo" in page
    assert "README" not in page and "shared/data" not in page
