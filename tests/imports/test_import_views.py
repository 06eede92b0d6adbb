"""The import pages: access, upload → preview → confirm → progress → undo, query counts."""

from __future__ import annotations

import pytest
from django.urls import reverse

from common.models import OutboxMessage
from deals.models import Deal
from imports import runner, services
from imports.models import ImportJob, ImportStatus
from tests.imports.imports_support import (  # noqa: F401
    csv_of,
    eager,
    import_root,
    run,
    start,
    upload,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

HTMX = {"HTTP_HX_REQUEST": "true"}
WON = "A1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,1054"


def rows(n: int) -> str:
    return csv_of(*(f"R{i},rep,GTX Basic,Org {i % 7},Prospecting,,," for i in range(n)))


def test_reps_get_404_on_the_import_page(client_for, rep):
    assert client_for(rep).get(reverse("import_start")).status_code == 404


def test_reps_get_404_on_an_import(client_for, admin_user, rep, stages):
    job = start(admin_user, csv_of(WON))

    for name in ("import_preview", "import_status", "import_summary"):
        assert client_for(rep).get(reverse(name, args=[job.pk])).status_code == 404


def test_a_manager_gets_404_on_another_users_import(client_for, admin_user, manager, stages):
    job = start(admin_user, csv_of(WON))

    assert client_for(manager).get(reverse("import_preview", args=[job.pk])).status_code == 404
    response = client_for(manager).post(reverse("import_confirm", args=[job.pk]))
    assert response.status_code == 404


def test_import_is_in_the_menu_of_managers_and_admins_only(client_for, rep, manager, stages):
    link = f'href="{reverse("import_start")}"'

    assert link in client_for(manager).get(reverse("board")).content.decode()
    assert link not in client_for(rep).get(reverse("board")).content.decode()


def test_upload_keeps_the_file_and_goes_to_the_preview(client_for, admin_user, stages):
    response = client_for(admin_user).post(
        reverse("import_start"), {"kind": "deals", "file": upload(csv_of(WON))}
    )

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("import_preview", args=[job.pk])
    assert (job.total_rows, job.pipeline, job.status) == (1, stages["won"].pipeline, "uploaded")


def test_upload_refuses_a_file_that_is_not_csv(client_for, admin_user, stages):
    response = client_for(admin_user).post(
        reverse("import_start"), {"kind": "deals", "file": upload("x", name="deals.xlsx")}
    )

    assert response.status_code == 400
    assert ImportJob.objects.count() == 0
    assert "Choose a .csv file" in response.content.decode()


def test_preview_shows_guessed_columns_stages_and_unknown_owners(
    client_for, admin_user, rep, stages
):
    job = start(admin_user, csv_of(WON, "B2,Moses Frase,GTXPro,,Engaging,2016-10-20,,"))

    page = client_for(admin_user).get(reverse("import_preview", args=[job.pk])).content.decode()

    assert '<option value="close_value" selected>close_value</option>' in page
    assert "Moses Frase" in page  # an owner to assign
    assert "No user matches owner" in page
    assert f'<option value="{stages["qualified"].pk}" selected>' in page  # Engaging
    assert "1 create" in page and "1 fail" in page


def test_preview_post_saves_the_mapping_and_answers_htmx_with_the_fragment(
    client_for, admin_user, rep, stages
):
    job = start(admin_user, csv_of("B2,Moses Frase,GTX Basic,Acme,Prospecting,,,"))
    data = {
        "pipeline": stages["lead"].pipeline_id,
        "col_external_id": "opportunity_id",
        "col_owner": "sales_agent",
        "col_stage": "deal_stage",
        "col_organization": "account",
        "stage_0": stages["lead"].pk,
        "owner_0": rep.pk,
        "default_currency": "EUR",
        "date_order": "dmy",
    }

    response = client_for(admin_user).post(reverse("import_preview", args=[job.pk]), data, **HTMX)

    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="import-preview">')
    job.refresh_from_db()
    assert job.mapping["owners"] == {"Moses Frase": rep.pk}
    assert (job.mapping["default_currency"], job.mapping["date_order"]) == ("EUR", "dmy")
    assert "product" not in job.mapping["columns"]


def test_preview_post_can_save_the_mapping_under_a_name(client_for, admin_user, rep, stages):
    from imports.models import ImportMapping

    job = start(admin_user, csv_of(WON))
    data = {
        "pipeline": stages["lead"].pipeline_id,
        "col_stage": "deal_stage",
        "stage_0": stages["won"].pk,
        "default_currency": "USD",
        "date_order": "auto",
        "save_as": "Maven sample",
    }

    client_for(admin_user).post(reverse("import_preview", args=[job.pk]), data)

    assert ImportMapping.objects.get().name == "Maven sample"


@pytest.mark.usefixtures("eager")
def test_confirm_runs_the_import_and_shows_the_summary(
    client_for, admin_user, rep, stages, django_capture_on_commit_callbacks
):
    job = start(admin_user, csv_of(WON))
    client = client_for(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("import_confirm", args=[job.pk]))

    assert response.url == reverse("import_status", args=[job.pk])
    job.refresh_from_db()
    assert (job.status, job.created_count) == (ImportStatus.DONE, 1)
    page = client.get(response.url).content.decode()
    assert "every 1s" not in page
    assert reverse("import_summary", args=[job.pk]) in page


def test_status_fragment_polls_every_second_while_running(client_for, admin_user, rep, stages):
    job = start(admin_user, csv_of(WON))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING)

    response = client_for(admin_user).get(reverse("import_status", args=[job.pk]), **HTMX)

    body = response.content.decode()
    assert body.lstrip().startswith('<div id="import-progress"')
    assert 'hx-trigger="every 1s"' in body
    assert "<progress" in body


