"""Webhook subscriptions and deliveries: who may subscribe, fan-out, signed sending, retries.

Rules:
- admins subscribe to events about every deal, managers about their teams' deals (what
  `accounts.policy.webhook_deals(owner)` answers when the delivery is sent); reps cannot;
- each (endpoint, event) is one Delivery, sent at least once with the event's stable id
  as `webhook-id`, retried with exponential back-off for more than 24 hours;
- an endpoint failing without a break for WEBHOOKS_DISABLE_AFTER_FAILURES attempts over
  at least WEBHOOKS_DISABLE_AFTER_HOURS is disabled and its owner notified.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts import policy
from common import outbox
from common.errors import BadInput, NotAllowed, NotVisible
from deals.models import Notification
from webhooks import http, signing
from webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint

if TYPE_CHECKING:
    from accounts.models import User

DELIVER_TASK = "webhooks.deliver"
# Wait after the 1st, 2nd, … failed attempt (Standard Webhooks' schedule): 27.6 h in all.
BACKOFF = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
]
# A claimed delivery is not claimed again for this long (a worker killed mid-send).
LEASE = timedelta(minutes=2)
ROTATION_OVERLAP = timedelta(hours=24)
EVENT_TYPES = [
    "deal.created",
    "deal.updated",
    "deal.moved",
    "deal.won",
    "deal.lost",
    "deal.reopened",
    "deal.reassigned",
    "deal.deleted",
    "deal.stalled",
    "deal.unstalled",
    "deal.snoozed",
    "deal.unsnoozed",
    "activity.created",
    "activity.updated",
    "activity.completed",
    "activity.deleted",
]
MAX_ENDPOINTS_PER_USER = 20


class EventLike(Protocol):
    """What webhooks need of an event of the log (deals.Event)."""

    @property
    def pk(self) -> Any: ...

    name: str
    at: datetime
    deal_id: int | None
    payload: dict[str, Any]
    source: str


def endpoints_for(user: User) -> QuerySet[Endpoint]:
    """Endpoints `user` may see and manage (the policy: admins all, managers their own)."""
    return policy.webhook_endpoints(user, Endpoint.objects.all())


def _clean_events(names: Iterable[str]) -> list[str]:
    names = sorted({str(n).strip() for n in names})
    if not names:
        raise BadInput("Subscribe to at least one event type.")
    for name in names:
        if not any(fnmatch.fnmatchcase(known, name) for known in EVENT_TYPES):
            raise BadInput(f"Unknown event type: {name[:40]}.")
    return names


def _clean_url(url: str) -> str:
    url = url.strip()
    if len(url) > 500:
        raise BadInput("The address is too long.")
    try:
        http.check_url(url)
    except http.Refused as refused:
        raise BadInput(str(refused)) from None
    return url


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: Endpoint
    secret: str  # shown once


def create_endpoint(
    *, by: User, url: str, events: Iterable[str], description: str = ""
) -> NewEndpoint:
    """Subscribe an HTTPS address; the address must resolve to public addresses only."""
    if not policy.can_manage_webhooks(by):
        raise NotAllowed("Only managers and admins can subscribe webhooks.")
    if Endpoint.objects.filter(owner=by).count() >= MAX_ENDPOINTS_PER_USER:
        raise BadInput("Too many webhook endpoints; delete one first.")
    secret = signing.new_secret()
    endpoint = Endpoint.objects.create(
        owner=by,
        url=_clean_url(url),
        events=_clean_events(events),
        description=description.strip()[:200],
        secret=secret,
    )
    return NewEndpoint(endpoint, secret)


def _own(endpoint_id: int, by: User) -> Endpoint:
    endpoint = endpoints_for(by).select_for_update().filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotVisible("Webhook endpoint not found.")
    return endpoint


def update_endpoint(endpoint_id: int, *, by: User, **changes: Any) -> Endpoint:
    """Change address, events, description or active state; re-enabling clears the streak."""
    with transaction.atomic():
        endpoint = _own(endpoint_id, by)
        if "url" in changes:
            endpoint.url = _clean_url(changes["url"])
        if "events" in changes:
            endpoint.events = _clean_events(changes["events"])
        if "description" in changes:
            endpoint.description = str(changes["description"]).strip()[:200]
        if "is_active" in changes:
            endpoint.is_active = bool(changes["is_active"])
            if endpoint.is_active:
                endpoint.disabled_reason = ""
                endpoint.failure_streak = 0
                endpoint.failing_since = None
        endpoint.save()
    return endpoint


def rotate_secret(endpoint_id: int, *, by: User) -> NewEndpoint:
    """A new secret signs from now on; the old one signs too for ROTATION_OVERLAP."""
    with transaction.atomic():
        endpoint = _own(endpoint_id, by)
        secret = signing.new_secret()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = timezone.now() + ROTATION_OVERLAP
        endpoint.secret = secret
        endpoint.save()
    return NewEndpoint(endpoint, secret)


def delete_endpoint(endpoint_id: int, *, by: User) -> None:
    with transaction.atomic():
        _own(endpoint_id, by).delete()


def fan_out(events: Iterable[EventLike]) -> list[int]:
    """One pending Delivery per (active endpoint that wants it, event); sent after commit.

    Runs in the event consumer's transaction: the deliveries and the consumer's receipt
    commit together, so each event fans out once. Visibility is checked at send time.
    """
    events = list(events)
    endpoints = list(Endpoint.objects.filter(is_active=True).select_related("owner"))
    rows = [
        Delivery(
            endpoint=endpoint,
            event_id=str(event.pk),
            event_name=event.name,
            event_at=event.at,
            deal_id=event.deal_id,
            data={"source": event.source, **event.payload},
        )
        for event in events
        for endpoint in endpoints
        if policy.can_manage_webhooks(endpoint.owner)
        and any(fnmatch.fnmatchcase(event.name, p) for p in endpoint.events)
    ]
    if not rows:
        return []
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    ids = list(
        Delivery.objects.filter(
            event_id__in=[str(e.pk) for e in events], status=DeliveryStatus.PENDING
        ).values_list("pk", flat=True)
    )
    if ids:
        outbox.enqueue(DELIVER_TASK, delivery_ids=ids)
    return ids


def _deal_summary(deal_id: int | None, owner: User) -> dict[str, Any] | None:
    """The deal as the subscriber may see it now, or None when they may not."""
    if deal_id is None:
        return None
    deal = (
        policy.webhook_deals(owner)
        .filter(pk=deal_id)
        .values(
            "id",
            "title",
            "amount",
            "currency",
            "expected_close_date",
            "owner_id",
            "pipeline_id",
            "stage_id",
            "stage__kind",
            "version",
            "updated_at",
        )
        .first()
    )
    if deal is None:
        return None
    deal["status"] = deal.pop("stage__kind")
    return json.loads(json.dumps(deal, default=str))


def _saw_deleted(delivery: Delivery) -> bool:
    """A deal.deleted delivery goes to subscribers who could see the deal: the deal is
    gone, but the rule is one on its owner, named in the event."""
    if delivery.event_name != "deal.deleted":
        return False
    return policy.sees_deals_owned_by(delivery.endpoint.owner, delivery.data.get("owner_id"))


def body_of(delivery: Delivery, deal: dict[str, Any] | None) -> bytes:
    data = {"event_id": delivery.event_id, **delivery.data}
    if deal is not None:
        data["deal"] = deal
    message = {
        "type": delivery.event_name,
        "timestamp": delivery.event_at.isoformat(),
        "data": data,
    }
    return json.dumps(message, separators=(",", ":"), default=str).encode()


def _claim(delivery_id: int, now: datetime) -> Delivery | None:
    """Take a due pending delivery for LEASE; None if it is not due or someone has it."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True)
            .select_related("endpoint__owner")
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if delivery is None:
            return None
        delivery.next_attempt_at = now + LEASE
        delivery.attempts += 1
        delivery.save(update_fields=["next_attempt_at", "attempts"])
    return delivery


