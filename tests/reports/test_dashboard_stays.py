"""The completed-stays summary: what `stays.refresh` stores, and that the dashboard uses it.

History as in tests/reports/dashboard_data.py (March 2025, every move at 12:00).
"""

from __future__ import annotations

from datetime import date

import pytest

from deals.models import RewrittenHistory, StageChange
from deals.services import delete_deal
from reports.dashboard import stays
from reports.dashboard.filters import Period
from reports.dashboard.history import bucket_of
from reports.dashboard.panels import PANELS, Dashboard
from reports.models import (
    StageDay,
    StageEntry,
    StageEntryDay,
    StageLength,
    StageStay,
    StageStayMark,
)
from reports.tasks import refresh_stage_stays
from stages.models import Stage
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


def test_refresh_stores_each_stay_with_its_length_in_days(history):
    """C: Qualified Feb 25 → Demo Mar 5 (8 days) → Qualified Mar 10 (5 days)."""
    stays.refresh(now=NOW)
    lengths = StageStay.objects.filter(deal=history.deals["C"]).order_by("exited_at")
    assert list(lengths.values_list("days", flat=True)) == [8.0, 5.0]


def test_refresh_stores_nothing_that_ended_within_the_settle_time(history):
    """The mark stays SETTLE behind the clock (clock skew between servers, see stays)."""
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


def test_time_in_stage_reads_the_stays_before_the_mark_from_the_summary(
    history, manager, pipeline
):
    """Proof that the summary is read, not only kept: a stored stay made one day longer
    shows up in the figure. Proposal's only completed stay is A's, 12 days, and the
    figure is the stored length."""
    stays.refresh(now=NOW)
    StageStay.objects.filter(stage__name="Proposal").update(entered_at=march(7), days=13.0)
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


# --- the entries summary behind the funnel --------------------------------------------------


def entries(deal):
    return list(
        StageEntry.objects.filter(deal=deal)
        .order_by("seq")
        .values_list("stage__name", "entered_at", "previous_at", "went_on")
    )


def funnel_rows(manager, pipeline):
    return {row[0]: row[1:] for row in Dashboard(scope_for(manager, pipeline)).funnel().rows}


def test_refresh_stores_each_entry_with_the_previous_one_and_whether_it_went_on(history):
    """A went straight through to Won: every entry went on but the last. C went Qualified
    (Feb 25) → Demo → back to Qualified (10th): its first Qualified entry went on (Demo is
    later), Demo did not, and the re-entry knows the Feb 25 one. E's Lead in went to Lost,
    which is not going on."""
    stays.refresh(now=NOW)
    assert entries(history.deals["A"]) == [
        ("Lead in", march(1), None, True),
        ("Qualified", march(3), None, True),
        ("Demo", march(7), None, True),
        ("Proposal", march(8), None, True),
        ("Won", march(20), None, False),
    ]
    assert entries(history.deals["C"]) == [
        ("Qualified", at(2, 25), None, True),
        ("Demo", march(5), None, False),
        ("Qualified", march(10), at(2, 25), False),
    ]
    assert entries(history.deals["E"]) == [
        ("Lead in", march(4), None, False),
        ("Lost", march(14), None, False),
    ]
    assert StageEntry.objects.count() == 20  # every change: 5 + 2 + 3 + 1 + 2 + 1 + 2 + 1 + 3


def test_a_later_refresh_adds_the_new_entries_and_marks_older_ones_as_gone_on(history):
    """Up to Mar 12 A's Proposal entry (8th) had not gone on; A's move to Won on the 20th
    takes it on, and X's Demo entry (9th) goes on with X's win on the 15th."""
    stays.refresh(now=march(12))
    assert entries(history.deals["A"])[3] == ("Proposal", march(8), None, False)
    assert entries(history.deals["X"])[1][3] is False
    stays.refresh(now=NOW)
    # The entries that went on count as such on their days.
    assert stored_entry_day_counts() == entry_day_counts()
    assert entries(history.deals["A"])[3] == ("Proposal", march(8), None, True)
    assert entries(history.deals["A"])[4] == ("Won", march(20), None, False)
    assert entries(history.deals["X"])[1][3] is True
    assert StageEntry.objects.count() == 20


