"""Snoozing a stalled deal: a date and a reason, from the card or the deal page."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts import policy
from common.errors import DomainError, Refusal, RuleFailed
from common.refusals import presents
from deals import stalled
from deals.models import Deal, StalledFlag
from deals.views.board import changeable_deal, stalled_badges


class SnoozeForm(forms.Form):
    until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(max_length=200)


def _visible(request: HttpRequest, pk: int) -> Deal:
    """404 unless the user may see the deal (the service then checks they may edit it)."""
    flags = Prefetch("stalled_flags", queryset=StalledFlag.objects.order_by("rule"))
    return policy.visible_or_404(policy.deals(request.user).prefetch_related(flags), pk)


def _answer(request: HttpRequest, pk: int, *, error: str = "") -> HttpResponse:
    """htmx: the refreshed badge (422 with the message on a refusal), the board card's own
    when the board's snooze dialog sent the request; else back where the form was (the
    deal page), with the message as a flash."""
    if request.htmx:
        deal = _visible(request, pk)
        # Only an editor gets this far (the service refused everyone else with a 404).
        deal.can_move = True
        deal.flags = stalled_badges(deal)  # as the board's card has them
        today = timezone.localdate()
        context = {
            "deal": deal,
            "snooze_error": error,
            "today": today,
            "snooze_min": today + timedelta(days=1),
            # The page the badge sits on, not this endpoint, for a later plain submit.
            "next_url": request.POST.get("next", ""),
        }
        status = 422 if error else 200
        on_board = request.POST.get("board") == "1"
        template = "deals/board.html#stalled" if on_board else "deals/_stalled_badge.html"
        return TemplateResponse(request, template, context, status=status)
    if error:
        messages.error(request, error)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("deal_detail", args=[pk])
    return redirect(back)


def _refused(
    request: HttpRequest, error: DomainError, refusal: Refusal, pk: int
) -> HttpResponse | None:
    """A snooze that breaks a rule: the badge again with the reason (422). Not editable or
    not visible: the plain 404."""
    if isinstance(error, RuleFailed):
        return _answer(request, pk, error=refusal.message)
    return None


@login_required
@require_POST
@presents(_refused)
def snooze(request: HttpRequest, pk: int) -> HttpResponse:
    deal = changeable_deal(request, pk)
    form = SnoozeForm(request.POST)
    if not form.is_valid():
        return _answer(request, pk, error="Pick a date and give a reason.")
    stalled.snooze_deal(
        deal,
        by=request.user,
        until=form.cleaned_data["until"],
        reason=form.cleaned_data["reason"],
    )
    return _answer(request, pk)


@login_required
@require_POST
@presents(_refused)
def unsnooze(request: HttpRequest, pk: int) -> HttpResponse:
    deal = changeable_deal(request, pk)
    stalled.unsnooze_deal(deal, by=request.user)
    return _answer(request, pk)
