"""The activity times kept on each deal (`Deal.last_activity_at`, `Deal.next_activity`)
equal a recount from its activities after every kind of activity write, and the stalled
flags the job stores equal DESIGN.md's rules worked out from the raw activities."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deals import activities, services, stalled
from deals.models import Activity, Deal, Event, StalledFlag, StalledRule
from imports.undo import undo_import
from stages.models import StageKind
from tests.factories import DealFactory
from tests.imports.imports_support import csv_of, run

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def recounted(deal: Deal) -> tuple[object, object]:
    """(last logged or completed time, next open activity's id) from the raw rows."""
    rows = list(Activity.objects.filter(deal=deal))
    moments = [logged_at(a) for a in rows]
    upcoming = Activity.objects.filter(deal=deal, done=False).order_by("due_at", "id").first()
    return (max(moments) if moments else None), (upcoming.pk if upcoming else None)


def logged_at(activity: Activity) -> object:
    return max(activity.created_at, activity.done_at or activity.created_at)


def kept(deal: Deal) -> tuple[object, object]:
    fresh = Deal.objects.get(pk=deal.pk)
    return fresh.last_activity_at, fresh.next_activity_id


def assert_kept_equals_recount(*deals: Deal) -> None:
    for deal in deals:
        assert kept(deal) == recounted(deal), deal


@pytest.fixture
def deal(rep, stages):
    return DealFactory(owner=rep, stage=stages["lead"], created_at=NOW - timedelta(days=40))


def test_a_deal_without_activities_has_no_times(deal):
    assert kept(deal) == (None, None)


def test_scheduling_sets_the_next_activity(deal, rep):
    later = activities.log_activity(
        deal, by=rep, type="call", subject="Later", due_at=NOW + timedelta(days=5)
    )
    sooner = activities.log_activity(
        deal, by=rep, type="call", subject="Sooner", due_at=NOW + timedelta(days=1)
    )

    assert kept(deal)[1] == sooner.pk != later.pk
    assert_kept_equals_recount(deal)


def test_logging_a_done_activity_sets_the_last_activity(deal, rep):
    logged = activities.log_activity(deal, by=rep, type="call", subject="Called", done=True)

    assert kept(deal) == (logged_at(logged), None)
    assert_kept_equals_recount(deal)


def test_completing_moves_next_to_the_following_and_last_to_now(deal, rep):
    first = activities.log_activity(
        deal, by=rep, type="call", subject="First", due_at=NOW + timedelta(days=1)
    )
    second = activities.log_activity(
        deal, by=rep, type="call", subject="Second", due_at=NOW + timedelta(days=2)
    )

    done = activities.complete_activity(first.pk, by=rep)

    assert kept(deal) == (logged_at(done), second.pk)
    assert_kept_equals_recount(deal)


def test_rescheduling_changes_which_activity_is_next(deal, rep):
    first = activities.log_activity(
        deal, by=rep, type="call", subject="First", due_at=NOW + timedelta(days=1)
    )
    second = activities.log_activity(
        deal, by=rep, type="call", subject="Second", due_at=NOW + timedelta(days=2)
    )

    activities.update_activity(
        first.pk, by=rep, subject="First", type="call", due_at=NOW + timedelta(days=9), note=""
    )

    assert kept(deal)[1] == second.pk
    assert_kept_equals_recount(deal)


def test_deleting_the_only_activities_clears_both_times(deal, rep):
    done = activities.log_activity(deal, by=rep, type="call", subject="Called", done=True)
    planned = activities.log_activity(
        deal, by=rep, type="call", subject="Next", due_at=NOW + timedelta(days=1)
    )

    activities.delete_activity(planned.pk, by=rep)
    assert kept(deal) == (logged_at(done), None)
    activities.delete_activity(done.pk, by=rep)

    assert kept(deal) == (None, None)


def test_importing_activities_sets_the_times_of_their_deals(admin_user, rep, stages):
    old = DealFactory(owner=rep, stage=stages["lead"], external_id="D-1")
    other = DealFactory(owner=rep, stage=stages["lead"], external_id="D-2")

    run(
        admin_user,
        csv_of(
            "D-1,Call,Intro call,2017-03-01,yes",
            "D-1,Meeting,Kick-off,2099-03-01,no",
            "D-2,Email,Proposal sent,2017-04-01,yes",
            header="Deal ID,Type,Subject,Due date,Done",
        ),
        kind="activities",
    )

    assert all(kept(d)[0] is not None for d in (old, other))
    assert kept(old)[1] == Activity.objects.get(subject="Kick-off").pk
    assert_kept_equals_recount(old, other)


def test_undoing_an_activity_import_recounts_the_deals(admin_user, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], external_id="D-1")
    mine = activities.log_activity(deal, by=rep, type="call", subject="Mine", done=True)
    job = run(
        admin_user,
        csv_of("D-1,Meeting,Kick-off,2099-03-01,no", header="Deal ID,Type,Subject,Due date,Done"),
        kind="activities",
    )
    assert kept(deal)[1] is not None

    undo_import(job, by=admin_user)

    assert kept(deal) == (logged_at(mine), None)
    assert_kept_equals_recount(deal)


