"""Deals through the API: every read through the visible queryset, every write one action."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import policy
from api import serializers as s
from api.idempotency import idempotent
from api.views.base import (
    IDEMPOTENCY_KEY,
    IF_MATCH,
    PAGE_PARAMETERS,
    Cursor,
    etag,
    expected_version,
    get_or_404,
    paged,
    problems,
)
from common.errors import BadInput, NotAllowed
from deals import services
from deals.models import Deal, MoveSource, StageChange, StalledFlag
from stages.models import StageKind

WRITE_PROBLEMS = problems(400, 401, 403, 404, 409, 422, 428, 429)


def visible_deals(user: Any) -> QuerySet[Deal]:
    return (
        policy.deals(user)
        .select_related("stage")
        .prefetch_related(Prefetch("stalled_flags", queryset=StalledFlag.objects.order_by()))
    )


def filtered(deals: QuerySet[Deal], filters: dict[str, Any]) -> QuerySet[Deal]:
    simple = {
        "pipeline": "pipeline_id",
        "stage": "stage_id",
        "owner": "owner_id",
        "team": "owner__team_id",
        "status": "stage__kind",
        "close_after": "expected_close_date__gte",
        "close_before": "expected_close_date__lte",
        "updated_since": "updated_at__gte",
        "search": "title__icontains",
    }
    deals = deals.filter(**{simple[k]: v for k, v in filters.items() if k in simple})
    if filters.get("stalled") is not None:
        flagged = Exists(StalledFlag.objects.filter(deal=OuterRef("pk")))
        deals = deals.filter(flagged if filters["stalled"] else ~flagged)
    return deals


def deal_response(user: Any, pk: int, code: int = status.HTTP_200_OK) -> Response:
    deal = get_or_404(visible_deals(user), pk)
    return Response(s.DealSerializer(deal).data, status=code, headers=etag(deal.version))


FILTER_PARAMETERS = [
    OpenApiParameter("pipeline", int),
    OpenApiParameter("stage", int),
    OpenApiParameter("owner", int),
    OpenApiParameter("team", int),
    OpenApiParameter("status", str, enum=StageKind.values),
    OpenApiParameter("stalled", bool),
    OpenApiParameter("close_after", str, description="Expected close date on or after (date)"),
    OpenApiParameter("close_before", str, description="Expected close date on or before (date)"),
    OpenApiParameter("updated_since", str, description="Changed at or after (date-time)"),
    OpenApiParameter("search", str, description="Words in the title"),
]


class DealList(APIView):
    @extend_schema(
        operation_id="deals_list",
        parameters=[*FILTER_PARAMETERS, *PAGE_PARAMETERS],
        responses={200: paged(s.DealSerializer), **problems(400, 401, 404, 429)},
    )
    def get(self, request: Request) -> Response:
        query = s.DealFilters(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        filters = {
            k: v for k, v in query.validated_data.items() if k not in ("cursor", "page_size")
        }
        paginator = Cursor()
        page = paginator.paginate_queryset(
            filtered(visible_deals(request.user), filters), request, view=self
        )
        return paginator.get_paginated_response(s.DealSerializer(page, many=True).data)

    @extend_schema(
        request=s.DealCreateIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.DealSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        form = s.DealCreateIn(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        override_reason = data.pop("override_reason", "")
        deal = services.create_deal(
            by=request.user, source=MoveSource.API, override_reason=override_reason, **data
        )
        response = deal_response(request.user, deal.pk, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/deals/{deal.pk}/"
        return response


class DealDetail(APIView):
    @extend_schema(responses={200: s.DealSerializer, **problems(401, 404, 429)})
    def get(self, request: Request, pk: int) -> Response:
        return deal_response(request.user, pk)

    @extend_schema(
        request=s.DealUpdateIn,
        parameters=[IF_MATCH],
        responses={200: s.DealSerializer, **WRITE_PROBLEMS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        deal = policy.changeable_deal_or_403(
            request.user, get_or_404(policy.deals(request.user), pk)
        )
        form = s.DealUpdateIn(data=request.data, context={"request": request}, partial=True)
        form.is_valid(raise_exception=True)
        changes = dict(form.validated_data)
        version = expected_version(request, changes.pop("version", None))
        services.update_deal(
            deal, changes, by=request.user, expected_version=version, source=MoveSource.API
        )
        return deal_response(request.user, pk)

    @extend_schema(
        parameters=[IF_MATCH],
        request=None,
        responses={204: None, **problems(400, 401, 403, 404, 409, 428, 429)},
    )
    def delete(self, request: Request, pk: int) -> Response:
        """Delete the deal for good: managers (their teams' deals) and admins."""
        deal = get_or_404(policy.deals(request.user), pk)
        # Refused before If-Match is read; which deals (those the user may change) is
        # checked by the action under its row lock.
        if not policy.can_delete_deals(request.user):
            raise NotAllowed("Only managers and admins can delete deals.")
        version = expected_version(request, None)
        services.delete_deal(
            deal, by=request.user, expected_version=version, source=MoveSource.API
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class DealMove(APIView):
    @extend_schema(
        request=s.MoveIn,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
        responses={200: s.DealSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        deal = policy.changeable_deal_or_403(
            request.user, get_or_404(policy.deals(request.user).select_related("stage"), pk)
        )
        form = s.MoveIn(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        version = expected_version(request, data.get("version"))
        services.move_deal(
            deal,
            data["stage"],
            by=request.user,
            expected_version=version,
            source=MoveSource.API,
            override_reason=data.get("override_reason", ""),
        )
        return deal_response(request.user, pk)


class DealClose(APIView):
    @extend_schema(
        request=s.CloseIn,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
        responses={200: s.DealSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        deal = policy.changeable_deal_or_403(
            request.user, get_or_404(policy.deals(request.user).select_related("stage"), pk)
        )
        form = s.CloseIn(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        version = expected_version(request, data.get("version"))
        kind = StageKind.WON if data["outcome"] == "won" else StageKind.LOST
        target = deal.pipeline.stages.filter(kind=kind, is_archived=False).first()
        if target is None:
            raise BadInput(f"This pipeline has no {kind} stage.")
        fixes = {k: data[k] for k in ("amount", "lost_reason") if data.get(k) not in (None, "")}
        services.complete_and_move(
            deal,
            target,
            services.GateFixes(fields=fixes),
            by=request.user,
            expected_version=version,
            source=MoveSource.API,
            override_reason=data.get("override_reason", ""),
        )
        return deal_response(request.user, pk)


class DealReassign(APIView):
    @extend_schema(
        request=s.ReassignIn,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
        responses={200: s.DealSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        deal = get_or_404(policy.deals(request.user), pk)
        form = s.ReassignIn(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        version = expected_version(request, form.validated_data.get("version"))
        services.reassign_deal(
            deal,
            new_owner=form.validated_data["owner"],
            by=request.user,
            expected_version=version,
        )
        return deal_response(request.user, pk)


class DealHistory(APIView):
    @extend_schema(responses={200: s.StageChangeSerializer(many=True), **problems(401, 404)})
    def get(self, request: Request, pk: int) -> Response:
        deal = get_or_404(policy.deals(request.user), pk)
        rows = StageChange.objects.filter(deal=deal).order_by("seq")
        return Response(s.StageChangeSerializer(rows, many=True).data)