def deliver(delivery_id: int) -> str | None:
    """Send one delivery if it is due; record the attempt; schedule a retry or give up.

    Safe to run twice and after a killed worker: a claimed delivery is leased, and its
    lease expires into a retry, never into a lost event.
    """
    now = timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    deal = _deal_summary(delivery.deal_id, endpoint.owner)
    if (
        not endpoint.is_active
        or not policy.can_manage_webhooks(endpoint.owner)
        or (delivery.deal_id is not None and deal is None and not _saw_deleted(delivery))
    ):
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SKIPPED)
        return DeliveryStatus.SKIPPED
    body = body_of(delivery, deal)
    secrets_ = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets_.append(endpoint.previous_secret)
    headers = signing.headers(secrets_, delivery.event_id, int(now.timestamp()), body)
    outcome = http.post(endpoint.url, body, headers)
    return _record(delivery, outcome)


def _record(delivery: Delivery, outcome: http.Outcome) -> str:
    now = timezone.now()
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            ok=outcome.ok,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            response_excerpt=outcome.excerpt[:500],
            error=outcome.error[:300],
        )
        endpoint = Endpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        if outcome.ok:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.delivered_at = now
            endpoint.failure_streak = 0
            endpoint.failing_since = None
        else:
            if delivery.attempts > len(BACKOFF):
                delivery.status = DeliveryStatus.FAILED
            else:
                delivery.next_attempt_at = now + BACKOFF[delivery.attempts - 1]
            endpoint.failure_streak = F("failure_streak") + 1
            endpoint.failing_since = endpoint.failing_since or now
        delivery.save(update_fields=["status", "delivered_at", "next_attempt_at"])
        endpoint.save(update_fields=["failure_streak", "failing_since"])
        endpoint.refresh_from_db(fields=["failure_streak"])
        if not outcome.ok:
            _disable_if_failing(endpoint, now)
    return delivery.status