def test_deleting_a_deal_takes_its_activities_and_flags(deal, rep, manager):
    activities.log_activity(deal, by=rep, type="call", subject="Called", done=True)
    stalled.refresh_flags(now=NOW)
    assert StalledFlag.objects.filter(deal=deal, rule=StalledRule.NO_NEXT_STEP).exists()

    services.delete_deal(deal, by=manager, expected_version=deal.version)

    assert not StalledFlag.objects.filter(deal_id=deal.pk).exists()
    assert not Activity.objects.filter(deal_id=deal.pk).exists()


# --- the stalled flags against the rules worked out from the raw rows ---------------------


def rules_from_raw_rows(deal: Deal, now) -> set[str]:
    """DESIGN.md's five rules for `deal`, from its row, its stage and its activities."""
    deal = Deal.objects.select_related("stage").get(pk=deal.pk)
    today = timezone.localdate(now)
    if deal.stage.kind != StageKind.OPEN or (deal.snoozed_until and deal.snoozed_until >= today):
        return set()
    cutoff = now - timedelta(days=14)
    rows = list(Activity.objects.filter(deal=deal))
    start_of_today = timezone.make_aware(
        timezone.datetime.combine(today, timezone.datetime.min.time())
    )
    fires = set()
    rotting = deal.stage.rotting_days
    if rotting and (now - deal.stage_entered_at).days > rotting:
        fires.add(StalledRule.IN_STAGE_TOO_LONG)
    recent = [a for a in rows if a.created_at > cutoff or (a.done_at and a.done_at > cutoff)]
    if deal.created_at <= cutoff and not recent:
        fires.add(StalledRule.NO_RECENT_ACTIVITY)
    if deal.created_at < start_of_today and not [a for a in rows if not a.done]:
        fires.add(StalledRule.NO_NEXT_STEP)
    if deal.expected_close_date and deal.expected_close_date < today:
        fires.add(StalledRule.CLOSE_DATE_PASSED)
    if deal.close_date_pushes >= 3:
        fires.add(StalledRule.CLOSE_DATE_SLIPPING)
    return fires


@pytest.mark.parametrize("settings_days", [14])
def test_stored_flags_equal_the_rules_on_the_raw_activities(rep, stages, settings, settings_days):
    settings.STALLED_NO_ACTIVITY_DAYS = settings_days
    settings.STALLED_SLIPPING_PUSHES = 3
    stages["lead"].rotting_days = 10
    stages["lead"].save()
    old = NOW - timedelta(days=40)
    made = [
        DealFactory(owner=rep, stage=stages["lead"], created_at=old, stage_entered_at=old)
        for _ in range(7)
    ]
    quiet, logged, planned, completed, rescheduled, removed, untouched = made
    activities.log_activity(logged, by=rep, type="call", subject="Called", done=True)
    activities.log_activity(planned, by=rep, type="call", subject="Next", due_at=NOW)
    done = activities.log_activity(completed, by=rep, type="call", subject="Do", due_at=NOW)
    activities.complete_activity(done.pk, by=rep)
    moved = activities.log_activity(rescheduled, by=rep, type="call", subject="Move", due_at=NOW)
    activities.update_activity(
        moved.pk, by=rep, subject="Move", type="call", due_at=NOW + timedelta(days=3), note=""
    )
    gone = activities.log_activity(removed, by=rep, type="call", subject="Gone", due_at=NOW)
    activities.delete_activity(gone.pk, by=rep)
    Deal.objects.filter(pk=untouched.pk).update(
        expected_close_date=timezone.localdate(NOW) - timedelta(days=1), close_date_pushes=4
    )
    assert quiet  # no activity at all: quiet, and no next step

    stalled.refresh_flags(now=NOW)

    stored = set(StalledFlag.objects.values_list("deal_id", "rule"))
    expected = {(d.pk, rule) for d in made for rule in rules_from_raw_rows(d, NOW)}
    assert stored == expected
    # Every activity write above changed what fires: the comparison is not vacuous.
    assert {rule for _deal, rule in expected} == set(StalledRule.values)


