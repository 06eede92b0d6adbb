"""Issue 14: an outbox message is done when its task has finished, not when the broker took
it; what was dispatched but never finished is dispatched again; tasks retry on
infrastructure errors (imports: tests/imports/test_import_faults.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from common import outbox
from common.models import OutboxMessage
from common.retrying import INFRASTRUCTURE_ERRORS, RetryingTask
from pipeline_crm.celery import app

pytestmark = pytest.mark.django_db


def message(**fields) -> OutboxMessage:
    return OutboxMessage.objects.create(
        task="deals.refresh_stalled", payload={"deal_id": 1}, **fields
    )


def test_a_message_handed_to_the_broker_is_not_done_yet(db, monkeypatch):
    monkeypatch.setattr(outbox, "hand_over", lambda task, kwargs: None)  # the broker took it
    sent = message()
    before = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        assert outbox.dispatch([sent.pk]) == 1
    finally:
        app.conf.task_always_eager = before
    sent.refresh_from_db()
    assert sent.dispatched_at is not None and sent.finished_at is None


def test_a_task_that_finished_marks_its_message_done(db, eager):
    sent = message(created_at=timezone.now() - timedelta(minutes=1))
    assert outbox.drain() == 1
    sent.refresh_from_db()
    assert sent.finished_at is not None


def test_the_worker_side_marks_the_message_when_the_task_succeeds(db):
    sent = message()
    outbox._task_finished(kwargs={"outbox_id": sent.pk}, state="SUCCESS")
    sent.refresh_from_db()
    assert sent.finished_at is not None


def test_a_failed_task_leaves_its_message_unfinished(db):
    sent = message()
    outbox._task_finished(kwargs={"outbox_id": sent.pk}, state="FAILURE")
    sent.refresh_from_db()
    assert sent.finished_at is None


def test_a_message_dispatched_but_never_finished_is_dispatched_again(db, eager):
    # Handed to a broker that then restarted without persistence: the message is gone.
    lost = message(dispatched_at=timezone.now() - outbox.REDELIVER_AFTER - timedelta(seconds=1))
    assert outbox.drain() == 1
    lost.refresh_from_db()
    assert lost.finished_at is not None


def test_a_message_still_within_its_bound_is_left_alone(db, eager):
    running = message(dispatched_at=timezone.now() - timedelta(seconds=30))
    assert outbox.drain() == 0
    running.refresh_from_db()
    assert running.finished_at is None


def test_finished_messages_are_not_dispatched_again(db, eager):
    old = timezone.now() - timedelta(hours=1)
    message(dispatched_at=old, finished_at=old)
    assert outbox.drain() == 0


def test_every_task_retries_on_database_and_broker_errors():
    from kombu.exceptions import OperationalError as BrokerError

    app.loader.import_default_modules()
    project = [t for name, t in app.tasks.items() if not name.startswith("celery.")]
    assert project
    for task in project:
        assert isinstance(task, RetryingTask), task.name
        assert task.acks_late and task.reject_on_worker_lost, task.name
    assert OperationalError in INFRASTRUCTURE_ERRORS and BrokerError in INFRASTRUCTURE_ERRORS


def test_a_task_hitting_a_dropped_connection_is_retried(db, eager, monkeypatch):
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr("deals.tasks.stalled.refresh_flags", flaky)
    result = app.tasks["deals.refresh_stalled"].apply(kwargs={"deal_id": 1}, throw=False)
    assert len(calls) == 2  # the retry ran (in-process: at once) and succeeded
    assert result.state == "SUCCESS"


def test_no_task_outlives_the_visibility_timeout(settings):
    limit = settings.CELERY_TASK_TIME_LIMIT
    assert limit < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert settings.IMPORT_SLICE_SECONDS < settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert outbox.REDELIVER_AFTER.total_seconds() > limit
