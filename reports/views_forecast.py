"""The forecast page: the next six months, three forecasts side by side, and its CSV."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import policy
from accounts.models import Team, User
from common.exports import safe_cell
from reports import forecasts
from reports.dashboard.filters import (
    OwnerChoiceField,
    PipelineChoiceField,
    owner_choices,
    team_choices,
)
from reports.models import Forecast, ForecastQuerySet, PeriodKind
from stages.models import Pipeline


class ForecastFilterForm(forms.Form):
    pipeline = PipelineChoiceField(
        queryset=Pipeline.objects.none(), required=False, empty_label="All pipelines"
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, empty_label="All my teams"
    )
    owner = OwnerChoiceField(queryset=User.objects.none(), required=False, empty_label="Everyone")
    period = forms.ChoiceField(choices=PeriodKind.choices, required=False)

    def __init__(self, data: Any, *, user: User) -> None:
        super().__init__(data)
        self.fields["pipeline"].queryset = Pipeline.objects.filter(is_archived=False)
        if policy.may_choose_whose_numbers(user):
            self.fields["team"].queryset = team_choices(user)
            self.fields["owner"].queryset = owner_choices(user)
        else:
            # A rep's forecast is their own: nothing to choose.
            del self.fields["team"]
            del self.fields["owner"]

    def rows(self, user: User) -> ForecastQuerySet:
        """The forecast rows `user` may see, narrowed by the valid filters."""
        rows = Forecast.objects.numbers_for(user)
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        if data.get("pipeline"):
            rows = rows.filter(pipeline=data["pipeline"])
        if data.get("team"):
            rows = rows.filter(team=data["team"])
        if data.get("owner"):
            rows = rows.filter(owner=data["owner"])
        return rows

    @property
    def kind(self) -> str:
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        return data.get("period") or PeriodKind.MONTH


def period_label(start: dt.date, kind: str) -> str:
    if start == forecasts.PAST_DUE:
        return "Past due"
    if kind == PeriodKind.QUARTER:
        return f"Q{(start.month - 1) // 3 + 1} {start.year}"
    return f"{start:%b %Y}"


@dataclass(frozen=True)
class PageData:
    kind: str
    starts: list[dt.date]
    periods: list[dict[str, Any]]
    owners: list[dict[str, Any]]
    computed_at: dt.datetime | None


def _page_data(form: ForecastFilterForm, user: User) -> PageData:
    kind = form.kind
    starts = forecasts.periods(timezone.localdate(), kind)
    rows = form.rows(user)
    lines = forecasts.by_period(rows, starts, kind)
    for line in lines:
        line["label"] = period_label(line["bucket"], kind)
    owners = forecasts.by_owner(rows, starts, kind)
    stamps = [line["last_computed"] for line in lines if line["last_computed"]]
    return PageData(kind, starts, lines, owners, max(stamps) if stamps else None)


@dataclass(frozen=True)
class Uncounted:
    """Open deals the forecast cannot place in a coming period, with board links to them."""

    no_date: int
    past_date: int
    no_date_url: str
    past_date_url: str


def _uncounted(form: ForecastFilterForm, user: User) -> Uncounted:
    """One query: visible open deals (within the filters) with no or a past close date."""
    from django.db.models import Count, Q
    from django.urls import reverse

    from stages.models import StageKind

    today = timezone.localdate()
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    deals = policy.deals(user).filter(stage__kind=StageKind.OPEN)
    query: dict[str, Any] = {}
    if data.get("pipeline"):
        deals = deals.filter(pipeline=data["pipeline"])
        query["pipeline"] = data["pipeline"].pk
    if data.get("team"):
        deals = deals.filter(owner__team=data["team"])
        query["team"] = data["team"].pk
    if data.get("owner"):
        deals = deals.filter(owner=data["owner"])
        query["owner"] = data["owner"].pk
    counts = deals.aggregate(
        no_date=Count("id", filter=Q(expected_close_date__isnull=True)),
        past=Count("id", filter=Q(expected_close_date__lt=today)),
    )
    board = reverse("board")
    base = "&".join(f"{k}={v}" for k, v in query.items())
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    return Uncounted(
        no_date=counts["no_date"],
        past_date=counts["past"],
        no_date_url=f"{board}?{base}{'&' if base else ''}no_close=on",
        past_date_url=f"{board}?{base}{'&' if base else ''}close_to={yesterday}",
    )


CATEGORIES = (
    ("closed_won", "won"),
    ("commit", "commit"),
    ("best_case", "best case"),
    ("pipeline_amount", "pipeline"),
)


def category_chart(data: PageData) -> Any:
    """Stacked bars, one per coming period: won so far, then commit, best case and pipeline,
    in the currency with the most open value (currencies are never added together)."""
    from common import formats
    from reports.dashboard import charts

    lines = [line for line in data.periods if line["bucket"] != forecasts.PAST_DUE]
    if not lines:
        return ""
    totals: dict[str, float] = {}
    for line in lines:
        value = sum(float(line[name] or 0) for name, _label in CATEGORIES)
        totals[line["currency"]] = totals.get(line["currency"], 0.0) + value
    currency = max(sorted(totals), key=lambda code: totals[code])
    bars = [
        charts.Bar(
            line["label"],
            tuple(float(line[name] or 0) for name, _label in CATEGORIES),
            " · ".join(
                f"{formats.money(line[name], currency)} {label}" for name, label in CATEGORIES
            ),
        )
        for line in lines
        if line["currency"] == currency
    ]
    title = f"Forecast by {data.kind} and category ({currency})"
    return charts.bar_chart(chart_id="fc-chart", title=title, bars=bars)


@login_required
@require_GET
def forecast(request: HttpRequest) -> HttpResponse:
    form = ForecastFilterForm(request.GET or None, user=request.user)
    data = _page_data(form, request.user)
    pipeline = form.cleaned_data.get("pipeline") if form.is_bound and form.is_valid() else None
    context = {
        "form": form,
        "data": data,
        "first_label": period_label(data.starts[0], data.kind),
        "last_label": period_label(data.starts[-1], data.kind),
        "stages": forecasts.stage_rates(pipeline.pk if pipeline else None),
        "uncounted": _uncounted(form, request.user),
        "chart": category_chart(data),
        "history_days": settings.FORECAST_HISTORY_DAYS,
        "shrinkage_k": settings.FORECAST_SHRINKAGE_K,
        "query": request.GET.urlencode(),
    }
    return TemplateResponse(request, "reports/forecast.html", context)


CSV_HEADER = [
    "period",
    "pipeline",
    "team",
    "owner",
    "currency",
    "open deals",
    "weighted",
    "learned",
    "commit",
    "best case",
    "pipeline",
    "closed won",
    "won deals",
]


@login_required
@require_GET
def forecast_csv(request: HttpRequest) -> HttpResponse:
    """The stored cells behind the page (period x pipeline x owner x currency)."""
    form = ForecastFilterForm(request.GET or None, user=request.user)
    kind = form.kind
    starts = forecasts.periods(timezone.localdate(), kind)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="forecast-{kind}-{starts[0]}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    for row in forecasts.export_rows(form.rows(request.user), starts, kind):
        names = [
            period_label(row.period_start, kind),
            row.pipeline.name,
            row.team.name if row.team else "",
            row.owner.display_name,
            row.currency,
        ]
        figures = [getattr(row, name) for name in forecasts.FIGURES]
        writer.writerow([*(safe_cell(name) for name in names), *figures])
    return response
