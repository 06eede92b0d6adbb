"""Writes for activities: log, schedule, edit, complete, delete. Rules in docstrings."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from accounts import policy
from common.errors import NotAllowed, NotVisible
from deals import events
from deals.models import Activity, Deal, EventSource
from deals.services import refusal_for

if TYPE_CHECKING:
    from accounts.models import User
    from contacts.models import Person
    from deals.models import Event


def _event(
    name: str, activity: Activity, deal: Deal, *, by: User, source: str = EventSource.FORM
) -> Event:
    return events.event(
        name,
        by=by,
        source=source,
        deal=deal,
        activity_id=activity.pk,
        type=activity.type,
    )


def _editable_deal(deal_id: int, by: User) -> Deal:
    deal = policy.changeable_deals(by).filter(pk=deal_id).first()
    if deal is None:
        raise refusal_for(deal_id, by)
    return deal


def log_activity(
    deal: Deal,
    *,
    by: User,
    type: str,
    subject: str,
    due_at: datetime | None = None,
    done: bool = False,
    note: str = "",
    person: Person | None = None,
    owner: User | None = None,
    source: str = EventSource.FORM,
) -> Activity:
    """Log a completed activity or schedule one, on a deal the user may edit; `owner`
    (whose activity it is) defaults to `by` (an automation assigns it to someone)."""
    _editable_deal(deal.pk, by)
    now = timezone.now()
    with transaction.atomic():
        activity = Activity.objects.create(
            deal=deal,
            owner=owner or by,
            type=type,
            subject=subject,
            note=note,
            person=person,
            due_at=due_at or (now if done else None),
            done=done,
            done_at=now if done else None,
        )
        # Logging activity can clear "no recent activity"/"no next step" flags.
        events.publish(_event("activity.created", activity, deal, by=by, source=source))
    return activity


def _own_activity(activity_id: int, by: User) -> Activity:
    """Activities are changed by their owner, or by whoever may edit the deal."""
    activity = (
        Activity.objects.filter(pk=activity_id, deal__in=policy.changeable_deals(by))
        .select_related("deal")
        .first()
    )
    if activity is None:
        visible = policy.activities(by).filter(pk=activity_id)
        if visible.exists():
            raise NotAllowed("You can only change activities on deals you own or manage.")
        raise NotVisible("Activity not found.")
    return activity


def complete_activity(activity_id: int, *, by: User) -> Activity:
    """Mark done (idempotent: completing twice keeps the first completion time)."""
    activity = _own_activity(activity_id, by)
    if not activity.done:
        with transaction.atomic():
            activity.done = True
            activity.done_at = timezone.now()
            activity.save(update_fields=["done", "done_at"])
            events.publish(_event("activity.completed", activity, activity.deal, by=by))
    return activity


def update_activity(
    activity_id: int, *, by: User, subject: str, type: str, due_at: datetime | None, note: str
) -> Activity:
    """Edit or reschedule. A done activity keeps its completion time."""
    activity = _own_activity(activity_id, by)
    activity.subject, activity.type, activity.due_at, activity.note = subject, type, due_at, note
    with transaction.atomic():
        activity.save(update_fields=["subject", "type", "due_at", "note"])
        events.publish(_event("activity.updated", activity, activity.deal, by=by))
    return activity


def delete_activity(activity_id: int, *, by: User) -> None:
    """Only the activity's own author may delete it (others' work is history)."""
    activity = _own_activity(activity_id, by)
    if activity.owner_id != by.pk:
        raise NotAllowed("You can only delete your own activities.")
    with transaction.atomic():
        published = _event("activity.deleted", activity, activity.deal, by=by)
        activity.delete()
        events.publish(published)
