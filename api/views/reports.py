"""The forecast and the dashboard's figures, with the same filters and scopes as the pages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.views.base import problems
from reports import forecasts
from reports.dashboard.filters import filter_form
from reports.dashboard.panels import Dashboard
from reports.views_forecast import ForecastFilterForm, period_label

FIGURES = OpenApiTypes.OBJECT


def _form_errors(form: Any) -> exceptions.ValidationError:
    return exceptions.ValidationError({name: list(errors) for name, errors in form.errors.items()})


def _plain(value: Any) -> Any:
    """JSON-ready: numbers and money as strings keep their exact value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


class ForecastView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("pipeline", int),
            OpenApiParameter("team", int),
            OpenApiParameter("owner", int),
            OpenApiParameter("period", str, enum=["month", "quarter"]),
        ],
        responses={200: FIGURES, **problems(400, 401, 429)},
    )
    def get(self, request: Request) -> Response:
        form = ForecastFilterForm(request.query_params, user=request.user)
        if not form.is_valid():
            raise _form_errors(form)
        kind = form.kind
        starts = forecasts.periods(timezone.localdate(), kind)
        rows = form.rows(request.user)
        periods = forecasts.by_period(rows, starts, kind)
        owners = forecasts.by_owner(rows, starts, kind)
        for line in periods:
            line["label"] = period_label(line["bucket"], kind)
        return Response(
            {
                "period": kind,
                "periods": [{k: _plain(v) for k, v in line.items()} for line in periods],
                "owners": [{k: _plain(v) for k, v in line.items()} for line in owners],
            }
        )


class DashboardView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("pipeline", int),
            OpenApiParameter("team", int),
            OpenApiParameter("owner", int),
            OpenApiParameter("period", str),
            OpenApiParameter("date_from", str),
            OpenApiParameter("date_to", str),
        ],
        responses={200: FIGURES, **problems(400, 401, 404, 429)},
    )
    def get(self, request: Request) -> Response:
        form = filter_form(request.query_params, user=request.user)
        if not form.is_valid():
            raise _form_errors(form)
        scope = form.scope(now=timezone.now())
        if scope is None:
            raise exceptions.NotFound("No pipeline yet.")
        panels = {
            panel.slug: {
                "title": panel.title,
                "header": panel.header,
                "rows": [[_plain(cell) for cell in row] for row in panel.csv_rows],
            }
            for panel in Dashboard(scope).panels()
        }
        return Response(
            {
                "pipeline": scope.pipeline.pk,
                "first_day": scope.period.first_day.isoformat(),
                "last_day": scope.period.last_day.isoformat(),
                "panels": panels,
            }
        )
