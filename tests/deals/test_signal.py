"""Signal, not noise: activity reminders on the bell, realistic demo data (issue 16)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deals import notifications
from deals.models import Notification
from tests.factories import ActivityFactory, DealFactory


def test_due_and_overdue_activities_reach_the_bell_as_one_notice(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    now = timezone.now()
    ActivityFactory(deal=deal, due_at=now + timedelta(minutes=1))
    ActivityFactory(deal=deal, due_at=now - timedelta(days=3))
    ActivityFactory(deal=deal, due_at=now - timedelta(days=4))
    ActivityFactory(deal=deal, due_at=now + timedelta(days=3))  # not yet
    ActivityFactory(deal=deal, due_at=now - timedelta(days=1), done=True, done_at=now)
    assert notifications.remind_activities(now=now) == 1
    notice = Notification.objects.get(user=rep)
    assert notice.kind == notifications.REMINDER
    assert "2 overdue" in notice.text
    page = client_for(rep).get(reverse("board")).content.decode()
    assert 'class="bell-count">1<' in page


def test_reminders_come_once_a_day(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=deal, due_at=timezone.now() - timedelta(hours=2))
    notifications.remind_activities()
    assert notifications.remind_activities() == 0
    assert Notification.objects.filter(user=rep).count() == 1


def test_opening_a_reminder_goes_to_my_activities(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=deal, due_at=timezone.now() - timedelta(hours=2))
    notifications.remind_activities()
    notice = Notification.objects.get(user=rep)
    response = client_for(rep).post(reverse("notification_open", args=[notice.pk]))
    assert response.url == reverse("my_activities")


def test_closed_deals_and_nothing_due_send_no_reminder(rep, stages):
    closed = DealFactory(owner=rep, stage=stages["won"], closed_at=timezone.now())
    ActivityFactory(deal=closed, due_at=timezone.now() - timedelta(days=1))
    ActivityFactory(deal=DealFactory(owner=rep, stage=stages["lead"]))  # due tomorrow
    assert notifications.remind_activities() == 0


@pytest.fixture
def demo(db, settings):
    """The demo data `make run` seeds, with its jobs run once, as a first login sees it."""
    from io import StringIO

    from django.core.management import call_command

    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())


def test_demo_flags_a_believable_share_of_open_deals_as_stalled(demo):
    from deals.models import Deal, StalledFlag

    open_deals = Deal.objects.filter(stage__kind="open")
    stalled = open_deals.filter(pk__in=StalledFlag.objects.values("deal_id")).count()
    assert 0.10 <= stalled / open_deals.count() <= 0.25


def test_demo_reps_start_with_at_most_ten_unread_notices(demo):
    from accounts.models import Role, User

    for rep in User.objects.filter(role=Role.REP):
        assert Notification.objects.filter(user=rep, read_at__isnull=True).count() <= 10


def test_demo_activities_happen_in_business_hours(demo):
    from deals.models import Activity

    for due in Activity.objects.exclude(due_at=None).values_list("due_at", flat=True):
        local = timezone.localtime(due)
        assert 9 <= local.hour < 18 and local.weekday() < 5


def test_a_bulk_move_tells_each_owner_once(manager, rep, teammate, stages):
    from deals import services

    mine = [DealFactory(owner=rep, stage=stages["lead"]) for _ in range(3)]
    theirs = DealFactory(owner=teammate, stage=stages["lead"])
    services.bulk_move([d.pk for d in [*mine, theirs]], stages["qualified"], by=manager)
    assert [n.text for n in Notification.objects.filter(user=rep)] == [
        f"{manager.display_name} moved 3 of your deals to Qualified."
    ]
    assert Notification.objects.filter(user=teammate, kind=notifications.SUMMARY).count() == 1
    assert not Notification.objects.filter(user=manager).exists()


def test_a_reminder_of_overdue_activities_only_says_what_is_overdue():
    assert notifications._reminder_text(0, 1) == "You have 1 overdue activity. See My activities."
    assert notifications._reminder_text(2, 3) == (
        "You have 2 activities due today and 3 overdue. See My activities."
    )


def test_reminders_count_only_activities_on_deals_their_owner_still_sees(rep, outsider, stages):
    """A rep's activity on a deal now owned by another team is not counted: the notice
    must agree with My activities, which no longer shows it (issue 13, item 7)."""
    mine = DealFactory(owner=rep, stage=stages["lead"])
    gone = DealFactory(owner=outsider, stage=stages["lead"])
    ActivityFactory(deal=mine, owner=rep, due_at=timezone.now() - timedelta(days=2))
    ActivityFactory(deal=gone, owner=rep, due_at=timezone.now() - timedelta(days=3))
    assert notifications.remind_activities() == 1
    assert (
        Notification.objects.get(user=rep).text
        == "You have 1 overdue activity. See My activities."
    )
