"""CSV import pages: upload → map and preview → confirm → progress and summary → undo.

Managers and admins only; anyone else, and anyone asking for someone else's import,
gets 404. The work is done by imports (services, runner, undo); these views read
forms and render.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import policy
from common.errors import DomainError, Refusal
from common.refusals import flash_and_return, presents
from imports import preview as previews
from imports import services, undo
from imports.forms import MappingForm, UploadForm
from imports.models import ImportJob, ImportKind, ImportStatus

RECENT_JOBS = 20


def _importer(request: HttpRequest) -> None:
    if not policy.can_import(request.user):
        raise Http404("Not found.")


def _job(request: HttpRequest, pk: int) -> ImportJob:
    """An import the user may see (their own; an admin's: all), else 404."""
    _importer(request)
    return get_object_or_404(services.visible_jobs(request.user), pk=pk)


def _start_page(request: HttpRequest, form: UploadForm, *, status: int) -> HttpResponse:
    jobs = list(services.visible_jobs(request.user)[:RECENT_JOBS])
    context = {"form": form, "jobs": jobs}
    return TemplateResponse(request, "imports/import_start.html", context, status=status)


def _upload_refused(
    request: HttpRequest, error: DomainError, refusal: Refusal
) -> HttpResponse | None:
    """A refused upload (unreadable file, over the quota): the form again with the reason."""
    if error.status == 404:
        return None
    form = UploadForm(request.POST, request.FILES)
    form.is_valid()
    form.add_error(None, refusal.message)
    return _start_page(request, form, status=refusal.status)


@login_required
@require_http_methods(["GET", "POST"])
@presents(_upload_refused)
def start(request: HttpRequest) -> HttpResponse:
    _importer(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "GET":
        return _start_page(request, form, status=200)
    if not form.is_valid():
        return _start_page(request, form, status=400)  # bad input, as a refusal would be
    data = form.cleaned_data
    kind = data["kind"]
    reference = (
        services.read_companions(
            organizations=data["organizations"],
            team_members=data["team_members"],
            products=data["products"],
        )
        if kind == ImportKind.DEALS
        else {}
    )
    job = services.start_import(
        by=request.user,
        upload=data["file"],
        kind=kind,
        pipeline=data["pipeline"],
        saved=data["saved"],
        reference=reference,
    )
    return redirect("import_preview", pk=job.pk)


def _preview_context(request: HttpRequest, job: ImportJob, form: Any = None) -> dict[str, Any]:
    scan = services.current_scan(job)
    preview = previews.build(job, by=request.user, scan_result=scan)
    form = form or MappingForm(preview=preview, user=request.user)
    return {"job": job, "preview": preview, "form": form}


def _preview_page(request: HttpRequest, pk: int) -> str:
    return reverse("import_preview", args=[pk])


def _status_page(request: HttpRequest, pk: int) -> str:
    return reverse("import_status", args=[pk])


@login_required
@require_http_methods(["GET", "POST"])
@presents(flash_and_return(_preview_page))
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The mapping form and what the import will do with it; POST saves the mapping."""
    job = _job(request, pk)
    if job.status != ImportStatus.UPLOADED:
        return redirect("import_status", pk=job.pk)
    template = (
        "imports/import_preview.html#preview" if request.htmx else "imports/import_preview.html"
    )
    if request.method == "POST":
        context = _preview_context(request, job)
        form = MappingForm(request.POST, preview=context["preview"], user=request.user)
        if not form.is_valid():
            context["form"] = form
            return TemplateResponse(request, template, context, status=422)
        services.update_mapping(
            job,
            by=request.user,
            mapping=form.mapping(),
            pipeline=form.cleaned_data.get("pipeline"),
            override_reason=form.cleaned_data.get("override_reason", ""),
            run_automations=bool(form.cleaned_data.get("run_automations")),
        )
        if form.cleaned_data["save_as"]:
            saved = services.save_mapping(job, by=request.user, name=form.cleaned_data["save_as"])
            messages.success(request, f"Mapping saved as “{saved.name}”.")
        if not request.htmx:
            return redirect("import_preview", pk=job.pk)
    return TemplateResponse(request, template, _preview_context(request, job))


@login_required
@require_POST
@presents(flash_and_return(_preview_page))
def confirm(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    services.confirm_import(job, by=request.user)
    return redirect("import_status", pk=job.pk)


@login_required
@require_POST
@presents(flash_and_return(_status_page))
def discard(request: HttpRequest, pk: int) -> HttpResponse:
    """Drop an upload that was never imported, and its file."""
    job = _job(request, pk)
    services.discard_import(job, by=request.user)
    messages.success(request, f"Discarded {job.original_name}.")
    return redirect("import_start")


@login_required
@require_GET
def status(request: HttpRequest, pk: int) -> HttpResponse:
    """Progress while the import runs (htmx polls the fragment), then its summary."""
    job = _job(request, pk)
    template = (
        "imports/import_status.html#progress" if request.htmx else "imports/import_status.html"
    )
    return TemplateResponse(request, template, {"job": job})


@login_required
@require_GET
def summary(request: HttpRequest, pk: int) -> HttpResponse:
    """The row-by-row summary (created, updated, skipped, failed, with reasons) as CSV."""
    job = _job(request, pk)
    if not job.summary_file:
        raise Http404("No summary yet.")
    name = f"{job.original_name.rsplit('.', 1)[0]}-import-{job.pk}-summary.csv"
    return FileResponse(
        job.summary_file.open("rb"), as_attachment=True, filename=name, content_type="text/csv"
    )


@login_required
@require_POST
@presents(flash_and_return(_status_page))
def undo_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    result = undo.undo_import(job, by=request.user)
    kept = f" ({result['kept']} kept: in use elsewhere)" if result["kept"] else ""
    messages.success(
        request,
        f"Import undone: {result['deals_deleted']:,} deals removed, "
        f"{result['deals_reverted']:,} restored{kept}.",
    )
    return redirect("import_status", pk=job.pk)
