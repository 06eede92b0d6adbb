"""Webhook subscriptions through the API: managers (their teams' deals) and admins (all)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import policy
from api.idempotency import idempotent
from api.serializers import Strict
from api.views.base import IDEMPOTENCY_KEY, PAGE_PARAMETERS, Cursor, get_or_404, paged, problems
from common.errors import NotAllowed
from webhooks import services
from webhooks.models import Attempt, Delivery, Endpoint

WRITE_PROBLEMS = problems(400, 401, 403, 404, 409, 422, 429)
READ_PROBLEMS = problems(401, 404, 429)


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Endpoint
        fields = [
            "id",
            "owner",
            "url",
            "description",
            "events",
            "is_active",
            "disabled_reason",
            "failure_streak",
            "created_at",
        ]
        read_only_fields = fields


class EndpointWithSecret(EndpointSerializer):
    secret = serializers.SerializerMethodField()

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, endpoint: Endpoint) -> str:
        return self.context["secret"]


def event_choice() -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=[*services.EVENT_TYPES, "deal.*", "activity.*"])


class EndpointIn(Strict):
    url = serializers.CharField(max_length=500)
    events = serializers.ListField(child=event_choice(), min_length=1, max_length=30)
    description = serializers.CharField(max_length=200, allow_blank=True, required=False)


class EndpointUpdateIn(Strict):
    url = serializers.CharField(max_length=500, required=False)
    events = serializers.ListField(
        child=event_choice(), min_length=1, max_length=30, required=False
    )
    description = serializers.CharField(max_length=200, allow_blank=True, required=False)
    is_active = serializers.BooleanField(required=False)


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["at", "ok", "status_code", "duration_ms", "response_excerpt", "error"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "event_name",
            "event_at",
            "status",
            "attempts",
            "next_attempt_at",
            "delivered_at",
            "log",
        ]
        read_only_fields = fields


def _with_secret(new: services.NewEndpoint, code: int) -> Response:
    body = EndpointWithSecret(new.endpoint, context={"secret": new.secret}).data
    return Response(body, status=code)


class EndpointList(APIView):
    @extend_schema(
        operation_id="webhooks_list",
        responses={200: EndpointSerializer(many=True), **READ_PROBLEMS},
    )
    def get(self, request: Request) -> Response:
        rows = services.endpoints_for(request.user)
        return Response(EndpointSerializer(rows, many=True).data)

    @extend_schema(
        request=EndpointIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: EndpointWithSecret, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        if not policy.can_manage_webhooks(request.user):
            raise NotAllowed("Only managers and admins can subscribe webhooks.")
        form = EndpointIn(data=request.data)
        form.is_valid(raise_exception=True)
        new = services.create_endpoint(by=request.user, **form.validated_data)
        return _with_secret(new, status.HTTP_201_CREATED)


class EndpointDetail(APIView):
    @extend_schema(responses={200: EndpointSerializer, **READ_PROBLEMS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            EndpointSerializer(get_or_404(services.endpoints_for(request.user), pk)).data
        )

    @extend_schema(request=EndpointUpdateIn, responses={200: EndpointSerializer, **WRITE_PROBLEMS})
    def patch(self, request: Request, pk: int) -> Response:
        get_or_404(services.endpoints_for(request.user), pk)
        form = EndpointUpdateIn(data=request.data)
        form.is_valid(raise_exception=True)
        endpoint = services.update_endpoint(pk, by=request.user, **form.validated_data)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None, **WRITE_PROBLEMS})
    def delete(self, request: Request, pk: int) -> Response:
        get_or_404(services.endpoints_for(request.user), pk)
        services.delete_endpoint(pk, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotate(APIView):
    @extend_schema(request=None, responses={200: EndpointWithSecret, **WRITE_PROBLEMS})
    def post(self, request: Request, pk: int) -> Response:
        get_or_404(services.endpoints_for(request.user), pk)
        return _with_secret(services.rotate_secret(pk, by=request.user), status.HTTP_200_OK)


class EndpointDeliveries(APIView):
    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses={200: paged(DeliverySerializer), **READ_PROBLEMS},
    )
    def get(self, request: Request, pk: int) -> Response:
        endpoint = get_or_404(services.endpoints_for(request.user), pk)
        rows = Delivery.objects.filter(endpoint=endpoint).prefetch_related("log")
        paginator = Cursor()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


class Redeliver(APIView):
    @extend_schema(request=None, responses={200: DeliverySerializer, **WRITE_PROBLEMS})
    def post(self, request: Request, pk: int) -> Response:
        visible = Delivery.objects.filter(endpoint__in=services.endpoints_for(request.user))
        get_or_404(visible, pk)
        delivery = services.redeliver(pk, by=request.user)
        return Response(DeliverySerializer(delivery).data)