def test_a_confirmed_job_is_queued_with_its_run_kept_in_the_outbox(
    client_for, admin_user, rep, stages, settings
):
    settings.IMPORT_RUNNER = "celery"
    # Handed to the broker after commit; if it is down, the drain sends it later
    # (tests/imports/test_import_faults.py).
    job = start(admin_user, csv_of(WON))

    client_for(admin_user).post(reverse("import_confirm", args=[job.pk]))

    job.refresh_from_db()
    assert job.status == ImportStatus.QUEUED
    message = OutboxMessage.objects.get(task="imports.run_import")
    assert message.payload == {"job_id": job.pk} and message.finished_at is None


def test_summary_downloads_as_csv(client_for, admin_user, rep, stages):
    job = run(admin_user, csv_of(WON))

    response = client_for(admin_user).get(reverse("import_summary", args=[job.pk]))

    assert response["Content-Type"] == "text/csv"
    assert b"A1,created" in b"".join(response.streaming_content)


def test_undo_view_removes_the_import(client_for, admin_user, rep, stages):
    job = run(admin_user, csv_of(WON))

    response = client_for(admin_user).post(reverse("import_undo", args=[job.pk]))

    assert response.url == reverse("import_status", args=[job.pk])
    assert Deal.objects.count() == 0


def test_undo_view_is_404_for_reps(client_for, admin_user, rep, stages):
    job = run(admin_user, csv_of(WON))

    assert client_for(rep).post(reverse("import_undo", args=[job.pk])).status_code == 404
    assert Deal.objects.count() == 1


@pytest.mark.parametrize("jobs", [1, 15])
def test_import_page_query_count_is_constant(
    client_for, admin_user, rep, stages, django_assert_num_queries, jobs
):
    for _ in range(jobs):
        start(admin_user, csv_of(WON))
    client = client_for(admin_user)

    # session, user, jobs (with users and pipelines), pipelines and saved mappings of the form
    with django_assert_num_queries(7):
        assert client.get(reverse("import_start")).status_code == 200


@pytest.mark.parametrize("size", [3, 400])
def test_preview_query_count_is_constant(
    client_for, admin_user, rep, stages, django_assert_num_queries, size
):
    job = start(admin_user, rows(size))
    client = client_for(admin_user)

    with django_assert_num_queries(14):
        assert client.get(reverse("import_preview", args=[job.pk])).status_code == 200


@pytest.mark.parametrize("size", [3, 400])
def test_status_query_count_is_constant(
    client_for, admin_user, rep, stages, django_assert_num_queries, size
):
    job = run(admin_user, rows(size))
    client = client_for(admin_user)

    with django_assert_num_queries(3):
        assert client.get(reverse("import_status", args=[job.pk]), **HTMX).status_code == 200


def test_runner_progress_reaches_the_total(admin_user, rep, stages, monkeypatch):
    monkeypatch.setattr(runner, "BATCH_SIZE", 2)
    seen: list[int] = []
    job = start(admin_user, rows(5))
    services.confirm_import(job, by=admin_user, run_in_background=False)

    runner.run_import(job.pk, progress=lambda j: seen.append(j.processed_rows))

    assert seen == [2, 4, 5]


def test_a_queued_job_offers_to_hand_it_to_a_worker_again(client_for, admin_user, rep, stages):
    job = start(admin_user, csv_of(WON))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.QUEUED)

    page = client_for(admin_user).get(reverse("import_status", args=[job.pk])).content.decode()

    assert f'action="{reverse("import_confirm", args=[job.pk])}"' in page
    assert 'hx-trigger="every 1s"' in page
