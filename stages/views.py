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

from accounts import policy
from common.errors import BadInput, DomainError, NotVisible, Refusal
from common.ids import query_number
from common.refusals import flash_and_return, presents
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
        if not policy.can_configure(request.user):
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
    """Apply one row button of a list (or a drag reorder): htmx gets the list re-rendered
    in place, a plain POST a redirect back. A refusal (a malformed button is BadInput, a
    service's ConfigError or StaleOrder) is answered by the list's presenter, through
    the one mapping (common.errors.describe)."""
    if not form.is_valid():
        raise BadInput(_first_error(form))
    run()
    if request.htmx:
        return refresh("", 200)
    return redirect(back)


def _list_refusal(
    refresh: Callable[..., Callable[[str, int], HttpResponse]],
    back: Callable[..., str],
) -> Callable[..., HttpResponse | None]:
    """A presenter for a list's row buttons: htmx gets the list again with the reason (and
    the refusal's status); a plain POST goes back with the reason as a flash message.
    `refresh` and `back` take the request and the view's arguments."""

    def present(
        request: AdminRequest, error: DomainError, refusal: Refusal, **kwargs: Any
    ) -> HttpResponse | None:
        if isinstance(error, NotVisible):
            return None
        if request.htmx:
            return refresh(request, **kwargs)(refusal.message, refusal.status)
        messages.error(request, refusal.message)
        return redirect(back(request, **kwargs))

    return present


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


def _own_pipeline_or_list(request: AdminRequest, pipeline_id: int | None = None) -> str:
    listed = reverse("stages:pipelines")
    if pipeline_id is None:
        return listed
    own = reverse("stages:pipeline", args=[pipeline_id])
    return _back(request, own=own, listed=f"{listed}#pipeline-{pipeline_id}")


pipelines_refused = presents(
    _list_refusal(lambda request, **_: _refresh_pipelines(request), _own_pipeline_or_list)
)


def _form_refused(
    render_form: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse | None]:
    """A presenter for a form page: the form again, as typed, with the reason on it and
    the refusal's status. `render_form(request, message, status, **view_kwargs)`."""

    def present(
        request: AdminRequest, error: DomainError, refusal: Refusal, **kwargs: Any
    ) -> HttpResponse | None:
        if isinstance(error, NotVisible):
            return None
        return render_form(request, refusal.message, refusal.status, **kwargs)

    return present


def _pipeline_form_again(
    request: AdminRequest, message: str, status: int, pipeline_id: int | None = None
) -> HttpResponse:
    form = PipelineForm(request.POST)
    form.is_valid()
    form.add_error("name", message)
    if pipeline_id is None:
        return _render_pipelines(request, form=form, status=status)
    return _render_pipeline(request, _pipeline(pipeline_id), form=form, status=status)


@admin_only
@require_GET
def pipelines(request: AdminRequest) -> HttpResponse:
    return _render_pipelines(request)


@admin_only
@require_POST
@presents(_form_refused(_pipeline_form_again))
def create_pipeline(request: AdminRequest) -> HttpResponse:
    form = PipelineForm(request.POST)
    if not form.is_valid():
        return _render_pipelines(request, form=form, status=422)
    pipeline = services.create_pipeline(name=form.cleaned_data["name"], by=request.user)
    messages.success(request, f"Pipeline {pipeline.name} created.")
    return redirect("stages:pipeline", pipeline.pk)


