"""Stalled deals: the five rules on crafted data, the set-based job, snoozing."""

from __future__ import annotations

from datetime import date, timedelta

import factory
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deals import stalled
from deals.models import Deal, Event, FieldChange, Notification, StalledFlag, StalledRule
from tests import factories
from tests.factories import ActivityFactory

HTMX = {"HTTP_HX_REQUEST": "true"}
NOW = timezone.now()
TODAY = timezone.localdate(NOW)


class DealFactory(factories.DealFactory):
    """Deals entered yesterday: a deal created today is never stalled, so the rules are
    tested on deals that have been around (tests about new deals set `created_at`)."""

    created_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))


def quiet_deal(**fields):
    """An open deal that no rule flags: recent, with a future activity, nothing overdue."""
    deal = DealFactory(**fields)
    ActivityFactory(deal=deal, due_at=NOW + timedelta(days=2))
    return deal


def firing(rule: str) -> set[int]:
    return set(stalled.firing(rule, NOW).values_list("pk", flat=True))


def flags() -> set[tuple[int, str]]:
    return set(StalledFlag.objects.values_list("deal_id", "rule"))


# --- the rules, one by one -----------------------------------------------------------


def test_quiet_deal_fires_no_rule(rep, stages):
    stages["lead"].rotting_days = 5
    stages["lead"].save()
    quiet_deal(owner=rep, stage=stages["lead"], expected_close_date=TODAY)
    assert all(not firing(rule) for rule in StalledRule.values)


def test_in_stage_too_long_fires_after_more_than_rotting_days(rep, stages):
    stages["lead"].rotting_days = 5
    stages["lead"].save()
    over = quiet_deal(owner=rep, stage=stages["lead"], stage_entered_at=NOW - timedelta(days=6))
    quiet_deal(owner=rep, stage=stages["lead"], stage_entered_at=NOW - timedelta(days=5, hours=23))
    assert firing(StalledRule.IN_STAGE_TOO_LONG) == {over.pk}


def test_in_stage_too_long_is_off_when_rotting_days_is_zero(rep, stages):
    quiet_deal(owner=rep, stage=stages["lead"], stage_entered_at=NOW - timedelta(days=400))
    assert firing(StalledRule.IN_STAGE_TOO_LONG) == set()


def test_no_recent_activity_fires_for_deal_quiet_longer_than_setting(rep, stages, settings):
    settings.STALLED_NO_ACTIVITY_DAYS = 14
    old = NOW - timedelta(days=30)
    quiet = DealFactory(owner=rep, stage=stages["lead"], created_at=old)
    ActivityFactory(deal=quiet, created_at=old, done=True, done_at=NOW - timedelta(days=15))
    busy = DealFactory(owner=rep, stage=stages["lead"], created_at=old)
    ActivityFactory(deal=busy, created_at=old, done=True, done_at=NOW - timedelta(days=3))
    logged = DealFactory(owner=rep, stage=stages["lead"], created_at=old)
    ActivityFactory(deal=logged, created_at=NOW - timedelta(days=1))
    assert firing(StalledRule.NO_RECENT_ACTIVITY) == {quiet.pk}


def test_no_recent_activity_spares_deals_younger_than_the_window(rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], created_at=NOW - timedelta(days=2))
    assert firing(StalledRule.NO_RECENT_ACTIVITY) == set()


def test_no_next_step_fires_without_an_open_activity(rep, stages):
    bare = DealFactory(owner=rep, stage=stages["lead"])
    finished = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=finished, due_at=NOW + timedelta(days=1), done=True, done_at=NOW)
    quiet_deal(owner=rep, stage=stages["lead"])
    assert firing(StalledRule.NO_NEXT_STEP) == {bare.pk, finished.pk}


def test_an_overdue_open_activity_is_still_a_next_step(rep, stages):
    """The card shows it as "Next: … Dec 4" with an overdue mark; "no next step" beside
    it would contradict the card."""
    overdue = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=overdue, due_at=NOW - timedelta(days=2))
    undated = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=undated, due_at=None)
    assert firing(StalledRule.NO_NEXT_STEP) == set()


