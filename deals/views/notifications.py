"""The notification list, read marks, and the way from a notification to its deal."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from deals import notifications
from deals.models import Notification

PAGE_SIZE = 30


def _own(request: HttpRequest, pk: int) -> Notification:
    """One of the user's own notifications; anyone else's answers 404."""
    return get_object_or_404(notifications.shown_to(request.user), pk=pk)


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    unread_only = request.GET.get("unread") == "1"
    items = notifications.shown_to(request.user)
    if unread_only:
        items = items.filter(read_at__isnull=True)
    page = Paginator(items.order_by("-created_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {"page": page, "unread_only": unread_only}
    return TemplateResponse(request, "deals/notifications.html", context)


@login_required
@require_POST
def mark_read(request: HttpRequest, pk: int) -> HttpResponse:
    notification = _own(request, pk)
    notifications.mark_read(notification, by=request.user)
    if request.htmx:
        notification.refresh_from_db(fields=["read_at"])
        context = {"notification": notification, "bell_oob": True}
        return TemplateResponse(request, "deals/notifications.html#item", context)
    return redirect("notifications")


@login_required
@require_POST
def mark_all_read(request: HttpRequest) -> HttpResponse:
    notifications.mark_all_read(by=request.user)
    return redirect("notifications")


@login_required
@require_POST
def open_notification(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark read and go to the deal (its page answers 404 if it is no longer visible)."""
    notification = _own(request, pk)
    notifications.mark_read(notification, by=request.user)
    if notification.kind == notifications.STALLED_GROUP:
        return redirect(f"{reverse('board')}?owner=me&stalled=1")
    if notification.kind == notifications.REMINDER:
        return redirect("my_activities")
    if notification.deal_id is None:
        return redirect("notifications")
    return redirect("deal_detail", pk=notification.deal_id)