def test_a_later_refresh_finds_the_previous_entry_before_the_mark(history, rep, stages):
    """A deal back in Lead in on the 20th, after the mark: its Lead in entry of the 2nd is
    only in the history, found there."""
    back = make_deal(
        rep,
        [(stages["lead"], march(2)), (stages["demo"], march(4)), (stages["lead"], march(20))],
        title="back",
    )
    stays.refresh(now=march(12))
    assert len(entries(back)) == 2
    stays.refresh(now=NOW)
    assert entries(back) == [
        ("Lead in", march(2), None, True),
        ("Demo", march(4), None, False),
        ("Lead in", march(20), march(2), False),
    ]


def test_the_funnel_reads_entries_before_the_mark_from_the_summary(history, manager, pipeline):
    """Proof that the summary is read: D's Lead in entry (10th, still there) marked as gone
    on turns Lead in from 2 of 5 into 3 of 5."""
    stays.refresh(now=NOW)
    StageEntry.objects.filter(deal=history.deals["D"]).update(went_on=True)
    assert funnel_rows(manager, pipeline)["Lead in"] == [5, 3, 60.0]


@pytest.mark.parametrize("first", [date(2025, 2, 1), date(2025, 3, 1)])
def test_the_admins_funnel_and_movement_read_the_entry_day_counts(
    history, admin_user, pipeline, first
):
    """Every deal, a period running past the mark: the entries before it come from
    `StageEntryDay`. Qualified: A, and C (Feb 25 → Demo → back on Mar 10). From Feb 1,
    C's Mar 10 re-entry is not its first, so both went on; from Mar 1 it is, and it did
    not. Summary up to Mar 12, so A's win (20th) takes its Proposal entry on from the
    history."""
    stays.refresh(now=march(12))
    scope = scope_for(
        admin_user, pipeline, period=Period(first, date(2025, 4, 30), "Custom"), now=NOW
    )
    assert Dashboard(scope).days_counted
    for slug in ("funnel", "movement"):
        summary = Dashboard(scope).panel(slug).csv_rows
        assert summary == Dashboard(scope, summaries=False).panel(slug).csv_rows, slug
    qualified = {row[0]: row[1] for row in Dashboard(scope).funnel().rows}["Qualified"]
    qualified = {row[0]: row[1:] for row in Dashboard(scope).funnel().rows}["Qualified"]
    assert qualified == ([2, 2, 100.0] if first.month == 2 else [2, 1, 50.0])


def test_the_funnel_derives_entries_and_conversions_after_the_mark(history, manager, pipeline):
    """Summary up to Mar 12: F's Lead in (25th) and H's Proposal (28th) come from the
    history, and so does A's win (20th) that takes its Proposal entry on."""
    stays.refresh(now=march(12))
    assert not StageEntry.objects.filter(deal=history.deals["H"]).exists()
    rows = funnel_rows(manager, pipeline)
    assert rows["Lead in"] == [5, 2, 40.0]
    assert rows["Proposal"] == [2, 1, 50.0]


def test_the_funnel_ignores_the_summary_once_the_stages_change(history, manager, pipeline, stages):
    """Moving Qualified after Proposal changes what going on means: C's Demo entry (5th,
    back to Qualified on the 10th) now went on → Demo 2 of 3 (A, C; B waits). A stored
    entry made wrong on purpose (D's) shows the summary is not read until the next refresh
    works it out again with the new order."""
    stays.refresh(now=NOW)
    StageEntry.objects.filter(deal=history.deals["D"]).update(went_on=True)
    Stage.objects.filter(pk=stages["qualified"].pk).update(
        position=stages["proposal"].position + 1
    )
    rows = funnel_rows(manager, pipeline)
    assert rows["Demo"] == [3, 2, pytest.approx(200 / 3)]
    assert rows["Lead in"] == [5, 2, 40.0]
    stays.refresh(now=NOW)
    assert entries(history.deals["C"])[1] == ("Demo", march(5), None, True)
    assert entries(history.deals["D"]) == [("Lead in", march(10), None, False)]
    assert funnel_rows(manager, pipeline) == rows


def day_counts():
    """`StageDay` as it should be: each stored stay's entry and exit day (UTC here)."""
    counts = {}
    for stay in StageStay.objects.exclude(entered_at=None):
        if stay.entered_at <= stay.exited_at:
            for day, column in ((stay.entered_at.date(), 0), (stay.exited_at.date(), 1)):
                pair = counts.setdefault((stay.stage_id, day), [0, 0])
                pair[column] += 1
    return counts