def test_a_deal_created_today_is_not_flagged_for_missing_a_next_step(rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], created_at=NOW)
    assert firing(StalledRule.NO_NEXT_STEP) == set()


def test_close_date_passed_fires_from_the_day_after(rep, stages):
    late = quiet_deal(owner=rep, stage=stages["lead"], expected_close_date=TODAY - timedelta(1))
    quiet_deal(owner=rep, stage=stages["lead"], expected_close_date=TODAY)
    quiet_deal(owner=rep, stage=stages["lead"], expected_close_date=None)
    assert firing(StalledRule.CLOSE_DATE_PASSED) == {late.pk}


def test_close_date_slipping_fires_at_three_pushes(rep, stages):
    slipping = quiet_deal(owner=rep, stage=stages["lead"], close_date_pushes=3)
    quiet_deal(owner=rep, stage=stages["lead"], close_date_pushes=2)
    assert firing(StalledRule.CLOSE_DATE_SLIPPING) == {slipping.pk}


def test_rules_ignore_closed_deals(rep, stages):
    DealFactory(owner=rep, stage=stages["lost"], close_date_pushes=5, closed_at=NOW)
    DealFactory(owner=rep, stage=stages["won"], expected_close_date=date(2020, 1, 1))
    assert all(not firing(rule) for rule in StalledRule.values)


def test_rules_skip_deals_snoozed_through_today(rep, stages):
    quiet_deal(owner=rep, stage=stages["lead"], close_date_pushes=4, snoozed_until=TODAY)
    expired = quiet_deal(
        owner=rep, stage=stages["lead"], close_date_pushes=4, snoozed_until=TODAY - timedelta(1)
    )
    assert firing(StalledRule.CLOSE_DATE_SLIPPING) == {expired.pk}


# --- the job -------------------------------------------------------------------------


