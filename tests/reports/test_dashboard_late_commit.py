"""A move whose transaction is still open while the summary refresh runs is not skipped.

The move dates its history row when it writes it; its transaction may commit any time
later. A refresh that ran meanwhile could not see the row, and used to move the mark
past its date anyway (to "now - 5 minutes", trusting commits to be quicker than that):
the stay it ended and the entry it made were then neither in the summaries nor after
the mark, so every history panel missed them for good. Here the refresh runs ten
minutes "later" (its `now`) while a real move sits uncommitted in another connection.

PostgreSQL: the refresh does not wait for the move; it keeps its mark before the open
transaction began (`stays._settled`). SQLite: one writer at a time, so the refresh waits
until the move has committed and then sees it.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from deals.models import Deal, StageChange
from deals.services import create_deal, move_deal
from reports.dashboard import stays
from reports.dashboard.filters import Period
from reports.dashboard.panels import PANELS, Dashboard
from reports.models import StageEntry, StageStay
from tests.reports.dashboard_data import scope_for

pytestmark = pytest.mark.django_db(transaction=True)


class SlowMove(threading.Thread):
    """A move in its own connection whose transaction stays open until `release`."""

    def __init__(self, deal: Deal, stage: Any, by: Any) -> None:
        super().__init__()
        self.deal, self.stage, self.by = deal, stage, by
        self.written = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with transaction.atomic():
                move_deal(
                    Deal.objects.get(pk=self.deal.pk),
                    self.stage,
                    by=self.by,
                    expected_version=self.deal.version,
                )
                self.written.set()
                assert self.release.wait(timeout=30), "never released"
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            self.written.set()
            connections.close_all()


class Refresh(threading.Thread):
    def __init__(self, now: Any) -> None:
        super().__init__()
        self.now = now
        self.result: stays.StaysRefreshed | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = stays.refresh(now=self.now)
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            connections.close_all()


def test_a_move_committing_after_a_refresh_still_reaches_every_panel(
    rep, admin_user, stages, pipeline
):
    deal = create_deal(by=rep, title="Slow to commit", stage=stages["lead"])
    stays.refresh()
    mover = SlowMove(deal, stages["qualified"], rep)
    mover.start()
    assert mover.written.wait(timeout=30) and mover.error is None, mover.error
    later = timezone.now() + timedelta(minutes=10)
    refresh = Refresh(later)
    refresh.start()
    if connection.vendor == "postgresql":
        # The refresh neither waits for the move nor sees it.
        refresh.join(timeout=30)
        assert not refresh.is_alive() and refresh.error is None, refresh.error
    else:
        # SQLite: the move holds the only write lock; the refresh waits for it.
        refresh.join(timeout=1)
        assert refresh.is_alive()
    mover.release.set()
    mover.join(timeout=30)
    refresh.join(timeout=30)
    assert mover.error is None and refresh.error is None, (mover.error, refresh.error)

    today = timezone.localdate(later)
    scope = scope_for(
        admin_user,
        pipeline,
        period=Period(today - timedelta(days=1), today, "Custom"),
        now=later,
    )
    lead = {row[0]: row[1] for row in Dashboard(scope).panel("time").rows}["Lead in"]
    assert lead == 1  # the stay the move ended
    for slug in PANELS:
        assert (
            Dashboard(scope).panel(slug).csv_rows
            == Dashboard(scope, summaries=False).panel(slug).csv_rows
        ), slug

    change = StageChange.objects.get(deal=deal, seq=2)
    stored = StageStay.objects.filter(change=change).exists()
    # Either the summaries hold the move's rows or the mark is still before it.
    assert stored or refresh.result.covered_until <= change.at
    if connection.vendor == "postgresql":
        assert not stored and refresh.result.covered_until <= change.at - stays.SETTLE
    else:
        assert stored and StageEntry.objects.filter(change=change).exists()

    # The next refresh, with nothing open, stores the move's rows and moves on.
    again = stays.refresh(now=later)
    assert again.covered_until == later - stays.SETTLE
    assert StageStay.objects.filter(change=change).exists()
    assert StageEntry.objects.filter(change=change).exists()
    for slug in PANELS:
        assert (
            Dashboard(scope).panel(slug).csv_rows
            == Dashboard(scope, summaries=False).panel(slug).csv_rows
        ), slug
