"""Stalled deals: the five rules of DESIGN.md, computed set-based, and snoozing.

Each rule is a queryset of the open, unsnoozed deals for which it fires. The job turns
each into two statements over all deals at once: one INSERT ... SELECT adding the flags
that are new and one DELETE removing the flags whose cause went away (activity logged,
stage changed, close date moved, deal closed or snoozed). Nothing loops over deals in
Python, and a second run finds nothing to add or delete.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.utils import timezone

from deals import outbox
from deals.models import Activity, Deal, FieldChange, StalledFlag, StalledRule
from deals.sql import DaysBefore, hold_job_lock, insert_difference
from stages.models import StageKind

if TYPE_CHECKING:
    from accounts.models import User

JOB_LOCK = "deals.stalled"
MAX_SNOOZE_DAYS = 90


class SnoozeError(Exception):
    """A snooze request that breaks a rule; the message is fit to show the user."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def candidates(today: date) -> QuerySet[Deal]:
    """Deals the rules look at: open, and not snoozed (a snooze lasts through its date)."""
    return Deal.objects.filter(stage__kind=StageKind.OPEN).exclude(snoozed_until__gte=today)


def firing(rule: str, now: datetime) -> QuerySet[Deal]:
    """The deals for which `rule` fires at `now`, as one queryset (no rows are loaded)."""
    today = timezone.localdate(now)
    deals = candidates(today)
    match rule:
        case StalledRule.IN_STAGE_TOO_LONG:
            # `Deal.days_in_stage` counts whole days, so "more than R days" starts at R + 1.
            entered_before = DaysBefore(Value(now), F("stage__rotting_days") + 1)
            return deals.filter(stage__rotting_days__gt=0, stage_entered_at__lte=entered_before)
        case StalledRule.NO_RECENT_ACTIVITY:
            cutoff = now - timedelta(days=settings.STALLED_NO_ACTIVITY_DAYS)
            recent = Activity.objects.filter(deal=OuterRef("pk")).filter(
                Q(done_at__gt=cutoff) | Q(created_at__gt=cutoff)
            )
            # A deal younger than the window has not gone quiet yet.
            return deals.filter(created_at__lte=cutoff).exclude(Exists(recent))
        case StalledRule.NO_NEXT_STEP:
            scheduled = Activity.objects.filter(deal=OuterRef("pk"), done=False, due_at__gte=now)
            return deals.exclude(Exists(scheduled))
        case StalledRule.CLOSE_DATE_PASSED:
            return deals.filter(expected_close_date__lt=today)
        case StalledRule.CLOSE_DATE_SLIPPING:
            return deals.filter(close_date_pushes__gte=settings.STALLED_SLIPPING_PUSHES)
    raise ValueError(f"unknown stalled rule {rule!r}")


@dataclass
class RefreshResult:
    """What one run changed: flags added and cleared per rule, notifications created."""

    added: dict[str, int] = field(default_factory=dict)
    cleared: dict[str, int] = field(default_factory=dict)
    notified: int = 0

    @property
    def changed(self) -> int:
        return sum(self.added.values()) + sum(self.cleared.values()) + self.notified


def refresh_flags(
    *, now: datetime | None = None, deal_ids: Collection[int] | None = None
) -> RefreshResult:
    """Bring the stored flags in line with the rules, then notify owners of new flags.

    Two statements per rule (clear, then add), whatever the number of deals; `deal_ids`
    narrows the same statements to a few deals (after a move or an unsnooze). Runs in one
    transaction under a job lock, so concurrent runs queue instead of racing, and a
    second run changes nothing. Notifications: see `deals.notifications.notify_new_flags`.
    """
    from deals.notifications import notify_new_flags

    now = now or timezone.now()
    result = RefreshResult()
    with transaction.atomic():
        hold_job_lock(JOB_LOCK)
        for rule in StalledRule.values:
            deals = firing(rule, now)
            flags = StalledFlag.objects.filter(rule=rule)
            if deal_ids is not None:
                deals = deals.filter(pk__in=deal_ids)
                flags = flags.filter(deal_id__in=deal_ids)
            still_firing = Exists(deals.filter(pk=OuterRef("deal_id")))
            result.cleared[rule], _ = flags.exclude(still_firing).delete()
            # The constant columns are the same on both sides, so EXCEPT compares deals.
            result.added[rule] = insert_difference(
                StalledFlag,
                ["deal", "rule", "flagged_at"],
                deals.values_list("pk", Value(rule), Value(now)),
                flags.values_list("deal_id", Value(rule), Value(now)),
                ignore_conflicts=True,
            )
        result.notified = notify_new_flags(now=now, deal_ids=deal_ids)
    return result


class SnoozeNotAllowed(SnoozeError):
    """The deal does not exist or `by` may not edit it (answered as 404)."""

    status = 404


def _editable(deal_id: int, by: User) -> Deal:
    # Lock only the deal row: the permission joins may reach the nullable side of a join.
    lock = {"of": ("self",)} if connection.features.has_select_for_update_of else {}
    try:
        return Deal.objects.editable_by(by).select_for_update(**lock).get(pk=deal_id)
    except Deal.DoesNotExist:
        raise SnoozeNotAllowed("Deal not found.") from None


def snooze_deal(deal: Deal, *, by: User, until: date, reason: str) -> Deal:
    """Silence a deal's stalled flags through `until` (inclusive), with a written reason.

    Only someone who may edit the deal may snooze it. The date must be after today and
    at most MAX_SNOOZE_DAYS ahead; the reason is required. The deal's flags go at once
    (a snoozed deal is not flagged) and the snooze is recorded on the deal's timeline.
    The version is left alone: a snooze is not an edit of the deal's content, and cards
    already on screen must stay movable.
    """
    reason = reason.strip()
    today = timezone.localdate()
    if not reason:
        raise SnoozeError("Say why the deal is snoozed.")
    if until <= today:
        raise SnoozeError("Snooze until a date after today.")
    if until > today + timedelta(days=MAX_SNOOZE_DAYS):
        raise SnoozeError(f"Snooze for at most {MAX_SNOOZE_DAYS} days.")
    with transaction.atomic():
        locked = _editable(deal.pk, by)
        old = f"{locked.snoozed_until or ''} {locked.snooze_reason}".strip()
        locked.snoozed_until = until
        locked.snooze_reason = reason[:200]
        locked.save(update_fields=["snoozed_until", "snooze_reason", "updated_at"])
        StalledFlag.objects.filter(deal=locked).delete()
        FieldChange.objects.create(
            deal=locked,
            field="snoozed_until",
            old_value=old[:500],
            new_value=f"{until.isoformat()} ({locked.snooze_reason})"[:500],
            by=by,
        )
    return locked


def unsnooze_deal(deal: Deal, *, by: User) -> Deal:
    """End a snooze early. The rules run again for the deal right after commit."""
    with transaction.atomic():
        locked = _editable(deal.pk, by)
        if locked.snoozed_until is None:
            return locked
        old = f"{locked.snoozed_until} {locked.snooze_reason}".strip()
        locked.snoozed_until = None
        locked.snooze_reason = ""
        locked.save(update_fields=["snoozed_until", "snooze_reason", "updated_at"])
        FieldChange.objects.create(
            deal=locked, field="snoozed_until", old_value=old[:500], new_value="", by=by
        )
        outbox.enqueue("deals.refresh_stalled", deal_id=locked.pk)
    return locked
