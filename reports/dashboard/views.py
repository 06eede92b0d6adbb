"""The dashboard page (panels reload by htmx when a filter changes) and per-panel CSV."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from common.exports import safe_cell
from reports.dashboard.filters import filter_form
from reports.dashboard.panels import PANELS, Dashboard

# Time the page may spend on panels before it answers with those ready and leaves the
# rest to requests of their own: well inside the web server's 30 s timeout.
PAGE_BUDGET_SECONDS = 10.0


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    form = filter_form(request.GET, user=request.user)
    scope = form.scope(now=timezone.now()) if form.is_valid() else None
    context = {
        "form": form,
        "scope": scope,
        "panels": Dashboard(scope).panels(budget=PAGE_BUDGET_SECONDS) if scope else [],
    }
    template = "reports/dashboard.html#panels" if request.htmx else "reports/dashboard.html"
    return render(request, template, context)


def _invalid(form: Any) -> HttpResponse:
    errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
    return HttpResponse(errors, status=400, content_type="text/plain")


def _panel_scope(request: HttpRequest, panel: str) -> tuple[Any, Any]:
    """The filters and scope one panel reads: 404 for an unknown panel or no pipeline; a
    scope of None when the filters are invalid (the caller answers 400)."""
    if panel not in PANELS:
        raise Http404("No such panel.")
    form = filter_form(request.GET, user=request.user)
    if not form.is_valid():
        return form, None
    scope = form.scope(now=timezone.now())
    if scope is None:
        raise Http404("No pipeline yet.")
    return form, scope


@require_GET
@login_required
def panel_page(request: HttpRequest, panel: str) -> HttpResponse:
    """One panel: what a deferred placeholder loads (htmx), or the page with that panel
    alone (a plain link, without JavaScript)."""
    form, scope = _panel_scope(request, panel)
    if scope is None:
        return _invalid(form)
    built = Dashboard(scope).panel(panel)
    if request.htmx:
        return render(request, "reports/dashboard.html#panel", {"panel": built, "scope": scope})
    context = {"form": form, "scope": scope, "panels": [built]}
    return render(request, "reports/dashboard.html", context)


@require_GET
@login_required
def panel_csv(request: HttpRequest, panel: str) -> HttpResponse:
    form, scope = _panel_scope(request, panel)
    if scope is None:
        return _invalid(form)
    data = Dashboard(scope).panel(panel)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"{panel}-{scope.period.first_day}-{scope.period.last_day}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(safe_cell(cell) for cell in data.header)
    writer.writerows([safe_cell(cell) for cell in row] for row in data.csv_rows)
    return response
