"""/api/v1/: the public REST API, its OpenAPI schema and its documentation page."""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularJSONAPIView

from api.views import deals, pages, records, reports, webhooks
from api.views.base import UnknownPath

app_name = "api"

urlpatterns = [
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    path("docs/", pages.docs, name="docs"),
    path("deals/", deals.DealList.as_view(), name="deals"),
    path("deals/<int:pk>/", deals.DealDetail.as_view(), name="deal"),
    path("deals/<int:pk>/move/", deals.DealMove.as_view(), name="deal_move"),
    path("deals/<int:pk>/close/", deals.DealClose.as_view(), name="deal_close"),
    path("deals/<int:pk>/reassign/", deals.DealReassign.as_view(), name="deal_reassign"),
    path("deals/<int:pk>/history/", deals.DealHistory.as_view(), name="deal_history"),
    path("activities/", records.ActivityList.as_view(), name="activities"),
    path("activities/<int:pk>/", records.ActivityDetail.as_view(), name="activity"),
    path("organizations/", records.OrganizationList.as_view(), name="organizations"),
    path("organizations/<int:pk>/", records.OrganizationDetail.as_view(), name="organization"),
    path("people/", records.PersonList.as_view(), name="people"),
    path("people/<int:pk>/", records.PersonDetail.as_view(), name="person"),
    path("pipelines/", records.PipelineList.as_view(), name="pipelines"),
    path("pipelines/<int:pk>/", records.PipelineDetail.as_view(), name="pipeline"),
    path("stages/", records.StageList.as_view(), name="stages"),
    path("stages/<int:pk>/", records.StageDetail.as_view(), name="stage"),
    path("criteria/", records.CriterionList.as_view(), name="criteria"),
    path("criteria/<int:pk>/", records.CriterionDetail.as_view(), name="criterion"),
    path("users/", records.UserList.as_view(), name="users"),
    path("users/<int:pk>/", records.UserDetail.as_view(), name="user"),
    path("teams/", records.TeamList.as_view(), name="teams"),
    path("forecast/", reports.ForecastView.as_view(), name="forecast"),
    path("dashboard/", reports.DashboardView.as_view(), name="dashboard"),
    path("webhooks/", webhooks.EndpointList.as_view(), name="webhooks"),
    path("webhooks/<int:pk>/", webhooks.EndpointDetail.as_view(), name="webhook"),
    path(
        "webhooks/<int:pk>/rotate-secret/",
        webhooks.EndpointRotate.as_view(),
        name="webhook_rotate",
    ),
    path(
        "webhooks/<int:pk>/deliveries/",
        webhooks.EndpointDeliveries.as_view(),
        name="webhook_deliveries",
    ),
    path(
        "webhooks/deliveries/<int:pk>/redeliver/",
        webhooks.Redeliver.as_view(),
        name="webhook_redeliver",
    ),
    re_path(r"^", extend_schema(exclude=True)(UnknownPath).as_view(), name="unknown"),
]
