"""The completed-stays summary: what `stays.refresh` stores, and that the dashboard uses it.

History as in tests/reports/dashboard_data.py (March 2025, every move at 12:00).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from reports.dashboard import stays
from reports.dashboard.panels import Dashboard
from reports.models import StageStay, StageStayMark
from reports.tasks import refresh_stage_stays
from tests.reports.dashboard_data import NOW, at, build_history, make_deal, march, scope_for


@pytest.fixture
def history(stages, rep, teammate, outsider):
    return build_history(stages, rep=rep, teammate=teammate, outsider=outsider)


def stored(deal):
    return list(
        StageStay.objects.filter(deal=deal)
        .order_by("exited_at")
        .values_list("stage__name", "entered_at", "exited_at")
    )


def test_refresh_stores_each_completed_stay_with_its_entry_and_exit(history):
    """A: Lead 1st → Qualified 3rd → Demo 7th → Proposal 8th → Won 20th. Its stay in Won
    has not ended, so it is not stored."""
    stays.refresh(now=NOW)
    assert stored(history.deals["A"]) == [
        ("Lead in", march(1), march(3)),
        ("Qualified", march(3), march(7)),
        ("Demo", march(7), march(8)),
        ("Proposal", march(8), march(20)),
    ]
    assert stored(history.deals["D"]) == []


def test_refresh_stores_nothing_that_ended_within_the_settle_time(history):
    """The mark stays SETTLE behind the clock, so a move still committing is not skipped."""
    result = stays.refresh(now=march(8) + stays.SETTLE / 2)
    assert result.covered_until == march(8) - stays.SETTLE / 2
    assert [stay[0] for stay in stored(history.deals["A"])] == ["Lead in", "Qualified"]


def test_refresh_twice_adds_nothing_the_second_time(history):
    first = stays.refresh(now=NOW)
    rows = list(StageStay.objects.order_by("pk").values())
    second = stays.refresh(now=NOW)
    assert first.added == 11  # every change out of a stage: A 4, B 1, C 2, E 1, G 1, X 2
    assert second.added == 0
    assert list(StageStay.objects.order_by("pk").values()) == rows
    assert StageStayMark.objects.get().covered_until == NOW - stays.SETTLE


def test_a_later_refresh_adds_only_the_stays_that_ended_since(history):
    """Ended before Mar 12 (11:55): A's first three, B, C's two, G, X's first = 8. Since:
    A into Won (20th), E into Lost (14th), X into Won (15th) = 3."""
    assert stays.refresh(now=march(12)).added == 8
    assert stays.refresh(now=NOW).added == 3
    assert StageStay.objects.count() == 11


def test_refresh_picks_up_a_change_that_committed_late_within_the_settle_time(
    history, rep, stages
):
    """A move written just before the mark but committed after the refresh ran."""
    stays.refresh(now=march(21))
    mark = StageStayMark.objects.get().covered_until
    late = make_deal(
        rep,
        [(stages["lead"], march(18)), (stages["demo"], mark - timedelta(minutes=1))],
        title="late",
    )
    assert stays.refresh(now=march(22)).added == 1
    assert stored(late) == [("Lead in", march(18), mark - timedelta(minutes=1))]


def test_time_in_stage_reads_the_stays_before_the_mark_from_the_summary(
    history, manager, pipeline
):
    """Proof that the summary is read, not only kept: a stored stay made one day longer
    shows up in the figure. Proposal's only completed stay is A's, 12 days."""
    stays.refresh(now=NOW)
    StageStay.objects.filter(stage__name="Proposal").update(entered_at=march(7))
    rows = {row[0]: row[1:] for row in Dashboard(scope_for(manager, pipeline)).time().rows}
    assert rows["Proposal"][:2] == [1, 13.0]


def test_stays_after_the_mark_are_derived_from_the_history(history, manager, pipeline):
    """With the summary up to Mar 12 only, A's Proposal stay (left on the 20th) still counts."""
    stays.refresh(now=march(12))
    assert not StageStay.objects.filter(stage__name="Proposal").exists()
    rows = {row[0]: row[1:] for row in Dashboard(scope_for(manager, pipeline)).time().rows}
    assert rows["Proposal"][:3] == [1, 12.0, 12.0]


def test_a_summary_older_than_the_period_is_not_read(history, manager, pipeline):
    """Stored up to Feb 5: G left Lead in on Feb 11, after the mark but before March, and
    must not count as a March stay (Lead in keeps A's, B's and E's)."""
    stays.refresh(now=at(2, 5))
    rows = {row[0]: row[1:] for row in Dashboard(scope_for(manager, pipeline)).time().rows}
    assert rows["Lead in"][:3] == [3, 4.0, 7.0]


def test_the_task_refreshes_the_summary(history):
    assert refresh_stage_stays() == 11
    assert refresh_stage_stays() == 0


def test_beat_runs_the_refresh_every_minute(db):
    from django.conf import settings

    from pipeline_crm.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["refresh-stage-stays"]
    assert entry == {"task": "reports.refresh_stage_stays", "schedule": 60.0}
    app.loader.import_default_modules()
    assert "reports.refresh_stage_stays" in app.tasks


def test_run_jobs_refreshes_the_summary_for_setups_without_a_worker(history):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("run_jobs", stdout=out)
    assert "dashboard stays: 11 completed stay(s) stored" in out.getvalue()
    assert StageStay.objects.count() == 11
