"""Old runs are pruned by a nightly job: finished runs past the retention go, each rule's
latest failed runs and every pending run stay, and a second prune deletes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from automations import services
from automations.models import RuleRun, RunStatus

pytestmark = pytest.mark.django_db

TASK = [{"kind": "create_activity", "type": "task", "subject": "x", "due_days": 0}]


def _runs(rule, status, *, days_ago, count=1):
    at = timezone.now() - timedelta(days=days_ago)
    return RuleRun.objects.bulk_create(
        RuleRun(rule=rule, deal_id=n + 1, status=status, created_at=at - timedelta(minutes=n))
        for n in range(count)
    )


def test_old_finished_runs_go_and_the_rest_stays(make_rule, settings):
    settings.AUTOMATION_RUN_RETENTION_DAYS = 90
    settings.AUTOMATION_FAILED_RUNS_KEPT = 2
    rule = make_rule({"kind": "deal_won"}, TASK)
    other = make_rule({"kind": "deal_lost"}, TASK, name="Other")
    old_done = _runs(rule, RunStatus.DONE, days_ago=91, count=3)
    old_skipped = _runs(other, RunStatus.SKIPPED, days_ago=200)
    recent = _runs(rule, RunStatus.DONE, days_ago=89)
    pending = _runs(rule, RunStatus.PENDING, days_ago=300)
    failed = _runs(rule, RunStatus.FAILED, days_ago=100, count=3)  # the first is the newest
    other_failed = _runs(other, RunStatus.FAILED, days_ago=365)

    assert services.prune_runs(batch=2) == len(old_done) + len(old_skipped) + 1
    kept = set(RuleRun.objects.values_list("pk", flat=True))
    assert kept == {r.pk for r in recent + pending + failed[:2] + other_failed}
    assert services.prune_runs() == 0  # idempotent


def test_the_retention_never_drops_below_the_scans_window(make_rule, settings):
    settings.AUTOMATION_RUN_RETENTION_DAYS = 1
    rule = make_rule({"kind": "close_date", "days": -7}, TASK)
    inside = _runs(rule, RunStatus.DONE, days_ago=services.CATCH_UP_DAYS)
    _runs(rule, RunStatus.DONE, days_ago=services.CATCH_UP_DAYS + 2)
    assert services.prune_runs() == 1
    assert list(RuleRun.objects.values_list("pk", flat=True)) == [inside[0].pk]


def test_pruning_is_scheduled_nightly_in_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["automations-prune-runs"]
    assert entry["task"] == "automations.prune_runs"
    from automations import tasks

    assert tasks.prune_runs.name == entry["task"]
