"""Admin-only security audit log: filterable, exportable."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from accounts import audit, policy
from accounts.models import AuditEvent, AuditKind
from common.exports import csv_response


class AuditFilterForm(forms.Form):
    kind = forms.ChoiceField(required=False, choices=[("", "All events"), *AuditKind.choices])
    who = forms.CharField(required=False, max_length=150, label="User")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


def _events(form: AuditFilterForm, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    events = events.select_related("user")
    data = form.cleaned_data if form.is_valid() else {}
    if data.get("kind"):
        events = events.filter(kind=data["kind"])
    if data.get("who"):
        events = events.filter(username__icontains=data["who"])
    if data.get("since"):
        events = events.filter(at__date__gte=data["since"])
    if data.get("until"):
        events = events.filter(at__date__lte=data["until"])
    return events


@login_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    if not policy.can_view_audit(request.user):
        raise Http404
    form = AuditFilterForm(request.GET)
    events = _events(form, policy.audit_events(request.user))
    if request.GET.get("format") == "csv":
        audit.record(AuditKind.EXPORT, user=request.user, request=request, detail="audit log")
        rows = (
            (e.at.isoformat(), e.kind, e.username, e.ip or "", e.detail)
            for e in events.iterator(chunk_size=2000)
        )
        return csv_response("audit.csv", ["at", "kind", "user", "ip", "detail"], rows)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    return TemplateResponse(request, "accounts/audit.html", context)
