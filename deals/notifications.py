"""Notifications: one in-app notice per new stalled flag, read marks, a daily e-mail digest."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts import policy
from accounts.models import User
from common.sql import insert_from
from deals.models import Notification, QuietDeal, StalledFlag, StalledRule
from stages.models import StageKind

log = logging.getLogger(__name__)

STALLED = "stalled"
STALLED_GROUP = "stalled_group"
DIGEST_LIMIT = 50


def stalled_notice_sql(
    *, deal: str, rule: str, title: str, flagged_at: str
) -> tuple[str, str, list[Any]]:
    """SQL for a stalled notice's text and its dedupe key over raw columns, and their params.

    Text: “<deal title>” is stalled: <reason>. Key: stalled:<deal>:<rule>:<day flagged>,
    one notice per flag even if a job runs twice. The one spelling of both, used by the
    stalled job's single statement (which announces flags as it writes them) and by
    `notify_new_flags`.
    """
    labels = " ".join("WHEN %s THEN %s" for _ in StalledRule.choices)
    label_params = [
        value for rule_, label in StalledRule.choices for value in (rule_, label.lower())
    ]
    tzname = timezone.get_current_timezone_name() if settings.USE_TZ else None
    day, day_params = connection.ops.datetime_cast_date_sql(flagged_at, (), tzname)
    text = f"(%s || {title} || %s || CASE {rule} {labels} ELSE {rule} END)"
    key = f"(%s || CAST({deal} AS varchar) || ':' || {rule} || ':' || CAST({day} AS varchar))"
    params = ["“", "” is stalled: ", *label_params, f"{STALLED}:", *day_params]
    return text, key, params


def notices_sql(
    flags_sql: str, flags_params: list[Any], *, now: datetime
) -> tuple[str, list[Any]]:
    """SELECT of the notices announcing the flags `flags_sql` yields, and its params.

    `flags_sql` has columns deal_id, rule, flagged_at, title, owner. One notice per flag,
    except for a recipient with more than STALLED_NOTICES_GROUPED_ABOVE flags in this run:
    one notice for all of them ("312 deals newly stalled"), opening their stalled deals
    on the board (`open_notification`). A large import or a new rule would otherwise
    write a notice per deal: a million to one manager. Columns: user, deal, kind, text,
    dedupe_key, created_at.
    """
    text_sql, key_sql, notice_params = stalled_notice_sql(
        deal="p.deal_id", rule="p.rule", title="p.title", flagged_at="p.flagged_at"
    )
    above = settings.STALLED_NOTICES_GROUPED_ABOVE
    sql = f"""
        SELECT p.owner, p.deal_id, %s, {text_sql}, {key_sql}, %s
        FROM (SELECT f.*, count(*) OVER (PARTITION BY f.owner) AS crowd FROM ({flags_sql}) f) p
        WHERE p.crowd <= %s
        UNION ALL
        SELECT f.owner, NULL, %s, CAST(count(*) AS varchar) || %s,
               %s || CAST(f.owner AS varchar) || ':' || %s, %s
        FROM ({flags_sql}) f
        GROUP BY f.owner
        HAVING count(*) > %s
    """
    params = [
        *(STALLED, *notice_params, now),
        *flags_params,
        above,
        *(STALLED_GROUP, " deals newly stalled", f"{STALLED_GROUP}:", now.isoformat(), now),
        *flags_params,
        above,
    ]
    return sql, params


def notify_new_flags(
    *, now: datetime | None = None, deal_ids: Collection[int] | None = None
) -> int:
    """Tell each deal's owner about every flag not yet notified; returns notices created.

    Two statements whatever the number of flags: an INSERT ... SELECT of notifications
    (the dedupe key makes a repeat a no-op) and an UPDATE marking the flags notified. A
    flag that persists keeps its mark, so it never notifies twice. Callers hold the
    stalled-job lock, so no flag appears between the two statements unannounced.
    """
    now = now or timezone.now()
    pending = StalledFlag.objects.filter(notified_at__isnull=True)
    if deal_ids is not None:
        pending = pending.filter(deal_id__in=deal_ids)
    # Imported deals' first flags are marked notified without a notice (see QuietDeal).
    announced = pending.exclude(Exists(QuietDeal.objects.filter(deal=OuterRef("deal_id"))))
    flags_sql, flags_params = (
        announced.order_by()
        .values("deal_id", "rule", "flagged_at", title=F("deal__title"), owner=F("deal__owner"))
        .query.sql_with_params()
    )
    select_sql, select_params = notices_sql(flags_sql, list(flags_params), now=now)
    with transaction.atomic():
        created = insert_from(
            Notification,
            ["user", "deal", "kind", "text", "dedupe_key", "created_at"],
            select_sql,
            select_params,
            ignore_conflicts=True,
        )
        pending.update(notified_at=now)
    return created


REMINDER = "reminder"
SUMMARY = "summary"


def tell_owners(counts: dict[int, int], *, by: User, text: str) -> int:
    """One notice per owner about a change someone else made to many of their deals at
    once (a bulk move, an import): `text` with {n} and {deals} filled in, e.g. "Ann moved
    {n} of your {deals} to Proposal." Never one notice per deal. The actor is not told.
    One INSERT; returns notices created."""
    notices = [
        Notification(
            user_id=owner,
            kind=SUMMARY,
            text=text.format(n=n, deals="deal" if n == 1 else "deals")[:300],
        )
        for owner, n in sorted(counts.items())
        if n and owner != by.pk
    ]
    Notification.objects.bulk_create(notices)
    return len(notices)


def remind_activities(*, now: datetime | None = None) -> int:
    """One bell notice per user a day about their open activities due today or overdue:
    "3 activities due today, 2 overdue". Returns notices created.

    Two statements whatever the number of activities: counts grouped by owner (less
    those already reminded today), one bulk INSERT; the dedupe key (reminder:<day>) makes
    a second run the same day a no-op. One summary instead of a
    notice per activity keeps the bell for things to act on.
    """
    from deals.models import Activity

    now = now or timezone.now()
    today = timezone.localdate(now)
    start = timezone.make_aware(datetime.combine(today, time.min))
    end = start + timedelta(days=1)
    key = f"{REMINDER}:{today.isoformat()}"
    reminded = Notification.objects.filter(user=OuterRef("owner_id"), dedupe_key=key)
    counts = (
        Activity.objects.filter(
            done=False, due_at__lt=end, deal__stage__kind=StageKind.OPEN, owner__is_active=True
        )
        .exclude(Exists(reminded))
        # Only activities on deals their owner may still see: the notice counts them and
        # "My activities" must show the same ones.
        .filter(policy.deal_visible_to_recipient("deal_id", "owner_id"))
        .values("owner_id")
        .annotate(
            due_today=Count("id", filter=Q(due_at__gte=start)),
            overdue=Count("id", filter=Q(due_at__lt=start)),
        )
        .order_by()
    )
    notices = [
        Notification(
            user_id=row["owner_id"],
            kind=REMINDER,
            text=_reminder_text(row["due_today"], row["overdue"]),
            dedupe_key=key,
            created_at=now,
        )
        for row in counts
    ]
    Notification.objects.bulk_create(notices, ignore_conflicts=True)
    return len(notices)


def _reminder_text(due_today: int, overdue: int) -> str:
    """ "You have 2 activities due today and 1 overdue." / "You have 1 overdue activity." """

    def activities(n: int) -> str:
        return f"activit{'y' if n == 1 else 'ies'}"

    parts = []
    if due_today:
        parts.append(f"{due_today} {activities(due_today)} due today")
    if overdue:
        parts.append(
            f"{overdue} overdue" if due_today else f"{overdue} overdue {activities(overdue)}"
        )
    return "You have " + " and ".join(parts) + ". See My activities."


def shown_to(user: User) -> QuerySet[Notification]:
    """`user`'s notifications about deals they may still see (the policy decides)."""
    return policy.notifications(user)


