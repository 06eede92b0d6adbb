"""Issue 14: an import confirmed while the broker is down is not stuck "queued"; a long
import works in slices that checkpoint and resume, so no task outlives the broker's
visibility timeout."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from common import outbox
from common.models import OutboxMessage
from deals.models import Deal
from imports import runner, services
from imports.models import ImportStatus
from pipeline_crm.celery import app
from tests.imports.imports_support import csv_of, eager, import_root, start  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

ROWS = [f"S{i},rep,GTX Basic,Acme {i},Engaging,2016-11-03,," for i in range(7)]


@pytest.fixture
def broker_down():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = f"redis://127.0.0.1:{port}/0"
    yield
    app.conf.task_always_eager, app.conf.broker_url = before


def test_an_import_confirmed_while_the_broker_is_down_runs_once_it_is_back(
    admin_user, rep, stages, broker_down, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_RUNNER = "celery"
    job = start(admin_user, csv_of(*ROWS))
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm_import(job, by=admin_user)
    job.refresh_from_db()
    assert job.status == ImportStatus.QUEUED
    assert OutboxMessage.objects.get(task="imports.run_import").dispatched_at is None

    app.conf.task_always_eager = True  # the broker is back (here: in-process)
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.drain() == 1  # what beat's periodic drain does
    job.refresh_from_db()
    assert (job.status, job.created_count) == (ImportStatus.DONE, len(ROWS))


@pytest.mark.usefixtures("eager")
def test_a_runner_out_of_time_checkpoints_and_its_continuation_finishes(
    admin_user, rep, stages, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(runner, "BATCH_SIZE", 3)
    job = start(admin_user, csv_of(*ROWS))
    services.confirm_import(job, by=admin_user, run_in_background=False)

    with django_capture_on_commit_callbacks(execute=False) as continuation:
        paused = runner.run_import(job.pk, budget=0)  # spent after its first batch

    assert (paused.status, paused.processed_rows) == (ImportStatus.RUNNING, 3)
    assert Deal.objects.count() == 3
    assert OutboxMessage.objects.get(task="imports.run_import").payload == {"job_id": job.pk}

    monkeypatch.setattr(runner, "BATCH_SIZE", 1000)
    with django_capture_on_commit_callbacks(execute=True):
        for callback in continuation:
            callback()
    job.refresh_from_db()
    assert (job.status, job.processed_rows, job.created_count) == (
        ImportStatus.DONE,
        len(ROWS),
        len(ROWS),
    )
    assert Deal.objects.count() == len(ROWS)
