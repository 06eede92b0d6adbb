"""Writes for activities: log, schedule, edit, complete, delete. Rules in docstrings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Max, OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest
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


def activity_times() -> dict[str, Subquery]:
    """`Deal.last_activity_at` and `Deal.next_activity` recounted from the deal's
    activities, as values for `QuerySet.update`: the latest time an activity was logged
    (created) or completed, and the open activity a card shows as next."""
    latest = (
        Activity.objects.filter(deal=OuterRef("pk"))
        .values("deal")
        # SQLite's max() of a NULL is NULL: an open activity counts by its creation.
        .annotate(at=Max(Greatest("created_at", Coalesce("done_at", "created_at"))))
        .values("at")
    )
    # In the order a card picks its next activity (`deals.queries.with_next_activity`).
    following = (
        Activity.objects.filter(deal=OuterRef("pk"), done=False)
        .order_by("due_at", "id")
        .values("pk")[:1]
    )
    return {"last_activity_at": Subquery(latest), "next_activity": Subquery(following)}


def lock_deals(deal_ids: Iterable[int]) -> list[int]:
    """Lock the deals' rows (`SELECT … FOR UPDATE`, in id order, 500 at a time) and
    return their ids in that order.

    Every write of activities takes its deals' locks first, before it touches an
    activity row: `delete_deal` and `complete_and_move` lock the deal and then write its
    activities, so an activity write that locked the activity first and the deal second
    could deadlock with them.
    """
    ids = sorted(set(deal_ids))
    for start in range(0, len(ids), 500):
        list(
            Deal.objects.filter(pk__in=ids[start : start + 500])
            .order_by("pk")
            .select_for_update()
            .values("pk")
        )
    return ids


def refresh_activity_times(deal_ids: Iterable[int], *, locked: bool = False) -> None:
    """Recount the deals' activity times (`activity_times`); every write of activities
    calls it in its transaction.

    A recount, not an increment, so it is right whatever was written and in whatever
    order (imports write the past); one UPDATE per 500 deals. The deals are locked first
    (`lock_deals`; `locked=True` when the caller already holds them): a writer that
    waited for another's lock recounts after that one committed, and so sees its
    activities (an UPDATE's subqueries read the snapshot it started with).
    """
    ids = sorted(set(deal_ids)) if locked else lock_deals(deal_ids)
    for start in range(0, len(ids), 500):
        # Stamped as written too: the automations scan reads activities that fell due
        # before its last pass on deals written since (an activity logged overdue).
        Deal.objects.filter(pk__in=ids[start : start + 500]).update(
            **activity_times(), updated_at=timezone.now()
        )


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
        lock_deals([deal.pk])
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
        refresh_activity_times([deal.pk], locked=True)
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


def _locked(activity: Activity) -> Activity:
    """The activity re-read under its deal's lock and its own, in that order (see
    `lock_deals`); in a transaction. Gone, or moved to another deal since it was
    checked: not found."""
    lock_deals([activity.deal_id])
    fresh = (
        Activity.objects.select_for_update()
        .filter(pk=activity.pk, deal_id=activity.deal_id)
        .first()
    )
    if fresh is None:
        raise NotVisible("Activity not found.")
    fresh.deal = activity.deal
    return fresh


def complete_activity(activity_id: int, *, by: User) -> Activity:
    """Mark done (idempotent: completing twice keeps the first completion time)."""
    activity = _own_activity(activity_id, by)
    if activity.done:
        return activity
    with transaction.atomic():
        activity = _locked(activity)
        if not activity.done:
            activity.done = True
            activity.done_at = timezone.now()
            activity.save(update_fields=["done", "done_at"])
            refresh_activity_times([activity.deal_id], locked=True)
            events.publish(_event("activity.completed", activity, activity.deal, by=by))
    return activity


def update_activity(
    activity_id: int, *, by: User, subject: str, type: str, due_at: datetime | None, note: str
) -> Activity:
    """Edit or reschedule. A done activity keeps its completion time."""
    activity = _own_activity(activity_id, by)
    with transaction.atomic():
        activity = _locked(activity)
        activity.subject, activity.type, activity.due_at = subject, type, due_at
        activity.note = note
        activity.save(update_fields=["subject", "type", "due_at", "note"])
        refresh_activity_times([activity.deal_id], locked=True)
        events.publish(_event("activity.updated", activity, activity.deal, by=by))
    return activity


def delete_activity(activity_id: int, *, by: User) -> None:
    """Only the activity's own author may delete it (others' work is history)."""
    activity = _own_activity(activity_id, by)
    if activity.owner_id != by.pk:
        raise NotAllowed("You can only delete your own activities.")
    with transaction.atomic():
        activity = _locked(activity)
        published = _event("activity.deleted", activity, activity.deal, by=by)
        deal_id = activity.deal_id
        activity.delete()
        refresh_activity_times([deal_id], locked=True)
        events.publish(published)