def unread_count(user: User) -> int:
    return shown_to(user).filter(read_at__isnull=True).count()


def mark_read(notification: Notification, *, by: User) -> None:
    """Mark one of `by`'s own notifications read (a second mark keeps the first time)."""
    Notification.objects.filter(pk=notification.pk, user=by, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def mark_all_read(*, by: User) -> int:
    """Mark every unread notification of `by` read, in one statement."""
    return Notification.objects.filter(user=by, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def digest_recipients(now: datetime) -> QuerySet[User]:
    """Active users with an e-mail address, unread notices not yet mailed, no digest today."""
    start_of_day = timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))
    mailed_today = Notification.objects.filter(user=OuterRef("pk"), emailed_at__gte=start_of_day)
    waiting = policy.sendable_notifications(
        Notification.objects.filter(
            user=OuterRef("pk"), read_at__isnull=True, emailed_at__isnull=True
        )
    )
    return (
        User.objects.filter(is_active=True)
        .exclude(email="")
        .filter(Exists(waiting))
        .exclude(Exists(mailed_today))
    )


def _digest(user: User, notices: list[Notification], link: str) -> EmailMessage:
    count = len(notices)
    lines = [f"Hello {user.display_name},", "", f"{count} thing(s) need your attention:", ""]
    lines += [f"- {n.text}" for n in notices[:DIGEST_LIMIT]]
    if count > DIGEST_LIMIT:
        lines.append(f"… and {count - DIGEST_LIMIT} more.")
    lines += ["", f"See them all: {link}"]
    return EmailMessage(
        subject=f"Pipeline CRM: {count} deal notification(s)",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    )


def send_digests(*, now: datetime | None = None) -> int:
    """E-mail each user their unread, unmailed notifications, at most once per local day.

    A fixed number of queries: the recipients, their pending notices, one UPDATE marking
    what was sent. A failed send leaves that user's notices unmarked for the next run.
    Returns the number of e-mails sent.
    """
    now = now or timezone.now()
    recipients = {user.pk: user for user in digest_recipients(now)}
    notices: dict[int, list[Notification]] = defaultdict(list)
    # Each notice names its deal: only those its recipient may see today are sent.
    pending = policy.sendable_notifications(
        Notification.objects.filter(
            user_id__in=list(recipients), read_at__isnull=True, emailed_at__isnull=True
        )
    ).order_by("user_id", "-created_at", "-id")
    for notice in pending:
        notices[notice.user_id].append(notice)
    if not notices:
        return 0
    link = f"{settings.SITE_URL.rstrip('/')}{reverse('notifications')}"
    newest = max(n.pk for items in notices.values() for n in items)
    mailed: list[int] = []
    with mailers.default as connection:
        for user_id, items in notices.items():
            try:
                connection.send_messages([_digest(recipients[user_id], items, link)])
            except Exception:
                log.warning("digest for user %s failed; will retry", user_id, exc_info=True)
                continue
            mailed.append(user_id)
    # Bounded by the newest notice read above, so one arriving meanwhile is not marked unsent.
    # Notices not sent (their deal is hidden from the recipient now) stay unmailed.
    policy.sendable_notifications(
        Notification.objects.filter(
            user_id__in=mailed, read_at__isnull=True, emailed_at__isnull=True, pk__lte=newest
        )
    ).update(emailed_at=now)
    return len(mailed)
