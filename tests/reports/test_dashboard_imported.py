"""Imported history reaches every summary-backed panel as soon as the import commits, and
leaves it with the import's undo: the real import writer and undo, no refresh between."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from deals.models import Deal, RewrittenHistory
from imports.undo import undo_import
from reports.dashboard import stays
from reports.dashboard.filters import Period
from reports.dashboard.panels import PANELS, Dashboard
from tests.imports.imports_support import csv_of, import_root, run  # noqa: F401
from tests.reports.dashboard_data import scope_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_root")]

NOW = datetime(2017, 6, 1, 12, tzinfo=UTC)
SPRING = Period(date(2016, 10, 1), date(2017, 5, 31), "Custom")
ROWS = [
    "A1,rep,GTX Basic,Acme,Won,2016-10-20,2017-03-01,1054",
    "A2,rep,GTX Basic,Acme,Lost,2016-11-02,2017-01-15,",
    "A3,rep,MG Special,Acme,Engaging,2016-11-03,,",
]


@pytest.fixture
def imported(admin_user, rep, stages):
    # The summaries were built after every imported date: the mark is past all of them.
    stays.refresh(now=NOW)
    return run(admin_user, csv_of(*ROWS))


def panels(user, pipeline, *, summaries: bool) -> dict[str, list[list[str]]]:
    scope = scope_for(user, pipeline, period=SPRING, now=NOW)
    board = Dashboard(scope, summaries=summaries)
    return {slug: board.panel(slug).csv_rows for slug in PANELS}


def test_imported_history_shows_in_the_funnel_and_time_in_stage_without_a_refresh(
    imported, admin_user, stages
):
    """A1 Qualified Oct 20 → Won Mar 1; A2 Qualified Nov 2 → Lost Jan 15; A3 Qualified
    Nov 3 (open). Qualified: 3 entered, A1 went on; two completed stays (132, 74 days)."""
    board = Dashboard(scope_for(admin_user, stages["lead"].pipeline, period=SPRING, now=NOW))
    funnel = {row[0]: row[1:] for row in board.panel("funnel").csv_rows}
    assert funnel["Qualified"] == ["3", "1", "33.33"]
    times = {row[0]: row[1:3] for row in board.panel("time").csv_rows}
    assert times["Qualified"] == ["2", "103.0"]
    assert not RewrittenHistory.objects.exists()


def test_imported_history_read_through_the_summaries_equals_the_raw_history(
    imported, admin_user, stages
):
    pipeline = stages["lead"].pipeline
    assert panels(admin_user, pipeline, summaries=True) == panels(
        admin_user, pipeline, summaries=False
    )


def test_undone_import_leaves_every_panel_as_the_raw_history_says(imported, admin_user, stages):
    pipeline = stages["lead"].pipeline
    panels(admin_user, pipeline, summaries=True)  # the summaries hold the import now
    stays.refresh(now=NOW)
    undo_import(imported, by=admin_user)
    after = panels(admin_user, pipeline, summaries=True)
    assert after == panels(admin_user, pipeline, summaries=False)
    funnel = {row[0]: row[1:] for row in after["funnel"]}
    assert funnel["Qualified"] == ["0", "0", ""]


def test_an_import_moving_an_existing_deal_marks_it_for_the_summaries(imported, admin_user):
    """The move is dated when the batch ran; its transaction may commit after a refresh
    has moved the mark past that time, so the deal is marked like imported history."""
    stays.catch_up()
    assert not RewrittenHistory.objects.exists()
    run(admin_user, csv_of("A3,rep,MG Special,Acme,Won,2016-11-03,2017-02-01,500"))
    moved = Deal.objects.get(external_id="A3")
    assert moved.stage.kind == "won"
    assert list(RewrittenHistory.objects.values_list("deal_id", flat=True)) == [moved.pk]