def stored_day_counts():
    return {
        (row.stage_id, row.day): [row.entered, row.exited]
        for row in StageDay.objects.all()
        if row.entered or row.exited
    }


def length_counts():
    """`StageLength` as it should be: each counted stay's exit day and length bucket."""
    counts = {}
    for stay in StageStay.objects.exclude(entered_at=None):
        if stay.entered_at <= stay.exited_at:
            key = (stay.stage_id, stay.exited_at.date(), bucket_of(stay.days))
            counts[key] = counts.get(key, 0) + 1
    return counts


def stored_length_counts():
    return {
        (row.stage_id, row.day, row.bucket): row.stays
        for row in StageLength.objects.all()
        if row.stays
    }


def entry_day_counts():
    """`StageEntryDay` as it should be: each stored entry on its day, and a re-entry also
    on its previous entry's day (UTC here)."""
    counts = {}
    for entry in StageEntry.objects.all():
        key = (entry.pipeline_id, entry.stage_id, entry.from_stage_id or 0)
        went = int(entry.went_on)
        row = counts.setdefault((*key, entry.entered_at.date()), [0, 0, 0, 0])
        row[0] += 1
        row[1] += went
        if entry.previous_at is not None:
            row = counts.setdefault((*key, entry.previous_at.date()), [0, 0, 0, 0])
            row[2] += 1
            row[3] += went
    return counts


def stored_entry_day_counts():
    counts = {}
    for row in StageEntryDay.objects.all():
        figures = [row.entered, row.went_on, row.reentered, row.reentered_went_on]
        if any(figures):
            counts[(row.pipeline_id, row.stage_id, row.from_stage, row.day)] = figures
    return counts


def test_a_deleted_deal_loses_its_stored_rows_and_day_counts_when_the_summaries_catch_up(
    history,
):
    """An import's undo deletes deals and marks them; the catch-up (before any panel
    reads) takes their stays out of `StageDay` and removes their rows, and no others."""
    stays.refresh(now=NOW)
    gone, kept = history.deals["A"], history.deals["C"]
    others = (
        StageStay.objects.exclude(deal=gone).count(),
        StageEntry.objects.exclude(deal=gone).count(),
    )
    assert stored(gone) and entries(gone)
    assert stored_day_counts() == day_counts()
    assert stored_length_counts() == length_counts()
    assert stored_entry_day_counts() == entry_day_counts()

    RewrittenHistory.mark([gone.pk])
    StageChange.objects.filter(deal=gone).delete()
    gone.delete()
    stays.catch_up()

    assert not StageStay.objects.filter(deal_id=gone.pk).exists()
    assert not StageEntry.objects.filter(deal_id=gone.pk).exists()
    assert (StageStay.objects.count(), StageEntry.objects.count()) == others
    assert stored(kept) and entries(kept)
    assert stored_day_counts() == day_counts()
    assert stored_length_counts() == length_counts()
    assert stored_entry_day_counts() == entry_day_counts()


def test_day_counts_follow_every_refresh_and_catch_up(history, rep, stages):
    stays.refresh(now=march(12))
    assert stored_day_counts() == day_counts()
    assert stored_length_counts() == length_counts()
    assert stored_entry_day_counts() == entry_day_counts()
    stays.refresh(now=NOW)
    assert stored_day_counts() == day_counts()
    assert stored_length_counts() == length_counts()
    assert stored_entry_day_counts() == entry_day_counts()
    late = make_deal(rep, [(stages["lead"], march(2)), (stages["demo"], march(4))], title="late")
    RewrittenHistory.mark([late.pk])
    stays.catch_up()
    assert stored(late) == [("Lead in", march(2), march(4))]
    assert stored_day_counts() == day_counts()
    assert stored_length_counts() == length_counts()
    assert stored_entry_day_counts() == entry_day_counts()
    # Counted in another zone, they are counted again by the next refresh.
    StageDay.objects.all().delete()
    StageLength.objects.all().delete()
    StageEntryDay.objects.all().delete()
    StageStayMark.objects.update(days_zone="Asia/Tokyo")
    stays.refresh(now=NOW)
    assert stored_day_counts() == day_counts()
    assert stored_length_counts() == length_counts()
    assert stored_entry_day_counts() == entry_day_counts()


