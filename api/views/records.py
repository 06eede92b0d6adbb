"""Activities, organizations, people, pipelines, stages, users and teams through the API."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import policy
from accounts.models import Team
from api import serializers as s
from api.idempotency import idempotent
from api.views.base import IDEMPOTENCY_KEY, PAGE_PARAMETERS, Cursor, get_or_404, paged, problems
from common.errors import NotAllowed
from contacts import services as contact_services
from deals import activities
from deals.models import Activity
from stages.models import EntryCriterion, Pipeline, Stage
from stages.services import criteria as criterion_services
from stages.services import pipelines as pipeline_services
from stages.services import stages as stage_services

READ_PROBLEMS = problems(401, 404, 429)
WRITE_PROBLEMS = problems(400, 401, 403, 404, 409, 422, 429)


def _page(view: APIView, request: Request, rows: QuerySet, serializer: Any) -> Response:
    paginator = Cursor()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


def visible_activities(user: Any) -> QuerySet[Activity]:
    return policy.activities(user)


class ActivityList(APIView):
    @extend_schema(
        operation_id="activities_list",
        parameters=PAGE_PARAMETERS,
        responses={200: paged(s.ActivitySerializer), **READ_PROBLEMS},
    )
    def get(self, request: Request) -> Response:
        return _page(self, request, visible_activities(request.user), s.ActivitySerializer)

    @extend_schema(
        request=s.ActivityIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.ActivitySerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        form = s.ActivityIn(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        activity = activities.log_activity(
            data["deal"],
            by=request.user,
            type=data["type"],
            subject=data["subject"],
            due_at=data.get("due_at"),
            done=data.get("done", False),
            note=data.get("note", ""),
            person=data.get("person"),
        )
        return Response(s.ActivitySerializer(activity).data, status=status.HTTP_201_CREATED)


class ActivityDetail(APIView):
    @extend_schema(responses={200: s.ActivitySerializer, **READ_PROBLEMS})
    def get(self, request: Request, pk: int) -> Response:
        activity = get_or_404(visible_activities(request.user), pk)
        return Response(s.ActivitySerializer(activity).data)

    @extend_schema(
        request=s.ActivityUpdateIn, responses={200: s.ActivitySerializer, **WRITE_PROBLEMS}
    )
    def patch(self, request: Request, pk: int) -> Response:
        activity = get_or_404(visible_activities(request.user), pk)
        form = s.ActivityUpdateIn(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        fields = {k: data[k] for k in ("subject", "type", "due_at", "note") if k in data}
        if fields:
            activity = activities.update_activity(
                pk,
                by=request.user,
                subject=fields.get("subject", activity.subject),
                type=fields.get("type", activity.type),
                due_at=fields.get("due_at", activity.due_at),
                note=fields.get("note", activity.note),
            )
        if data.get("done"):
            activity = activities.complete_activity(pk, by=request.user)
        return Response(s.ActivitySerializer(activity).data)

    @extend_schema(responses={204: None, **WRITE_PROBLEMS})
    def delete(self, request: Request, pk: int) -> Response:
        get_or_404(visible_activities(request.user), pk)
        activities.delete_activity(pk, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrganizationList(APIView):
    @extend_schema(
        operation_id="organizations_list",
        parameters=PAGE_PARAMETERS,
        responses={200: paged(s.OrganizationSerializer), **READ_PROBLEMS},
    )
    def get(self, request: Request) -> Response:
        rows = policy.organizations(request.user)
        return _page(self, request, rows, s.OrganizationSerializer)

    @extend_schema(
        request=s.OrganizationIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.OrganizationSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        form = s.OrganizationIn(data=request.data)
        form.is_valid(raise_exception=True)
        row = contact_services.create_organization(by=request.user, **form.validated_data)
        return Response(s.OrganizationSerializer(row).data, status=status.HTTP_201_CREATED)


class OrganizationDetail(APIView):
    @extend_schema(responses={200: s.OrganizationSerializer, **READ_PROBLEMS})
    def get(self, request: Request, pk: int) -> Response:
        row = get_or_404(policy.organizations(request.user), pk)
        return Response(s.OrganizationSerializer(row).data)

    @extend_schema(
        request=s.OrganizationUpdateIn,
        responses={200: s.OrganizationSerializer, **WRITE_PROBLEMS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        row = get_or_404(policy.organizations(request.user), pk)
        form = s.OrganizationUpdateIn(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        row = contact_services.update_organization(row, by=request.user, **form.validated_data)
        return Response(s.OrganizationSerializer(row).data)


class PersonList(APIView):
    @extend_schema(
        operation_id="people_list",
        parameters=PAGE_PARAMETERS,
        responses={200: paged(s.PersonSerializer), **READ_PROBLEMS},
    )
    def get(self, request: Request) -> Response:
        return _page(self, request, policy.people(request.user), s.PersonSerializer)

    @extend_schema(
        request=s.PersonIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.PersonSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        form = s.PersonIn(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        row = contact_services.create_person(by=request.user, **form.validated_data)
        return Response(s.PersonSerializer(row).data, status=status.HTTP_201_CREATED)


class PersonDetail(APIView):
    @extend_schema(responses={200: s.PersonSerializer, **READ_PROBLEMS})
    def get(self, request: Request, pk: int) -> Response:
        row = get_or_404(policy.people(request.user), pk)
        return Response(s.PersonSerializer(row).data)

    @extend_schema(request=s.PersonUpdateIn, responses={200: s.PersonSerializer, **WRITE_PROBLEMS})
    def patch(self, request: Request, pk: int) -> Response:
        row = get_or_404(policy.people(request.user), pk)
        form = s.PersonUpdateIn(data=request.data, partial=True, context={"request": request})
        form.is_valid(raise_exception=True)
        row = contact_services.update_person(row, by=request.user, **form.validated_data)
        return Response(s.PersonSerializer(row).data)


class PipelineList(APIView):
    @extend_schema(
        operation_id="pipelines_list",
        responses={200: s.PipelineSerializer(many=True), **READ_PROBLEMS},
    )
    def get(self, request: Request) -> Response:
        rows = Pipeline.objects.order_by("position", "id")
        return Response(s.PipelineSerializer(rows, many=True).data)

    @extend_schema(
        request=s.PipelineIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.PipelineSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        _require_admin(request)
        form = s.PipelineIn(data=request.data)
        form.is_valid(raise_exception=True)
        row = pipeline_services.create_pipeline(name=form.validated_data["name"], by=request.user)
        return Response(s.PipelineSerializer(row).data, status=status.HTTP_201_CREATED)


class PipelineDetail(APIView):
    @extend_schema(responses={200: s.PipelineSerializer, **READ_PROBLEMS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.PipelineSerializer(get_or_404(Pipeline.objects.all(), pk)).data)

    @extend_schema(
        request=s.PipelineUpdateIn, responses={200: s.PipelineSerializer, **WRITE_PROBLEMS}
    )
    def patch(self, request: Request, pk: int) -> Response:
        """Rename, archive (`is_archived: true`) or restore a pipeline: admins only."""
        row = get_or_404(Pipeline.objects.all(), pk)
        _require_admin(request)
        form = s.PipelineUpdateIn(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if "name" in data:
            row = pipeline_services.rename_pipeline(row, name=data["name"], by=request.user)
        if data.get("is_archived") is True and not row.is_archived:
            row = pipeline_services.archive_pipeline(row, by=request.user)
        elif data.get("is_archived") is False and row.is_archived:
            row = pipeline_services.restore_pipeline(row, by=request.user)
        return Response(s.PipelineSerializer(row).data)


def _admins_only() -> NotAllowed:
    return NotAllowed("Only admins can configure pipelines and stages.")


def _require_admin(request: Request) -> None:
    """Configuration is for admins; everyone else sees it (403, not 404)."""
    if not policy.can_configure(request.user):
        raise _admins_only()


def _settings(data: dict[str, Any], stage: Stage | None = None) -> stage_services.StageSettings:
    names = ("name", "kind", "probability", "forecast_category", "rotting_days", "guidance")
    current = {name: getattr(stage, name) for name in names} if stage is not None else {}
    current.update({name: data[name] for name in names if name in data})
    return stage_services.StageSettings(**current)


class StageList(APIView):
    @extend_schema(
        operation_id="stages_list", responses={200: s.StageSerializer(many=True), **READ_PROBLEMS}
    )
    def get(self, request: Request) -> Response:
        rows = Stage.objects.order_by("pipeline_id", "position", "id")
        return Response(s.StageSerializer(rows, many=True).data)

    @extend_schema(
        request=s.StageIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.StageSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        _require_admin(request)
        form = s.StageIn(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        stage = stage_services.create_stage(data["pipeline"], _settings(data), by=request.user)
        return Response(s.StageSerializer(stage).data, status=status.HTTP_201_CREATED)


class StageDetail(APIView):
    @extend_schema(responses={200: s.StageSerializer, **READ_PROBLEMS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.StageSerializer(get_or_404(Stage.objects.all(), pk)).data)

    @extend_schema(request=s.StageUpdateIn, responses={200: s.StageSerializer, **WRITE_PROBLEMS})
    def patch(self, request: Request, pk: int) -> Response:
        stage = get_or_404(Stage.objects.all(), pk)
        _require_admin(request)
        form = s.StageUpdateIn(data=request.data)
        form.is_valid(raise_exception=True)
        stage = stage_services.update_stage(
            stage, _settings(form.validated_data, stage), by=request.user
        )
        return Response(s.StageSerializer(stage).data)


def _criteria() -> QuerySet[EntryCriterion]:
    return EntryCriterion.objects.order_by("stage_id", "position", "id")


class CriterionList(APIView):
    @extend_schema(
        operation_id="criteria_list",
        responses={200: s.CriterionSerializer(many=True), **READ_PROBLEMS},
    )
    def get(self, request: Request) -> Response:
        return Response(s.CriterionSerializer(_criteria(), many=True).data)

    @extend_schema(
        request=s.CriterionIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.CriterionSerializer, **WRITE_PROBLEMS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        _require_admin(request)
        form = s.CriterionIn(data=request.data)
        form.is_valid(raise_exception=True)
        values = dict(form.validated_data)
        stage, kind = values.pop("stage"), values.pop("kind")
        row = criterion_services.add_criterion(stage, kind=kind, values=values, by=request.user)
        return Response(s.CriterionSerializer(row).data, status=status.HTTP_201_CREATED)


class CriterionDetail(APIView):
    @extend_schema(responses={200: s.CriterionSerializer, **READ_PROBLEMS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.CriterionSerializer(get_or_404(_criteria(), pk)).data)

    @extend_schema(
        request=s.CriterionParametersIn,
        responses={200: s.CriterionSerializer, **WRITE_PROBLEMS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        """Change a criterion's parameters (its kind stays): admins only."""
        row = get_or_404(_criteria(), pk)
        _require_admin(request)
        form = s.CriterionParametersIn(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        current = {name: getattr(row, name) for name in s.CriterionParametersIn().fields}
        row = criterion_services.update_criterion(
            row, values={**current, **form.validated_data}, by=request.user
        )
        return Response(s.CriterionSerializer(row).data)

    @extend_schema(request=None, responses={204: None, **problems(401, 403, 404, 409, 429)})
    def delete(self, request: Request, pk: int) -> Response:
        row = get_or_404(_criteria(), pk)
        _require_admin(request)
        criterion_services.remove_criterion(row, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserList(APIView):
    @extend_schema(
        operation_id="users_list",
        parameters=PAGE_PARAMETERS,
        responses={200: paged(s.UserSerializer), **READ_PROBLEMS},
    )
    def get(self, request: Request) -> Response:
        return _page(self, request, policy.visible_users(request.user), s.UserSerializer)


class UserDetail(APIView):
    @extend_schema(responses={200: s.UserSerializer, **READ_PROBLEMS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.UserSerializer(get_or_404(policy.visible_users(request.user), pk)).data)


class TeamList(APIView):
    @extend_schema(
        operation_id="teams_list", responses={200: s.TeamSerializer(many=True), **READ_PROBLEMS}
    )
    def get(self, request: Request) -> Response:
        return Response(s.TeamSerializer(Team.objects.order_by("name"), many=True).data)