def test_the_job_clears_a_flag_whose_deal_has_gone(deal):
    """Flags have no database constraint on their deal (see StalledFlag.deal): one left
    behind by a deal deleted outside the ORM goes at the next run, without an event."""
    StalledFlag.objects.create(deal_id=deal.pk + 1000, rule=StalledRule.NO_NEXT_STEP)

    stalled.refresh_flags(now=NOW)

    assert not StalledFlag.objects.filter(deal_id=deal.pk + 1000).exists()
    assert not Event.objects.filter(deal_id=deal.pk + 1000).exists()


def admin_form(activity_deal: Deal, owner, **fields) -> dict[str, object]:
    """The admin's Activity form, filled in (dates in its split date/time widgets)."""
    due = fields.pop("due_at", None)
    return {
        "deal": activity_deal.pk,
        "owner": owner.pk,
        "type": "call",
        "subject": "From the admin",
        "note": "",
        "due_at_0": due.strftime("%Y-%m-%d") if due else "",
        "due_at_1": due.strftime("%H:%M:%S") if due else "",
        "done_at_0": "",
        "done_at_1": "",
        "created_at_0": NOW.strftime("%Y-%m-%d"),
        "created_at_1": NOW.strftime("%H:%M:%S"),
        **fields,
    }


def test_the_admin_adding_an_activity_recounts_its_deal(deal, rep, admin_user, client_for):
    response = client_for(admin_user).post(
        reverse("admin:deals_activity_add"),
        admin_form(deal, rep, due_at=NOW + timedelta(days=2)),
    )

    assert response.status_code == 302, response.content
    assert kept(deal)[1] == Activity.objects.get(deal=deal).pk
    assert_kept_equals_recount(deal)


def test_the_admin_moving_an_activity_recounts_both_deals(deal, rep, admin_user, client_for):
    other = DealFactory(owner=rep, stage=deal.stage)
    activity = activities.log_activity(
        deal, by=rep, type="call", subject="Call", due_at=NOW + timedelta(days=1)
    )

    response = client_for(admin_user).post(
        reverse("admin:deals_activity_change", args=[activity.pk]),
        admin_form(other, rep, due_at=NOW + timedelta(days=1)),
    )

    assert response.status_code == 302, response.content
    assert kept(deal)[1] is None
    assert kept(other)[1] == activity.pk
    assert_kept_equals_recount(deal, other)


def test_the_admin_deleting_an_activity_recounts_its_deal(deal, rep, admin_user, client_for):
    activity = activities.log_activity(
        deal, by=rep, type="call", subject="Call", due_at=NOW + timedelta(days=1)
    )

    response = client_for(admin_user).post(
        reverse("admin:deals_activity_delete", args=[activity.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert kept(deal) == (None, None)


def test_the_admin_deleting_selected_activities_recounts_their_deals(
    deal, rep, admin_user, client_for
):
    other = DealFactory(owner=rep, stage=deal.stage)
    chosen = [
        activities.log_activity(d, by=rep, type="call", subject="Call", due_at=NOW).pk
        for d in (deal, other)
    ]

    response = client_for(admin_user).post(
        reverse("admin:deals_activity_changelist"),
        {"action": "delete_selected", "_selected_action": chosen, "post": "yes"},
    )

    assert response.status_code == 302
    assert (kept(deal), kept(other)) == ((None, None), (None, None))
