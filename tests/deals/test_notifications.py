"""Notifications: one per new stalled flag, the bell, the list page, the daily digest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.template import RequestContext, Template
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from deals import notifications, stalled
from deals.models import Deal, Notification, StalledFlag, StalledRule
from tests.factories import ActivityFactory, DealFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}
NOW = timezone.now()
TODAY = timezone.localdate(NOW)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def slipping_deal(owner, stage, **fields):
    """A deal that fires exactly one rule (close date slipping)."""
    deal = DealFactory(owner=owner, stage=stage, close_date_pushes=3, **fields)
    ActivityFactory(deal=deal, due_at=NOW + timedelta(days=3))
    return deal


# --- one notification per new flag ----------------------------------------------------


def test_new_flag_notifies_the_deal_owner_once(rep, stages):
    deal = slipping_deal(rep, stages["lead"], title="Acme renewal")
    stalled.refresh_flags(now=NOW)
    notice = Notification.objects.get()
    assert (notice.user, notice.deal_id, notice.kind) == (rep, deal.pk, "stalled")
    assert notice.text == "“Acme renewal” is stalled: close date keeps slipping"
    assert notice.dedupe_key == f"stalled:{deal.pk}:close_date_slipping:{TODAY.isoformat()}"
    assert StalledFlag.objects.get().notified_at == NOW


def test_flag_that_persists_does_not_notify_again(rep, stages):
    slipping_deal(rep, stages["lead"])
    stalled.refresh_flags(now=NOW)
    result = stalled.refresh_flags(now=NOW + timedelta(days=2))
    assert result.notified == 0
    assert Notification.objects.count() == 1


def test_each_new_flag_of_a_deal_gets_its_own_notification(rep, stages):
    deal = slipping_deal(rep, stages["lead"])
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(expected_close_date=TODAY - timedelta(days=1))
    stalled.refresh_flags(now=NOW)
    assert Notification.objects.filter(deal=deal).count() == 2


def test_flag_that_flaps_within_a_day_notifies_once(rep, stages):
    deal = slipping_deal(rep, stages["lead"])
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(close_date_pushes=0)
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(close_date_pushes=3)
    stalled.refresh_flags(now=NOW + timedelta(minutes=5))
    assert Notification.objects.count() == 1


def test_flag_that_returns_another_day_notifies_again(rep, stages):
    deal = slipping_deal(rep, stages["lead"])
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(close_date_pushes=0)
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=deal.pk).update(close_date_pushes=4)
    stalled.refresh_flags(now=NOW + timedelta(days=1))
    assert Notification.objects.count() == 2


def test_snoozed_then_unsnoozed_deal_notifies_when_flagged_again(rep, stages):
    deal = slipping_deal(rep, stages["lead"])
    stalled.snooze_deal(deal, by=rep, until=TODAY + timedelta(days=2), reason="Holiday")
    stalled.refresh_flags(now=NOW)
    assert Notification.objects.count() == 0
    stalled.refresh_flags(now=NOW + timedelta(days=3))
    assert Notification.objects.get().user == rep


def test_notifications_go_to_each_deals_owner(rep, teammate, stages):
    slipping_deal(rep, stages["lead"])
    slipping_deal(teammate, stages["lead"])
    stalled.refresh_flags(now=NOW)
    assert sorted(Notification.objects.values_list("user__username", flat=True)) == [
        "rep",
        "teammate",
    ]


# --- read marks ------------------------------------------------------------------------


def notify(user, count=1, **fields):
    return [
        Notification.objects.create(
            **{"user": user, "kind": "stalled", "text": f"Deal {i} is stalled", **fields}
        )
        for i in range(count)
    ]


def test_mark_read_keeps_the_first_read_time(rep):
    (notice,) = notify(rep)
    notifications.mark_read(notice, by=rep)
    first = Notification.objects.get().read_at
    notifications.mark_read(notice, by=rep)
    assert first is not None and Notification.objects.get().read_at == first


def test_mark_all_read_only_touches_the_users_own(rep, teammate):
    notify(rep, 3)
    notify(teammate, 2)
    assert notifications.mark_all_read(by=rep) == 3
    assert notifications.unread_count(teammate) == 2


# --- pages -----------------------------------------------------------------------------


def test_list_shows_only_the_users_own_notifications(rep, teammate):
    notify(rep, text="Mine is stalled")
    notify(teammate, text="Theirs is stalled")
    html = login(rep).get(reverse("notifications")).content.decode()
    assert "Mine is stalled" in html and "Theirs is stalled" not in html


def test_list_filters_unread(rep):
    notify(rep, text="Old news", read_at=NOW)
    notify(rep, text="Fresh news")
    html = login(rep).get(reverse("notifications") + "?unread=1").content.decode()
    assert "Fresh news" in html and "Old news" not in html


def test_list_requires_login(client, db):
    response = client.get(reverse("notifications"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("count", [1, 40])
def test_list_costs_a_fixed_number_of_queries(rep, count, django_assert_num_queries):
    notify(rep, count)
    client = login(rep)
    # session, user, page count, page rows, bell count
    with django_assert_num_queries(5):
        response = client.get(reverse("notifications"))
    assert response.status_code == 200


def test_mark_read_answers_htmx_with_the_item_and_the_bell(rep):
    first, _second = notify(rep, 2)
    response = login(rep).post(reverse("notification_read", args=[first.pk]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="notification-{first.pk}"' in html and "Mark as read" not in html
    assert 'id="bell"' in html and 'hx-swap-oob="true"' in html
    assert '<strong class="bell-count">1</strong>' in html


def test_mark_read_of_someone_elses_notification_answers_404(rep, teammate):
    (theirs,) = notify(teammate)
    response = login(rep).post(reverse("notification_read", args=[theirs.pk]))
    assert response.status_code == 404
    assert Notification.objects.get().read_at is None


def test_mark_all_read_endpoint_redirects_to_the_list(rep):
    notify(rep, 3)
    response = login(rep).post(reverse("notifications_read_all"))
    assert response.status_code == 302 and response.url == reverse("notifications")
    assert notifications.unread_count(rep) == 0


def test_open_marks_read_and_goes_to_the_deal(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    (notice,) = notify(rep, deal=deal)
    response = login(rep).post(reverse("notification_open", args=[notice.pk]))
    assert response.status_code == 302
    assert response.url == reverse("deal_detail", args=[deal.pk])
    assert Notification.objects.get().read_at is not None


def test_bell_shows_the_unread_count_for_one_query(rep, django_assert_num_queries):
    notify(rep, 4)
    notify(rep, 2, read_at=NOW)
    request = RequestFactory().get("/")
    request.user = rep
    with django_assert_num_queries(1):
        html = render_to_string("deals/_bell.html", request=request)
    assert '<strong class="bell-count">4</strong>' in html
    assert reverse("notifications") in html


def test_bell_costs_nothing_on_fragments_that_do_not_show_it(rep, django_assert_num_queries):
    request = RequestFactory().get("/")
    request.user = rep
    with django_assert_num_queries(0):
        html = Template("fragment").render(RequestContext(request))
    assert html == "fragment"


# --- the daily digest -----------------------------------------------------------------


def test_digest_mails_each_user_their_unread_notifications(rep, teammate):
    notify(rep, 2)
    notify(teammate, 1, read_at=NOW)
    assert notifications.send_digests(now=NOW) == 1
    (message,) = mail.outbox
    assert message.to == [rep.email]
    assert "2 thing(s) need your attention" in message.body
    assert "Deal 0 is stalled" in message.body
    assert reverse("notifications") in message.body


def test_digest_runs_at_most_once_a_day_per_user(rep):
    notify(rep, 1)
    notifications.send_digests(now=NOW)
    notify(rep, 1)
    later = NOW + timedelta(minutes=30)
    if timezone.localdate(later) != timezone.localdate(NOW):
        later = NOW  # run just before midnight: half an hour later is another day
    assert notifications.send_digests(now=later) == 0
    assert len(mail.outbox) == 1


def test_digest_of_the_next_day_carries_only_what_is_new(rep):
    notify(rep, 1, text="Yesterday's")
    notifications.send_digests(now=NOW - timedelta(days=1))
    notify(rep, 1, text="Today's")
    assert notifications.send_digests(now=NOW) == 1
    assert "Today's" in mail.outbox[-1].body and "Yesterday's" not in mail.outbox[-1].body


def test_digest_twice_sends_nothing_twice(rep, teammate):
    notify(rep, 2)
    notify(teammate, 1)
    notifications.send_digests(now=NOW)
    notifications.send_digests(now=NOW)
    assert sorted(m.to[0] for m in mail.outbox) == sorted([rep.email, teammate.email])


def test_digest_skips_users_without_email(db):
    user = UserFactory(email="")
    notify(user, 1)
    assert notifications.send_digests(now=NOW) == 0
    assert Notification.objects.get().emailed_at is None


def test_digest_that_fails_to_send_is_retried_later(rep, monkeypatch):
    notify(rep, 1)
    from django.core.mail.backends.locmem import EmailBackend

    def refuse(self, messages):
        raise OSError("mail server down")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    assert notifications.send_digests(now=NOW) == 0
    monkeypatch.undo()
    assert Notification.objects.get().emailed_at is None
    assert notifications.send_digests(now=NOW) == 1


def test_digest_leaves_out_a_stalled_deal_reassigned_to_another_team(rep, outsider, stages):
    """The notice was made for the deal's owner; the deal left their sight before the
    digest went out, so the e-mail must not name it (it names only what they see now)."""
    hidden = slipping_deal(rep, stages["lead"], title="Quietly handed over")
    kept = slipping_deal(rep, stages["lead"], title="Still mine")
    stalled.refresh_flags(now=NOW)
    Deal.objects.filter(pk=hidden.pk).update(owner=outsider)

    assert notifications.send_digests(now=NOW) == 1

    (message,) = [m for m in mail.outbox if m.to == [rep.email]]
    assert "Still mine" in message.body
    assert "Quietly handed over" not in message.body
    assert not Notification.objects.filter(deal=hidden, emailed_at__isnull=False).exists()
    assert kept.notifications.filter(emailed_at__isnull=False).exists()


def test_digest_names_a_teammates_deal_a_manager_still_sees(manager, rep, stages):
    deal = slipping_deal(rep, stages["lead"], title="Team deal")
    Notification.objects.create(user=manager, deal=deal, kind="stalled", text="“Team deal”")

    assert notifications.send_digests(now=NOW) == 1

    (message,) = mail.outbox
    assert message.to == [manager.email] and "Team deal" in message.body


def test_digest_to_a_rep_who_changed_teams_leaves_out_the_old_teams_deals(
    rep, teammate, outsider, stages
):
    deal = slipping_deal(teammate, stages["lead"], title="Old team deal")
    Notification.objects.create(user=rep, deal=deal, kind="stalled", text="“Old team deal”")
    rep.team = outsider.team
    rep.save()

    assert notifications.send_digests(now=NOW) == 0

    assert mail.outbox == []


def test_digest_queries_do_not_grow_with_users(db, django_assert_max_num_queries):
    for _ in range(6):
        notify(UserFactory(), 3)
    # recipients, their notices, one UPDATE
    with django_assert_max_num_queries(3):
        assert notifications.send_digests(now=NOW) == 6


def test_stalled_rule_labels_are_in_the_notification_text(rep, stages):
    slipping_deal(rep, stages["lead"], expected_close_date=TODAY - timedelta(days=1))
    stalled.refresh_flags(now=NOW)
    texts = set(Notification.objects.values_list("text", flat=True))
    labels = {
        StalledRule.CLOSE_DATE_PASSED.label.lower(),
        StalledRule.CLOSE_DATE_SLIPPING.label.lower(),
    }
    assert {text.rsplit(": ", 1)[1] for text in texts} == labels


def test_bell_count_probes_each_notices_deal_rather_than_every_visible_deal(rep):
    """`deal_id IN (visible deals)` hashed the whole deals table on every page (tens of
    ms at 100k deals); an EXISTS probe per unread notice costs what the user has."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        notifications.unread_count(rep)
    (sql,) = [q["sql"] for q in queries.captured_queries]
    assert "EXISTS" in sql
    assert '"deals_notification"."deal_id" IN' not in sql