def test_a_deal_deleted_through_the_service_leaves_no_stored_rows_behind(
    history, admin_user, pipeline
):
    """`delete_deal` marks the deal, so the admin's panels (which count every stored row)
    drop its stays and their day counts before reading."""
    stays.refresh(now=NOW)
    gone = history.deals["A"]
    delete_deal(gone, by=admin_user, expected_version=gone.version)
    scope = scope_for(admin_user, pipeline)
    for slug in PANELS:
        assert (
            Dashboard(scope).panel(slug).csv_rows
            == Dashboard(scope, summaries=False).panel(slug).csv_rows
        ), slug
    assert not StageStay.objects.filter(deal_id=gone.pk).exists()
    assert stored_day_counts() == day_counts()
    assert stored_length_counts() == length_counts()
    assert stored_entry_day_counts() == entry_day_counts()


# stages (with the mark), stays not counted, counts per bucket, the stored values at the
# wanted ranks (or whole buckets that also hold stays after the mark), the waiting deals
ADMIN_TIME_QUERIES = 5


def add_past_history_as_an_import_does(rep, stages):
    """Three deals with March history, marked as an import marks them, then caught up."""
    more = [
        make_deal(
            rep, [(stages["lead"], march(1 + i)), (stages["demo"], march(5 + i))], title=f"n{i}"
        )
        for i in range(3)
    ]
    RewrittenHistory.mark([deal.pk for deal in more])
    stays.catch_up()


def test_the_admins_time_in_stage_reads_the_length_counts_in_a_fixed_number_of_queries(
    history, admin_user, pipeline, rep, stages, django_assert_num_queries
):
    """The admin's time in stage reads `StageLength` and the wanted buckets only, in
    statements that do not grow with the stays; proof that the counts are read: without
    them the stays they count are not found."""
    stays.refresh(now=NOW)
    scope = scope_for(admin_user, pipeline)
    with django_assert_num_queries(ADMIN_TIME_QUERIES):
        Dashboard(scope).time()
    add_past_history_as_an_import_does(rep, stages)
    with django_assert_num_queries(ADMIN_TIME_QUERIES):
        Dashboard(scope).time()
    raw = Dashboard(scope, summaries=False).time().csv_rows
    assert Dashboard(scope).time().csv_rows == raw
    StageLength.objects.all().delete()
    assert Dashboard(scope).time().csv_rows != raw


def test_the_admins_funnel_and_movement_read_the_entry_day_counts_in_one_query_each(
    history, admin_user, pipeline, rep, stages, django_assert_num_queries
):
    """Stages (with the mark) and one statement each, whatever the entries; proof that
    the counts are read: without them the entries they count are not found."""
    stays.refresh(now=NOW)
    scope = scope_for(
        admin_user, pipeline, period=Period(date(2025, 2, 1), date(2025, 4, 30), "Custom")
    )
    with django_assert_num_queries(2):
        Dashboard(scope).movement()
    add_past_history_as_an_import_does(rep, stages)
    raw = {}
    for slug in ("funnel", "movement"):
        with django_assert_num_queries(2):
            Dashboard(scope).panel(slug)
        raw[slug] = Dashboard(scope, summaries=False).panel(slug).csv_rows
        assert Dashboard(scope).panel(slug).csv_rows == raw[slug]
    StageEntryDay.objects.all().delete()
    for slug in ("funnel", "movement"):
        assert Dashboard(scope).panel(slug).csv_rows != raw[slug]


def test_demo_data_seeded_after_a_first_refresh_reaches_the_stored_stays(db, settings):
    """`seed_demo` writes years of history dated before the mark of a refresh that already
    ran (compose's beat on the empty database, then the seed): it marks its deals, so
    the next refresh stores every stay that ended before its mark."""
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    stays.refresh()
    settings.DEBUG = True
    call_command("seed_demo", "--deals", "15", stdout=StringIO())
    mark = stays.refresh(now=timezone.now() + timedelta(minutes=10)).covered_until

    ended = StageChange.objects.filter(seq__gt=1, at__lt=mark).count()
    assert ended > 0
    assert StageStay.objects.count() == ended
