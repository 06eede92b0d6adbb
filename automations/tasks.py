"""Background work for automations. Tasks take ids and are safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.urls import reverse
from django.utils import timezone

from automations import services
from deals.models import Notification

log = logging.getLogger(__name__)


@shared_task(name="automations.execute", acks_late=True)
def execute(run_ids: list[int], outbox_id: int | None = None) -> int:
    """Run each pending run (claimed first: a run done already, or running elsewhere, is
    passed over); returns how many ran here."""
    return sum(1 for pk in run_ids if services.execute_run(pk) is not None)


@shared_task(name="automations.scan", acks_late=True)
def scan(outbox_id: int | None = None) -> int:
    """Find the deals due for time-based rules (set-based) and run them, each once."""
    return services.scan_time_based()


@shared_task(name="automations.prune_runs", acks_late=True)
def prune_runs(outbox_id: int | None = None) -> int:
    """Delete run log entries past their retention (set-based; safe to run twice)."""
    return services.prune_runs()


@shared_task(name="automations.email_notices", acks_late=True)
def email_notices(notification_ids: list[int], outbox_id: int | None = None) -> int:
    """E-mail an automation's notices to their users with the existing mailer; each notice
    is mailed once (marked when sent), so a retry sends only what is left."""
    pending = Notification.objects.filter(
        pk__in=notification_ids, emailed_at__isnull=True
    ).select_related("user")
    sent = 0
    with mailers.default as connection:
        for notice in pending:
            if not notice.user.email or not notice.user.is_active:
                continue
            message = EmailMessage(
                subject="Pipeline CRM: " + notice.text[:120],
                body=f"{notice.text}\n\n{settings.SITE_URL.rstrip('/')}{reverse('notifications')}",
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[notice.user.email],
            )
            try:
                connection.send_messages([message])
            except Exception:
                log.warning("automation e-mail %s failed; will retry", notice.pk, exc_info=True)
                raise
            Notification.objects.filter(pk=notice.pk).update(emailed_at=timezone.now())
            sent += 1
    return sent