def test_refresh_stores_one_flag_per_firing_rule(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    result = stalled.refresh_flags(now=NOW)
    assert flags() == {
        (deal.pk, StalledRule.NO_NEXT_STEP),
        (deal.pk, StalledRule.CLOSE_DATE_SLIPPING),
    }
    assert sum(result.added.values()) == 2


def test_refresh_twice_changes_nothing_the_second_time(rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    DealFactory(owner=rep, stage=stages["qualified"], expected_close_date=TODAY - timedelta(3))
    stalled.refresh_flags(now=NOW)
    before = list(StalledFlag.objects.order_by("pk").values())
    second = stalled.refresh_flags(now=NOW + timedelta(minutes=5))
    assert second.changed == 0
    assert list(StalledFlag.objects.order_by("pk").values()) == before


def test_flag_clears_when_activity_is_scheduled(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.refresh_flags(now=NOW)
    ActivityFactory(deal=deal, due_at=NOW + timedelta(days=1))
    result = stalled.refresh_flags(now=NOW)
    assert flags() == set()
    assert result.cleared[StalledRule.NO_NEXT_STEP] == 1


def test_flag_clears_when_close_date_moves_out(rep, stages):
    deal = quiet_deal(owner=rep, stage=stages["lead"], expected_close_date=TODAY - timedelta(2))
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(expected_close_date=TODAY + timedelta(30))
    stalled.refresh_flags(now=NOW)
    assert flags() == set()


def test_flag_clears_when_stage_changes(rep, stages):
    stages["lead"].rotting_days = 3
    stages["lead"].save()
    deal = quiet_deal(owner=rep, stage=stages["lead"], stage_entered_at=NOW - timedelta(days=10))
    stalled.refresh_flags(now=NOW)
    assert flags() == {(deal.pk, StalledRule.IN_STAGE_TOO_LONG)}
    Deal.objects.filter(pk=deal.pk).update(stage=stages["qualified"], stage_entered_at=NOW)
    stalled.refresh_flags(now=NOW)
    assert flags() == set()


def test_flags_of_a_deal_that_closes_are_cleared(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(stage=stages["won"], closed_at=NOW)
    stalled.refresh_flags(now=NOW)
    assert flags() == set()


def test_refresh_for_some_deals_leaves_other_flags_alone(rep, stages):
    target = DealFactory(owner=rep, stage=stages["lead"])
    other = DealFactory(owner=rep, stage=stages["lead"])
    StalledFlag.objects.create(deal=other, rule=StalledRule.CLOSE_DATE_PASSED)
    stalled.refresh_flags(now=NOW, deal_ids=[target.pk])
    assert flags() == {
        (target.pk, StalledRule.NO_NEXT_STEP),
        (other.pk, StalledRule.CLOSE_DATE_PASSED),
    }


def test_refresh_keeps_flagged_at_of_a_flag_that_persists(rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], created_at=NOW - timedelta(days=5))
    stalled.refresh_flags(now=NOW - timedelta(days=2))
    stalled.refresh_flags(now=NOW)
    assert StalledFlag.objects.get().flagged_at == NOW - timedelta(days=2)


def statements_for_refresh(**kwargs) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        stalled.refresh_flags(now=NOW, **kwargs)
    # Savepoints and the job lock are not statements over deals.
    sql = [q["sql"].lstrip() for q in queries.captured_queries]
    return [q for q in sql if "pg_advisory" not in q and "SAVEPOINT" not in q.upper()]


# PostgreSQL: work_mem for the transaction, then the whole refresh in one statement (its
# deal.stalled and deal.unstalled events are two of its INSERT … SELECT CTEs).
# SQLite: the deal.unstalled and deal.stalled events (an INSERT … SELECT each), DELETE and
# INSERT of flags, then the notices (INSERT) and their marks (UPDATE), and the imported
# deals now heard of (DELETE of QuietDeal rows).
REFRESH_STATEMENTS = {"postgresql": 2, "sqlite": 7}


def make_stalled_deals(owner, stage, count: int) -> list[Deal]:
    return [DealFactory(owner=owner, stage=stage, close_date_pushes=3) for _ in range(count)]


def test_refresh_runs_a_fixed_number_of_statements_whatever_the_number_of_deals(rep, stages):
    make_stalled_deals(rep, stages["lead"], 2)
    few = statements_for_refresh()
    # Many more deals and stored flags, with flags to clear and flags to add and announce.
    calmer = make_stalled_deals(rep, stages["qualified"], 40)
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk__in=[deal.pk for deal in calmer[:10]]).update(close_date_pushes=0)
    make_stalled_deals(rep, stages["demo"], 5)
    many = statements_for_refresh()
    assert len(few) == len(many) == REFRESH_STATEMENTS[connection.vendor]
    assert StalledFlag.objects.count() == 2 * 2 + 30 * 2 + 10 + 5 * 2


def test_refresh_of_some_deals_runs_as_many_statements_as_a_full_refresh(rep, stages):
    deals = make_stalled_deals(rep, stages["lead"], 5)
    statements = statements_for_refresh(deal_ids=[deal.pk for deal in deals[:3]])
    assert len(statements) == REFRESH_STATEMENTS[connection.vendor]
    assert {deal_id for deal_id, _ in flags()} == {deal.pk for deal in deals[:3]}


def test_refresh_of_no_deals_changes_nothing_and_runs_no_statement(rep, stages):
    make_stalled_deals(rep, stages["lead"], 2)
    assert statements_for_refresh(deal_ids=[]) == []
    assert flags() == set()


def test_refresh_counts_added_and_cleared_flags_per_rule(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(
        close_date_pushes=0, expected_close_date=TODAY - timedelta(days=1)
    )
    result = stalled.refresh_flags(now=NOW)
    assert result.cleared == {**dict.fromkeys(StalledRule.values, 0), "close_date_slipping": 1}
    assert result.added == {**dict.fromkeys(StalledRule.values, 0), "close_date_passed": 1}
    assert result.notified == 1


def test_refresh_announces_a_stored_flag_that_was_never_announced(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], close_date_pushes=3)
    ActivityFactory(deal=deal, due_at=NOW + timedelta(days=2))
    flagged_at = NOW - timedelta(days=3)
    StalledFlag.objects.create(
        deal=deal, rule=StalledRule.CLOSE_DATE_SLIPPING, flagged_at=flagged_at
    )
    result = stalled.refresh_flags(now=NOW)
    assert (sum(result.added.values()), result.notified) == (0, 1)
    flag = StalledFlag.objects.get()
    assert (flag.flagged_at, flag.notified_at) == (flagged_at, NOW)
    day = timezone.localdate(flagged_at).isoformat()
    assert Notification.objects.get().dedupe_key == f"stalled:{deal.pk}:close_date_slipping:{day}"


def test_refresh_of_some_deals_leaves_other_unannounced_flags_alone(rep, stages):
    target = DealFactory(owner=rep, stage=stages["lead"])
    other = DealFactory(owner=rep, stage=stages["lead"])
    StalledFlag.objects.create(deal=other, rule=StalledRule.NO_NEXT_STEP)
    stalled.refresh_flags(now=NOW, deal_ids=[target.pk])
    assert StalledFlag.objects.get(deal=other).notified_at is None
    assert set(Notification.objects.values_list("deal_id", flat=True)) == {target.pk}


@pytest.mark.postgres
def test_concurrent_refreshes_wait_for_each_other_on_postgresql(rep, stages):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (advisory locks)")
    DealFactory(owner=rep, stage=stages["lead"])
    with CaptureQueriesContext(connection) as queries:
        stalled.refresh_flags(now=NOW)
    assert any("pg_advisory_xact_lock" in q["sql"] for q in queries.captured_queries)


# --- snoozing ------------------------------------------------------------------------


def test_snooze_removes_flags_and_records_reason(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.refresh_flags(now=NOW)
    stalled.snooze_deal(deal, by=rep, until=TODAY + timedelta(7), reason="Champion on holiday")
    deal.refresh_from_db()
    assert (deal.snoozed_until, deal.snooze_reason) == (
        TODAY + timedelta(7),
        "Champion on holiday",
    )
    assert flags() == set()
    assert FieldChange.objects.get(deal=deal).field == "snoozed_until"


def test_snoozed_deal_stays_unflagged_by_the_job(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.snooze_deal(deal, by=rep, until=TODAY + timedelta(7), reason="Budget freeze")
    stalled.refresh_flags(now=NOW)
    assert flags() == set()


def test_deal_is_flagged_again_once_the_snooze_ends(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.snooze_deal(deal, by=rep, until=TODAY + timedelta(3), reason="Budget freeze")
    stalled.refresh_flags(now=NOW + timedelta(days=4))
    assert flags() == {(deal.pk, StalledRule.NO_NEXT_STEP)}


def test_unsnooze_reruns_the_rules_for_the_deal(
    rep, stages, eager, django_capture_on_commit_callbacks
):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.snooze_deal(deal, by=rep, until=TODAY + timedelta(3), reason="Budget freeze")
    with django_capture_on_commit_callbacks(execute=True):
        stalled.unsnooze_deal(deal, by=rep)
    deal.refresh_from_db()
    assert deal.snoozed_until is None and deal.snooze_reason == ""
    assert flags() == {(deal.pk, StalledRule.NO_NEXT_STEP)}
    assert Event.objects.get(name="deal.unsnoozed").handled_at is not None


@pytest.mark.parametrize(
    ("days", "reason", "message"),
    [
        (0, "Holiday", "after today"),
        (91, "Holiday", "at most 90 days"),
        (5, "   ", "Say why"),
    ],
)
def test_snooze_refuses_bad_date_or_missing_reason(rep, stages, days, reason, message):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with pytest.raises(stalled.SnoozeError, match=message):
        stalled.snooze_deal(deal, by=rep, until=TODAY + timedelta(days), reason=reason)


def test_snooze_refuses_a_teammate(rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    with pytest.raises(stalled.SnoozeNotAllowed):
        stalled.snooze_deal(deal, by=teammate, until=TODAY + timedelta(3), reason="Holiday")


def test_snooze_does_not_bump_the_version(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.snooze_deal(deal, by=rep, until=TODAY + timedelta(3), reason="Holiday")
    deal.refresh_from_db()
    assert deal.version == 1


# --- snooze endpoints and the badge --------------------------------------------------


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def snooze_post(client, deal, *, htmx=True, days=7, reason="Champion on holiday"):
    data = {"until": (TODAY + timedelta(days)).isoformat(), "reason": reason, "next": "/"}
    return client.post(reverse("deal_snooze", args=[deal.pk]), data, **(HTMX if htmx else {}))


def test_snooze_endpoint_answers_htmx_with_the_snoozed_badge(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.refresh_flags(now=NOW)
    response = snooze_post(login(rep), deal)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="stalled-{deal.pk}"' in html
    assert "Snoozed until" in html and "Champion on holiday" in html
    assert "Stalled:" not in html
    assert reverse("deal_unsnooze", args=[deal.pk]) in html


def test_snooze_endpoint_redirects_a_plain_form_back(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = snooze_post(login(rep), deal, htmx=False)
    assert response.status_code == 302
    assert response.url == "/"


def test_snooze_endpoint_answers_422_with_the_reason_it_refused(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.refresh_flags(now=NOW)
    response = snooze_post(login(rep), deal, days=200)
    assert response.status_code == 422
    assert "at most 90 days" in response.content.decode()
    deal.refresh_from_db()
    assert deal.snoozed_until is None


def test_snooze_endpoint_answers_404_to_an_outsider(outsider, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert snooze_post(login(outsider), deal).status_code == 404


def test_snooze_endpoint_answers_403_to_a_teammate_who_may_only_look(teammate, rep, stages):
    """The teammate sees the deal (so 404 would lie) but may not change it (DESIGN: 403)."""
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert snooze_post(login(teammate), deal).status_code == 403
    deal.refresh_from_db()
    assert deal.snoozed_until is None


def test_manager_may_snooze_a_team_deal(manager, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert snooze_post(login(manager), deal).status_code == 200


def test_unsnooze_endpoint_brings_the_flags_back(rep, stages, eager):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.snooze_deal(deal, by=rep, until=TODAY + timedelta(3), reason="Holiday")
    client = login(rep)
    response = client.post(reverse("deal_unsnooze", args=[deal.pk]), **HTMX)
    assert response.status_code == 200
    # The test transaction never commits, so run the hand-off by hand.
    from deals import events

    events.dispatch([str(Event.objects.get(name="deal.unsnoozed").pk)])
    assert flags() == {(deal.pk, StalledRule.NO_NEXT_STEP)}


def test_snooze_endpoint_refuses_get(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert login(rep).get(reverse("deal_snooze", args=[deal.pk])).status_code == 405


def test_badge_offers_snooze_only_on_stalled_deals_the_user_may_edit(rep, teammate, stages):
    from django.template.loader import render_to_string

    deal = DealFactory(owner=rep, stage=stages["lead"])
    stalled.refresh_flags(now=NOW)
    deal = Deal.objects.prefetch_related("stalled_flags").get(pk=deal.pk)
    deal.can_move = True
    editable = render_to_string("deals/_stalled_badge.html", {"deal": deal})
    deal.can_move = False
    readonly = render_to_string("deals/_stalled_badge.html", {"deal": deal})
    assert "Stalled: No next step scheduled" in editable and "Snooze" in editable
    assert "Stalled: No next step scheduled" in readonly and "Snooze" not in readonly


def test_badge_hides_an_expired_snooze(rep, stages):
    from django.template.loader import render_to_string

    deal = DealFactory(
        owner=rep, stage=stages["lead"], snoozed_until=TODAY - timedelta(1), snooze_reason="Old"
    )
    html = render_to_string("deals/_stalled_badge.html", {"deal": deal})
    assert "Snoozed" not in html
