"""Configuration screens at /settings/: pipelines, stages, entry criteria, audit log.

Admins only: everyone else gets 404 from `admin_only`, so the screens cannot be probed.
Every form works as a plain POST followed by a redirect. With htmx, the row buttons of
a list (move, archive, restore, remove) and drag-to-reorder re-render that list in place.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from common.ids import query_number
from stages import queries, services
from stages.forms import (
    ButtonForm,
    CriterionForm,
    KindForm,
    MoveForm,
    OrderForm,
    PipelineForm,
    StageForm,
)
from stages.models import EntryCriterion, Pipeline, Stage
from stages.services import ConfigError

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from accounts.models import User

    class AdminRequest(HttpRequest):
        user: User
        htmx: HtmxDetails
else:
    AdminRequest = HttpRequest

AUDIT_PAGE_SIZE = 50


def admin_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The one access rule for configuration: admins only, 404 for everyone else."""

    @wraps(view)
    @login_required
    def wrapped(request: AdminRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_admin:
            raise Http404
        return view(request, *args, **kwargs)

    return wrapped


def _pipeline(pipeline_id: int) -> Pipeline:
    return get_object_or_404(Pipeline, pk=pipeline_id)


def _stage(stage_id: int) -> Stage:
    return get_object_or_404(Stage.objects.select_related("pipeline"), pk=stage_id)


def _criterion(criterion_id: int) -> EntryCriterion:
    return get_object_or_404(
        EntryCriterion.objects.select_related("stage__pipeline"), pk=criterion_id
    )


def _back(request: AdminRequest, *, own: str, listed: str) -> str:
    """Row buttons return to their list; the same buttons on an object's own page
    (which post `next=own`) return there."""
    return own if request.POST.get("next") == "own" else listed


def _first_error(form: Any) -> str:
    return next(iter(e for errors in form.errors.values() for e in errors), "Invalid request.")


def _list_action(
    request: AdminRequest,
    run: Callable[[], object],
    *,
    form: Any,
    refresh: Callable[[str, int], HttpResponse],
    back: str,
) -> HttpResponse:
    """Apply one row button of a list (or a drag reorder).

    htmx gets the list re-rendered in place (422/409 with the reason when refused);
    a plain POST gets a redirect back, with the reason as a flash message.
    """
    error, status = "", 200
    if not form.is_valid():
        error, status = _first_error(form), 400
    else:
        try:
            run()
        except ConfigError as exc:
            error, status = exc.message, 422 if exc.status == 400 else exc.status
    if request.htmx:
        return refresh(error, status)
    if error:
        messages.error(request, error)
    return redirect(back)


# -------------------------------------------------------------------------- pipelines


def _render_pipelines(
    request: AdminRequest,
    *,
    template: str = "stages/pipelines.html",
    form: PipelineForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "pipelines": queries.pipelines_overview(),
        "form": form or PipelineForm(),
        "error": error,
    }
    return render(request, template, context, status=status)


def _refresh_pipelines(request: AdminRequest) -> Callable[[str, int], HttpResponse]:
    return lambda error, status: _render_pipelines(
        request, template="stages/pipelines.html#pipeline_list", error=error, status=status
    )


@admin_only
@require_GET
def pipelines(request: AdminRequest) -> HttpResponse:
    return _render_pipelines(request)


@admin_only
@require_POST
def create_pipeline(request: AdminRequest) -> HttpResponse:
    form = PipelineForm(request.POST)
    if form.is_valid():
        try:
            pipeline = services.create_pipeline(name=form.cleaned_data["name"], by=request.user)
        except ConfigError as exc:
            form.add_error("name", exc.message)
        else:
            messages.success(request, f"Pipeline {pipeline.name} created.")
            return redirect("stages:pipeline", pipeline.pk)
    return _render_pipelines(request, form=form, status=422)


@admin_only
@require_POST
def reorder_pipelines(request: AdminRequest) -> HttpResponse:
    form = OrderForm(request.POST)
    return _list_action(
        request,
        lambda: services.reorder_pipelines(form.cleaned_data["order"], by=request.user),
        form=form,
        refresh=_refresh_pipelines(request),
        back=reverse("stages:pipelines"),
    )


@admin_only
@require_POST
def move_pipeline(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    form = MoveForm(request.POST)
    return _list_action(
        request,
        lambda: services.move_pipeline(pipeline, offset=form.offset, by=request.user),
        form=form,
        refresh=_refresh_pipelines(request),
        back=reverse("stages:pipelines") + f"#pipeline-{pipeline.pk}",
    )


def _pipeline_row_action(
    request: AdminRequest, pipeline: Pipeline, run: Callable[[], object]
) -> HttpResponse:
    back = _back(
        request,
        own=reverse("stages:pipeline", args=[pipeline.pk]),
        listed=reverse("stages:pipelines") + f"#pipeline-{pipeline.pk}",
    )
    return _list_action(
        request, run, form=ButtonForm(request.POST), refresh=_refresh_pipelines(request), back=back
    )


@admin_only
@require_POST
def archive_pipeline(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    return _pipeline_row_action(
        request, pipeline, lambda: services.archive_pipeline(pipeline, by=request.user)
    )


@admin_only
@require_POST
def restore_pipeline(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    return _pipeline_row_action(
        request, pipeline, lambda: services.restore_pipeline(pipeline, by=request.user)
    )


# ------------------------------------------------------------------- one pipeline


def _render_pipeline(
    request: AdminRequest,
    pipeline: Pipeline,
    *,
    template: str = "stages/pipeline.html",
    form: PipelineForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "pipeline": pipeline,
        "stages": queries.stages_overview(pipeline),
        "form": form or PipelineForm(initial={"name": pipeline.name}),
        "error": error,
    }
    return render(request, template, context, status=status)


def _refresh_stages(
    request: AdminRequest, pipeline: Pipeline
) -> Callable[[str, int], HttpResponse]:
    return lambda error, status: _render_pipeline(
        request, pipeline, template="stages/pipeline.html#stage_list", error=error, status=status
    )


@admin_only
@require_GET
def pipeline(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    return _render_pipeline(request, _pipeline(pipeline_id))


@admin_only
@require_POST
def rename_pipeline(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    form = PipelineForm(request.POST)
    if form.is_valid():
        try:
            services.rename_pipeline(pipeline, name=form.cleaned_data["name"], by=request.user)
        except ConfigError as exc:
            form.add_error("name", exc.message)
        else:
            return redirect("stages:pipeline", pipeline.pk)
    return _render_pipeline(request, pipeline, form=form, status=422)


@admin_only
@require_POST
def reorder_stages(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    form = OrderForm(request.POST)
    return _list_action(
        request,
        lambda: services.reorder_stages(pipeline, form.cleaned_data["order"], by=request.user),
        form=form,
        refresh=_refresh_stages(request, pipeline),
        back=reverse("stages:pipeline", args=[pipeline.pk]),
    )


# ----------------------------------------------------------------------------- stages


@admin_only
@require_http_methods(["GET", "POST"])
def new_stage(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    form = StageForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            stage = services.create_stage(pipeline, form.settings(), by=request.user)
        except ConfigError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Stage {stage.name} added.")
            return redirect(reverse("stages:pipeline", args=[pipeline.pk]) + f"#stage-{stage.pk}")
    status = 422 if form.is_bound else 200
    return render(
        request, "stages/stage_new.html", {"pipeline": pipeline, "form": form}, status=status
    )


def _render_stage(
    request: AdminRequest,
    stage: Stage,
    *,
    template: str = "stages/stage.html",
    form: StageForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "stage": stage,
        "pipeline": stage.pipeline,
        "form": form or StageForm.for_stage(stage),
        "criteria": stage.criteria.order_by("position", "id"),
        "kind_form": KindForm(),
        "error": error,
    }
    return render(request, template, context, status=status)


def _refresh_criteria(request: AdminRequest, stage: Stage) -> Callable[[str, int], HttpResponse]:
    return lambda error, status: _render_stage(
        request, stage, template="stages/stage.html#criteria", error=error, status=status
    )


@admin_only
@require_http_methods(["GET", "POST"])
def stage(request: AdminRequest, stage_id: int) -> HttpResponse:
    stage = _stage(stage_id)
    if request.method == "GET":
        return _render_stage(request, stage)
    form = StageForm(request.POST)
    if form.is_valid():
        try:
            updated = services.update_stage(stage, form.settings(), by=request.user)
        except ConfigError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Stage {updated.name} saved.")
            return redirect("stages:stage", stage.pk)
    return _render_stage(request, stage, form=form, status=422)


def _stage_row_action(
    request: AdminRequest, stage: Stage, run: Callable[[], object], form: Any
) -> HttpResponse:
    """Row buttons on the pipeline page; the stage page's own buttons come back to it."""
    back = _back(
        request,
        own=reverse("stages:stage", args=[stage.pk]),
        listed=reverse("stages:pipeline", args=[stage.pipeline_id]) + f"#stage-{stage.pk}",
    )
    return _list_action(
        request, run, form=form, refresh=_refresh_stages(request, stage.pipeline), back=back
    )


@admin_only
@require_POST
def move_stage(request: AdminRequest, stage_id: int) -> HttpResponse:
    stage = _stage(stage_id)
    form = MoveForm(request.POST)
    return _stage_row_action(
        request,
        stage,
        lambda: services.move_stage(stage, offset=form.offset, by=request.user),
        form,
    )


@admin_only
@require_POST
def archive_stage(request: AdminRequest, stage_id: int) -> HttpResponse:
    stage = _stage(stage_id)
    return _stage_row_action(
        request,
        stage,
        lambda: services.archive_stage(stage, by=request.user),
        ButtonForm(request.POST),
    )


@admin_only
@require_POST
def restore_stage(request: AdminRequest, stage_id: int) -> HttpResponse:
    stage = _stage(stage_id)
    return _stage_row_action(
        request,
        stage,
        lambda: services.restore_stage(stage, by=request.user),
        ButtonForm(request.POST),
    )


@admin_only
@require_http_methods(["GET", "POST"])
def delete_stage(request: AdminRequest, stage_id: int) -> HttpResponse:
    """GET asks for confirmation (or explains why not); POST deletes."""
    stage = _stage(stage_id)
    if request.method == "POST":
        try:
            services.delete_stage(stage, by=request.user)
        except ConfigError as exc:
            messages.error(request, exc.message)
            return redirect("stages:stage", stage.pk)
        messages.success(request, f"Stage {stage.name} deleted.")
        return redirect("stages:pipeline", stage.pipeline_id)
    usage = queries.stage_usage(stage)
    return render(
        request,
        "stages/stage_delete.html",
        {"stage": stage, "pipeline": stage.pipeline, "usage": usage},
    )


# --------------------------------------------------------------------------- criteria


def _render_criterion_form(
    request: AdminRequest,
    stage: Stage,
    form: CriterionForm,
    *,
    criterion: EntryCriterion | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    template = "stages/criterion.html"
    if request.htmx and request.method == "GET":
        template += "#criterion_form"
    context = {
        "stage": stage,
        "pipeline": stage.pipeline,
        "form": form,
        "criterion": criterion,
        "error": error,
    }
    return render(request, template, context, status=status)


@admin_only
@require_http_methods(["GET", "POST"])
def new_criterion(request: AdminRequest, stage_id: int) -> HttpResponse:
    """GET ?kind=… shows that kind's form (the stage page loads it in place with htmx)."""
    stage = _stage(stage_id)
    kind_form = KindForm(request.POST if request.method == "POST" else request.GET)
    if not kind_form.is_valid():
        if request.htmx:
            return HttpResponse("")  # "Choose a kind…" again: clear the form below the menu
        messages.error(request, _first_error(kind_form))
        return redirect(reverse("stages:stage", args=[stage.pk]) + "#criteria")
    kind = kind_form.cleaned_data["kind"]
    if request.method == "GET":
        return _render_criterion_form(request, stage, CriterionForm(kind=kind))
    form = CriterionForm(request.POST, kind=kind)
    if form.is_valid():
        try:
            criterion = services.add_criterion(
                stage, kind=kind, values=form.cleaned_data, by=request.user
            )
        except ConfigError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Criterion “{criterion.requirement}” added.")
            return redirect(reverse("stages:stage", args=[stage.pk]) + "#criteria")
    return _render_criterion_form(request, stage, form, status=422)


@admin_only
@require_http_methods(["GET", "POST"])
def criterion(request: AdminRequest, criterion_id: int) -> HttpResponse:
    criterion = _criterion(criterion_id)
    stage = criterion.stage
    if request.method == "GET":
        form = CriterionForm.for_criterion(criterion)
        return _render_criterion_form(request, stage, form, criterion=criterion)
    form = CriterionForm(request.POST, kind=criterion.kind)
    if form.is_valid():
        try:
            services.update_criterion(criterion, values=form.cleaned_data, by=request.user)
        except ConfigError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect(reverse("stages:stage", args=[stage.pk]) + "#criteria")
    return _render_criterion_form(request, stage, form, criterion=criterion, status=422)


@admin_only
@require_POST
def move_criterion(request: AdminRequest, criterion_id: int) -> HttpResponse:
    criterion = _criterion(criterion_id)
    form = MoveForm(request.POST)
    return _list_action(
        request,
        lambda: services.move_criterion(criterion, offset=form.offset, by=request.user),
        form=form,
        refresh=_refresh_criteria(request, criterion.stage),
        back=reverse("stages:stage", args=[criterion.stage_id]) + f"#criterion-{criterion.pk}",
    )


@admin_only
@require_POST
def remove_criterion(request: AdminRequest, criterion_id: int) -> HttpResponse:
    criterion = _criterion(criterion_id)
    return _list_action(
        request,
        lambda: services.remove_criterion(criterion, by=request.user),
        form=ButtonForm(request.POST),
        refresh=_refresh_criteria(request, criterion.stage),
        back=reverse("stages:stage", args=[criterion.stage_id]) + "#criteria",
    )


# ------------------------------------------------------------------------------ audit


@admin_only
@require_GET
def audit(request: AdminRequest) -> HttpResponse:
    pipeline_id = query_number(request.GET, "pipeline")
    page = Paginator(queries.recent_changes(pipeline_id), AUDIT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "pipelines": Pipeline.objects.order_by("position", "id"),
        "pipeline_id": pipeline_id,
    }
    return render(request, "stages/audit.html", context)
