"""Stalled notices are grouped: one notice per recipient per run above a small threshold.

Before: after a large import the stalled check wrote one notice per deal, 1,000,002 to
one manager. Now a recipient with more than STALLED_NOTICES_GROUPED_ABOVE new flags in a
run gets one notice ("312 deals newly stalled") that opens their stalled deals on the
board; below the threshold each deal still gets its own notice. Both database paths
(PostgreSQL's single statement, SQLite's steps) are covered by running on each.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deals import stalled
from deals.models import Notification, StalledFlag
from deals.notifications import STALLED, STALLED_GROUP
from tests.factories import DealFactory

pytestmark = pytest.mark.django_db

CROWD = 25
# A deal created today is never stalled: the crowd has been around since yesterday.
YESTERDAY = timezone.now() - timedelta(days=1)


def test_a_crowd_of_new_flags_is_one_notice_and_a_few_stay_one_each(
    rep, teammate, stages, settings
):
    settings.STALLED_NOTICES_GROUPED_ABOVE = 10
    DealFactory.create_batch(
        CROWD, owner=rep, stage=stages["lead"], next_step="", created_at=YESTERDAY
    )
    DealFactory.create_batch(
        3, owner=teammate, stage=stages["lead"], next_step="", created_at=YESTERDAY
    )

    stalled.refresh_flags()

    flagged = StalledFlag.objects.filter(deal__owner=rep).values("deal").distinct().count()
    assert flagged == CROWD
    grouped = Notification.objects.get(user=rep)
    assert grouped.kind == STALLED_GROUP and grouped.deal_id is None
    assert grouped.text.startswith(f"{StalledFlag.objects.filter(deal__owner=rep).count()} ")
    assert grouped.text.endswith("deals newly stalled")
    mine = Notification.objects.filter(user=teammate)
    assert mine.count() == StalledFlag.objects.filter(deal__owner=teammate).count() >= 3
    assert set(mine.values_list("kind", flat=True)) == {STALLED}


def test_a_second_run_adds_no_notice(rep, stages, settings):
    settings.STALLED_NOTICES_GROUPED_ABOVE = 10
    DealFactory.create_batch(
        CROWD, owner=rep, stage=stages["lead"], next_step="", created_at=YESTERDAY
    )
    stalled.refresh_flags()

    assert stalled.refresh_flags().notified == 0
    assert Notification.objects.filter(user=rep).count() == 1


def test_the_grouped_notice_opens_the_recipients_stalled_deals(client_for, rep, stages, settings):
    settings.STALLED_NOTICES_GROUPED_ABOVE = 10
    DealFactory.create_batch(
        CROWD, owner=rep, stage=stages["lead"], next_step="", created_at=YESTERDAY
    )
    stalled.refresh_flags()
    notice = Notification.objects.get(user=rep)

    response = client_for(rep).post(reverse("notification_open", args=[notice.pk]))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('board')}?owner=me&stalled=1"
    notice.refresh_from_db()
    assert notice.read_at is not None
