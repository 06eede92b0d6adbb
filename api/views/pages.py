"""The web pages of the API: its documentation and the user's personal tokens."""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts import policy
from api import tokens
from api.models import ApiToken, TokenScope
from common.errors import DomainError

# The vendored Swagger UI (static/vendor/swagger-ui/VERSION says which).
SWAGGER_UI_VERSION = "5.35.0"


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    """Swagger UI over /api/v1/openapi.json, from vendored files (no CDN, no inline script)."""
    return TemplateResponse(request, "api/docs.html", {"version": SWAGGER_UI_VERSION})


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
    expires_on = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Expires on"
    )


@login_required
@require_GET
def token_list(request: HttpRequest) -> HttpResponse:
    return _page(request, TokenForm())


def _page(
    request: HttpRequest, form: TokenForm, *, secret: str = "", status: int = 200
) -> HttpResponse:
    mine = policy.api_tokens(request.user, ApiToken.objects.all())
    others = (
        policy.revocable_tokens(request.user, ApiToken.objects.usable())
        .exclude(user=request.user)
        .select_related("user")
    )
    context = {"form": form, "tokens": mine, "others": others, "secret": secret}
    return TemplateResponse(request, "api/tokens.html", context, status=status)


@login_required
@require_POST
def create_token(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    expires_on = form.cleaned_data["expires_on"]
    expires_at = None
    if expires_on is not None:
        expires_at = timezone.make_aware(datetime.combine(expires_on, time.min))
    try:
        new = tokens.create_token(
            by=request.user,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            expires_at=expires_at,
        )
    except DomainError as error:
        form.add_error(None, error.message)
        return _page(request, form, status=400)
    return _page(request, TokenForm(), secret=new.secret, status=201)


@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = tokens.revoke_token(token_id, by=request.user)
    except DomainError as error:
        return HttpResponse(error.message, status=error.status, content_type="text/plain")
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens")
