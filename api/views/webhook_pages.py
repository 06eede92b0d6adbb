"""The webhooks settings page: subscribe, see each endpoint's delivery log, redeliver."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from accounts import policy
from common.errors import DomainError
from webhooks import services
from webhooks.models import Delivery


class EndpointForm(forms.Form):
    url = forms.URLField(max_length=500, label="HTTPS address", assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=[(name, name) for name in ["deal.*", "activity.*", *services.EVENT_TYPES]],
        widget=forms.CheckboxSelectMultiple,
    )
    description = forms.CharField(max_length=200, required=False)


def _subscriber(request: HttpRequest) -> None:
    if not policy.can_manage_webhooks(request.user):
        raise Http404("Webhooks are for managers and admins.")


def _page(
    request: HttpRequest, form: EndpointForm, *, secret: str = "", status: int = 200
) -> HttpResponse:
    endpoints = services.endpoints_for(request.user).select_related("owner")
    context = {"form": form, "endpoints": endpoints, "secret": secret}
    return TemplateResponse(request, "api/webhooks.html", context, status=status)


@login_required
@require_GET
def webhook_list(request: HttpRequest) -> HttpResponse:
    _subscriber(request)
    return _page(request, EndpointForm())


@login_required
@require_POST
def webhook_create(request: HttpRequest) -> HttpResponse:
    _subscriber(request)
    form = EndpointForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        new = services.create_endpoint(by=request.user, **form.cleaned_data)
    except DomainError as error:
        form.add_error("url", error.message)
        return _page(request, form, status=error.status)
    return _page(request, EndpointForm(), secret=new.secret, status=201)


@login_required
@require_GET
def webhook_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    _subscriber(request)
    endpoint = services.endpoints_for(request.user).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise Http404("Webhook endpoint not found.")
    deliveries = Delivery.objects.filter(endpoint=endpoint).prefetch_related("log")[:100]
    context = {"endpoint": endpoint, "deliveries": deliveries}
    return TemplateResponse(request, "api/webhook_detail.html", context)


@login_required
@require_POST
def webhook_toggle(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    _subscriber(request)
    active = request.POST.get("is_active") == "1"
    services.update_endpoint(endpoint_id, by=request.user, is_active=active)
    messages.success(request, "Webhook enabled." if active else "Webhook disabled.")
    return redirect("api_webhook", endpoint_id=endpoint_id)


@login_required
@require_POST
def webhook_delete(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    _subscriber(request)
    services.delete_endpoint(endpoint_id, by=request.user)
    messages.success(request, "Webhook deleted.")
    return redirect("api_webhooks")


@login_required
@require_POST
def webhook_redeliver(request: HttpRequest, delivery_id: int) -> HttpResponse:
    _subscriber(request)
    delivery = services.redeliver(delivery_id, by=request.user)
    messages.success(request, "Sent again.")
    return redirect("api_webhook", endpoint_id=delivery.endpoint_id)