@admin_only
@require_POST
@pipelines_refused
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
@pipelines_refused
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
@pipelines_refused
def archive_pipeline(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    return _pipeline_row_action(
        request, pipeline, lambda: services.archive_pipeline(pipeline, by=request.user)
    )


@admin_only
@require_POST
@pipelines_refused
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


def _stage_list_of(
    request: AdminRequest, pipeline_id: int | None = None, stage_id: int | None = None
) -> Callable[[str, int], HttpResponse]:
    pipeline = _pipeline(pipeline_id) if stage_id is None else _stage(stage_id).pipeline
    return _refresh_stages(request, pipeline)


def _own_stage_or_pipeline(
    request: AdminRequest, pipeline_id: int | None = None, stage_id: int | None = None
) -> str:
    if stage_id is None:
        return reverse("stages:pipeline", args=[pipeline_id])
    stage = _stage(stage_id)
    return _back(
        request,
        own=reverse("stages:stage", args=[stage.pk]),
        listed=reverse("stages:pipeline", args=[stage.pipeline_id]) + f"#stage-{stage.pk}",
    )


stages_refused = presents(_list_refusal(_stage_list_of, _own_stage_or_pipeline))


@admin_only
@require_GET
def pipeline(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    return _render_pipeline(request, _pipeline(pipeline_id))


@admin_only
@require_POST
@presents(_form_refused(_pipeline_form_again))
def rename_pipeline(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    form = PipelineForm(request.POST)
    if not form.is_valid():
        return _render_pipeline(request, pipeline, form=form, status=422)
    services.rename_pipeline(pipeline, name=form.cleaned_data["name"], by=request.user)
    return redirect("stages:pipeline", pipeline.pk)


@admin_only
@require_POST
@stages_refused
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


def _new_stage_form(
    request: AdminRequest, pipeline: Pipeline, form: StageForm, status: int
) -> HttpResponse:
    return render(
        request, "stages/stage_new.html", {"pipeline": pipeline, "form": form}, status=status
    )


def _stage_form_again(
    request: AdminRequest,
    message: str,
    status: int,
    pipeline_id: int | None = None,
    stage_id: int | None = None,
) -> HttpResponse:
    form = StageForm(request.POST)
    form.is_valid()
    form.add_error(None, message)
    if stage_id is None:
        return _new_stage_form(request, _pipeline(pipeline_id), form, status)
    return _render_stage(request, _stage(stage_id), form=form, status=status)


@admin_only
@require_http_methods(["GET", "POST"])
@presents(_form_refused(_stage_form_again))
def new_stage(request: AdminRequest, pipeline_id: int) -> HttpResponse:
    pipeline = _pipeline(pipeline_id)
    form = StageForm(request.POST or None)
    if request.method == "GET" or not form.is_valid():
        return _new_stage_form(request, pipeline, form, 422 if form.is_bound else 200)
    stage = services.create_stage(pipeline, form.settings(), by=request.user)
    messages.success(request, f"Stage {stage.name} added.")
    return redirect(reverse("stages:pipeline", args=[pipeline.pk]) + f"#stage-{stage.pk}")


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
@presents(_form_refused(_stage_form_again))
def stage(request: AdminRequest, stage_id: int) -> HttpResponse:
    stage = _stage(stage_id)
    if request.method == "GET":
        return _render_stage(request, stage)
    form = StageForm(request.POST)
    if not form.is_valid():
        return _render_stage(request, stage, form=form, status=422)
    updated = services.update_stage(stage, form.settings(), by=request.user)
    messages.success(request, f"Stage {updated.name} saved.")
    return redirect("stages:stage", stage.pk)


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
@stages_refused
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
@stages_refused
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
@stages_refused
def restore_stage(request: AdminRequest, stage_id: int) -> HttpResponse:
    stage = _stage(stage_id)
    return _stage_row_action(
        request,
        stage,
        lambda: services.restore_stage(stage, by=request.user),
        ButtonForm(request.POST),
    )


def _stage_page(request: AdminRequest, stage_id: int) -> str:
    return reverse("stages:stage", args=[stage_id])


@admin_only
@require_http_methods(["GET", "POST"])
@presents(flash_and_return(_stage_page))
def delete_stage(request: AdminRequest, stage_id: int) -> HttpResponse:
    """GET asks for confirmation (or explains why not); POST deletes."""
    stage = _stage(stage_id)
    if request.method == "POST":
        services.delete_stage(stage, by=request.user)
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


def _criterion_form_again(
    request: AdminRequest,
    message: str,
    status: int,
    stage_id: int | None = None,
    criterion_id: int | None = None,
) -> HttpResponse:
    criterion = None if criterion_id is None else _criterion(criterion_id)
    stage = _stage(stage_id) if criterion is None else criterion.stage
    kind = criterion.kind if criterion is not None else request.POST.get("kind", "")
    form = CriterionForm(request.POST, kind=kind)
    form.is_valid()
    form.add_error(None, message)
    return _render_criterion_form(request, stage, form, criterion=criterion, status=status)


def _criteria_of(request: AdminRequest, criterion_id: int) -> Callable[[str, int], HttpResponse]:
    return _refresh_criteria(request, _criterion(criterion_id).stage)


def _criteria_page(request: AdminRequest, criterion_id: int) -> str:
    criterion = _criterion(criterion_id)
    return reverse("stages:stage", args=[criterion.stage_id]) + f"#criterion-{criterion.pk}"


criteria_refused = presents(_list_refusal(_criteria_of, _criteria_page))


@admin_only
@require_http_methods(["GET", "POST"])
@presents(_form_refused(_criterion_form_again))
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
    if not form.is_valid():
        return _render_criterion_form(request, stage, form, status=422)
    criterion = services.add_criterion(stage, kind=kind, values=form.cleaned_data, by=request.user)
    messages.success(request, f"Criterion “{criterion.requirement}” added.")
    return redirect(reverse("stages:stage", args=[stage.pk]) + "#criteria")


@admin_only
@require_http_methods(["GET", "POST"])
@presents(_form_refused(_criterion_form_again))
def criterion(request: AdminRequest, criterion_id: int) -> HttpResponse:
    criterion = _criterion(criterion_id)
    stage = criterion.stage
    if request.method == "GET":
        form = CriterionForm.for_criterion(criterion)
        return _render_criterion_form(request, stage, form, criterion=criterion)
    form = CriterionForm(request.POST, kind=criterion.kind)
    if not form.is_valid():
        return _render_criterion_form(request, stage, form, criterion=criterion, status=422)
    services.update_criterion(criterion, values=form.cleaned_data, by=request.user)
    return redirect(reverse("stages:stage", args=[stage.pk]) + "#criteria")


@admin_only
@require_POST
@criteria_refused
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
@criteria_refused
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