def _disable_if_failing(endpoint: Endpoint, now: datetime) -> None:
    failing_for = now - (endpoint.failing_since or now)
    if (
        not endpoint.is_active
        or endpoint.failure_streak < settings.WEBHOOKS_DISABLE_AFTER_FAILURES
    ):
        return
    if failing_for < timedelta(hours=settings.WEBHOOKS_DISABLE_AFTER_HOURS):
        return
    endpoint.is_active = False
    endpoint.disabled_reason = f"Disabled after {endpoint.failure_streak} failed attempts."
    endpoint.save(update_fields=["is_active", "disabled_reason"])
    Notification.objects.create(
        user=endpoint.owner,
        kind="webhook_disabled",
        text=f"Webhook {endpoint.url[:150]} was disabled: every delivery failed for "
        f"{int(failing_for.total_seconds() // 3600)} h. Fix it and re-enable it.",
    )


def redeliver(delivery_id: int, *, by: User) -> Delivery:
    """Send a delivery again now (its log keeps the earlier attempts)."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update()
            .filter(pk=delivery_id, endpoint__in=endpoints_for(by))
            .first()
        )
        if delivery is None:
            raise NotVisible("Delivery not found.")
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = timezone.now()
        delivery.attempts = 0
        delivery.save(update_fields=["status", "next_attempt_at", "attempts"])
        outbox.enqueue(DELIVER_TASK, delivery_ids=[delivery.pk])
    return delivery


def due_deliveries(limit: int = 500) -> list[int]:
    return list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def send_one(
    endpoint: Endpoint, *, message_id: str, name: str, deal_id: int | None, data: dict[str, Any]
) -> Delivery:
    """Queue one signed delivery of a message that is not an event of the log (an
    automation's "send a webhook"), in the caller's transaction; sent after commit, with
    its retries and log like any other. `message_id` is its stable `webhook-id`: the
    same id queued twice is one delivery."""
    delivery, created = Delivery.objects.get_or_create(
        endpoint=endpoint,
        event_id=message_id[:64],
        defaults={
            "event_name": name[:40],
            "event_at": timezone.now(),
            "deal_id": deal_id,
            "data": data,
        },
    )
    if created:
        outbox.enqueue(DELIVER_TASK, delivery_ids=[delivery.pk])
    return delivery
