"""The deal workspace: deal page, in-place edit, activities, quick actions, new deals."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from accounts import policy
from accounts.models import User
from common.errors import BadInput, DomainError, NotAllowed, NotVisible, Refusal, describe
from common.ids import parse_number
from common.refusals import presents
from deals import activities, queries, services
from deals.forms import (
    ActivityForm,
    CloseForm,
    DealEditForm,
    NewDealForm,
    QuickDealForm,
    ReassignForm,
    active_stages,
)
from deals.models import Deal, MoveSource
from deals.views.board import added, changeable_deal, visible_deal
from stages.models import ActivityType, Stage, StageKind

TEMPLATE = "deals/deal_detail.html"


def _detail_context(request: HttpRequest, deal: Deal) -> dict[str, Any]:
    stages = [s for s in deal.pipeline.stages.all() if not s.is_archived]
    spent = queries.days_by_stage(deal)
    for stage in stages:
        stage.days_spent = spent.get(stage.pk)
    upcoming = queries.next_step(deal, stages)
    deal.can_move = policy.can_change_deal(request.user, deal)
    deal.can_delete = policy.can_delete_deal(request.user, deal)
    acts = list(deal.activities.select_related("owner").order_by("done", "due_at", "id"))
    return {
        "deal": deal,
        "stages": stages,
        "next_stage": upcoming.stage,
        "checklist": upcoming.checklist,
        "timeline": queries.timeline(deal),
        "open_activities": [a for a in acts if not a.done],
        "done_activities": sorted(
            (a for a in acts if a.done),
            key=lambda a: a.done_at or a.created_at,
            reverse=True,
        ),
        "next_activity": next((a for a in acts if not a.done), None),
        "activity_form": ActivityForm(),
        "activity_types": ActivityType.choices,
        "owners": _owner_choices(request.user) if policy.can_reassign(request.user) else None,
        "now": timezone.now(),
    }


def _owner_choices(user: User) -> Any:
    return policy.assignable_owners(user).order_by("first_name", "username")


def _page(request: HttpRequest, deal: Deal, *, status: int = 200, **extra: Any) -> HttpResponse:
    context = {**_detail_context(request, deal), **extra}
    name = f"{TEMPLATE}#workspace" if request.htmx else TEMPLATE
    return TemplateResponse(request, name, context, status=status)


def _refused(
    request: HttpRequest, error: DomainError, refusal: Refusal, pk: int, **kwargs: Any
) -> HttpResponse | None:
    """A refused action on the deal page: the page again, as it is now, with the reason
    (what the gate is missing, for a 422). An unseen deal is left to the 404."""
    if isinstance(error, NotVisible):
        return None
    message = refusal.message
    if isinstance(error, services.GateBlocked):
        message = "; ".join(f.message for f in error.failures)
    return _page(request, visible_deal(request, pk), error=message, status=refusal.status)


def _edit_refused(
    request: HttpRequest, error: DomainError, refusal: Refusal, pk: int
) -> HttpResponse | None:
    """A refused edit keeps what the user typed; a gate failure sits on the stage field."""
    if not isinstance(error, services.GateBlocked):
        return _refused(request, error, refusal, pk)
    form = DealEditForm(request.POST, pipeline_stages=active_stages())
    form.is_valid()
    form.add_error("stage", [f.message for f in error.failures])
    return _page(request, visible_deal(request, pk), edit_form=form, status=refusal.status)


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _page(request, visible_deal(request, pk))


@login_required
@require_GET
def next_stage(request: HttpRequest, pk: int) -> HttpResponse:
    """For the card: the current playbook and what the next stage will ask for."""
    deal = visible_deal(request, pk)
    stages = [s for s in deal.pipeline.stages.all() if not s.is_archived]
    upcoming = queries.next_step(deal, stages)
    context = {
        "deal": deal,
        "next_stage": upcoming.stage,
        "checklist": upcoming.checklist,
        "card": True,
    }
    return TemplateResponse(request, "deals/deal_detail.html#next_step", context)


def _edit_initial(deal: Deal) -> dict[str, Any]:
    return {
        "title": deal.title,
        "amount": deal.amount,
        "currency": deal.currency,
        "expected_close_date": deal.expected_close_date,
        "probability_override": deal.probability_override,
        "next_step": deal.next_step,
        "product": deal.product,
        "organization_name": deal.organization.name if deal.organization else "",
        "person_name": deal.person.name if deal.person else "",
        "version": deal.version,
        "stage": deal.stage_id,
    }


@login_required
@require_http_methods(["GET", "POST"])
@presents(_edit_refused)
def edit(request: HttpRequest, pk: int) -> HttpResponse:
    """In-place edit of all fields; changing the stage here is a move through the gate."""
    deal = changeable_deal(request, pk)
    if request.method == "GET":
        form = DealEditForm(initial=_edit_initial(deal), pipeline_stages=active_stages())
        return _page(request, deal, edit_form=form)
    form = DealEditForm(request.POST, pipeline_stages=active_stages())
    if not form.is_valid():
        return _page(request, deal, edit_form=form, status=422)
    data = form.cleaned_data
    services.edit_deal(
        deal,
        {k: data[k] for k in services.EDITABLE_FIELDS if k in data},
        by=request.user,
        expected_version=data["version"],
        organization_name=data["organization_name"],
        person_name=data["person_name"],
        to_stage=data["stage"],
        source=MoveSource.FORM,
    )
    if not request.htmx:
        return redirect("deal_detail", pk=pk)
    return _page(request, visible_deal(request, pk), notice="Saved.")


@login_required
@require_POST
@presents(_refused)
def close(request: HttpRequest, pk: int, outcome: str) -> HttpResponse:
    """Quick actions: mark won (amount required) or lost (reason required)."""
    deal = changeable_deal(request, pk)
    kind = StageKind.WON if outcome == "won" else StageKind.LOST
    target = deal.pipeline.stages.filter(kind=kind, is_archived=False).first()
    form = CloseForm(request.POST)
    if target is None or not form.is_valid():
        raise BadInput("That request was not understood.")
    fields = {k: v for k, v in form.cleaned_data.items() if k in ("amount", "lost_reason") and v}
    services.complete_and_move(
        deal,
        target,
        services.GateFixes(fields=fields),
        by=request.user,
        expected_version=form.cleaned_data["version"],
        source=MoveSource.FORM,
    )
    if not request.htmx:
        return redirect("deal_detail", pk=pk)
    return _page(request, visible_deal(request, pk), notice=f"Marked {target.name}.")


@login_required
@require_POST
@presents(_refused)
def reassign(request: HttpRequest, pk: int) -> HttpResponse:
    deal = visible_deal(request, pk)
    form = ReassignForm(request.POST, owners=_owner_choices(request.user))
    if not form.is_valid():
        raise BadInput("Pick someone you may assign to.")
    services.reassign_deal(
        deal,
        new_owner=form.cleaned_data["owner"],
        by=request.user,
        expected_version=form.cleaned_data["version"],
    )
    if not request.htmx:
        return redirect("deal_detail", pk=pk)
    return _page(request, visible_deal(request, pk), notice="Reassigned.")


@login_required
@require_http_methods(["GET", "POST"])
@presents(_refused)
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a deal, after a confirm step (the GET): managers and admins only."""
    deal = visible_deal(request, pk)
    if not policy.can_delete_deal(request.user, deal):
        raise NotAllowed("Only managers and admins can delete deals.")
    if request.method == "GET":
        return TemplateResponse(request, "deals/deal_delete.html", {"deal": deal})
    version = parse_number(request.POST.get("version"), name="version")
    if version is None:
        raise BadInput("That request was not understood.")
    title = deal.title
    services.delete_deal(deal, by=request.user, expected_version=version)
    messages.success(request, f"Deleted “{title}”.")
    board = f"{reverse('board')}?pipeline={deal.pipeline_id}"
    if request.htmx:
        return HttpResponseClientRedirect(board)
    return redirect(board)


@login_required
@require_POST
@presents(_refused)
def activity_create(request: HttpRequest, pk: int) -> HttpResponse:
    deal = changeable_deal(request, pk)
    form = ActivityForm(request.POST)
    if not form.is_valid():
        return _page(request, deal, activity_form_errors=form, status=422)
    activities.log_activity(deal, by=request.user, **form.cleaned_data)
    if not request.htmx:
        return redirect("deal_detail", pk=pk)
    return _page(request, visible_deal(request, pk), notice="Activity saved.")


def _activity_deal(request: HttpRequest, activity_id: int, *, delete: bool = False) -> Deal:
    """The deal of an activity the user may change (complete, edit) or, with `delete`,
    delete: 404 if they may not see it, 403 if they see it but may not do this."""
    activity = policy.visible_or_404(policy.activities(request.user), activity_id)
    deal = changeable_deal(request, activity.deal_id)
    if delete and not policy.can_delete_activity(request.user, activity):
        raise NotAllowed("You can only delete your own activities.")
    return deal


def _activity_refused(
    request: HttpRequest, error: DomainError, refusal: Refusal, activity_id: int
) -> HttpResponse | None:
    if isinstance(error, NotVisible):
        return None
    deal = _activity_deal(request, activity_id)
    return _page(request, deal, error=refusal.message, status=refusal.status)


def _back(request: HttpRequest, deal: Deal, notice: str) -> HttpResponse:
    """After an activity change: the board card, My activities, or the deal page."""
    target = request.POST.get("from")
    if target == "activities":
        return redirect("my_activities")
    if target == "board" and not request.htmx:
        return redirect(f"{reverse('board')}?pipeline={deal.pipeline_id}")
    if target == "board":
        return HttpResponseClientRefresh()  # the card's column may change too
    if not request.htmx:
        return redirect("deal_detail", pk=deal.pk)
    return _page(request, deal, notice=notice)


@login_required
@require_POST
@presents(_activity_refused)
def activity_complete(request: HttpRequest, activity_id: int) -> HttpResponse:
    deal = _activity_deal(request, activity_id)
    activities.complete_activity(activity_id, by=request.user)
    return _back(request, visible_deal(request, deal.pk), "Marked done.")


@login_required
@require_POST
@presents(_activity_refused)
def activity_update(request: HttpRequest, activity_id: int) -> HttpResponse:
    deal = _activity_deal(request, activity_id)
    form = ActivityForm(request.POST)
    if not form.is_valid():
        return _page(request, deal, error="Check the activity fields.", status=422)
    data = form.cleaned_data
    activities.update_activity(
        activity_id,
        by=request.user,
        subject=data["subject"],
        type=data["type"],
        due_at=data["due_at"],
        note=data["note"],
    )
    return _back(request, visible_deal(request, deal.pk), "Activity updated.")


@login_required
@require_POST
@presents(_activity_refused)
def activity_delete(request: HttpRequest, activity_id: int) -> HttpResponse:
    deal = _activity_deal(request, activity_id, delete=True)
    activities.delete_activity(activity_id, by=request.user)
    return _back(request, visible_deal(request, deal.pk), "Activity deleted.")


@login_required
@require_GET
def my_activities(request: HttpRequest) -> HttpResponse:
    """Today, overdue and upcoming open activities of the user, in one query."""
    now = timezone.localtime()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timezone.timedelta(days=1)
    rows = list(
        policy.activities(request.user)
        .filter(owner=request.user, done=False)
        .select_related("deal")
        .order_by("due_at", "id")[:300]
    )
    context = {
        "overdue": [a for a in rows if a.due_at and a.due_at < now],
        "today": [a for a in rows if a.due_at and now <= a.due_at < end],
        "upcoming": [a for a in rows if a.due_at is None or a.due_at >= end],
        "now": now,
    }
    return TemplateResponse(request, "deals/my_activities.html", context)


def _live_stages() -> Any:
    return Stage.objects.filter(is_archived=False, pipeline__is_archived=False)


def _new_deal_stage(request: HttpRequest) -> Stage | None:
    """The stage asked for (the column's), else the first open stage; never an archived one."""
    asked = request.GET.get("stage") or request.POST.get("stage")
    live = _live_stages()
    return (
        live.filter(pk=parse_number(asked, name="stage")).first()
        or live.filter(kind=StageKind.OPEN).order_by("pipeline__position", "position").first()
    )


def _create(request: HttpRequest, form: NewDealForm, stage: Stage) -> Deal:
    """The one call both new-deal forms (the page and the board's quick add) make."""
    data = form.cleaned_data
    items = form.items()
    return services.create_deal(
        by=request.user,
        stage=stage,
        organization_name=data.get("organization_name", ""),
        person_name=data.get("person_name", ""),
        with_items=services.GateFixes(
            fields={},
            checklist_ids=items["checklist_ids"],
            activities=items["activities"],
        ),
        role_names=tuple(items["roles"]),
        **{k: data[k] for k in services.EDITABLE_FIELDS if k in data},
    )


@login_required
@require_http_methods(["GET", "POST"])
def new_deal(request: HttpRequest) -> HttpResponse:
    """Create a deal in a stage (default: the first open stage); the stage's gate applies.

    From the board (htmx) it is the column's inline quick add (`quick_add`); otherwise the
    new-deal page."""
    if request.htmx:
        # A column's own stage, or nothing: an unknown or archived one is not swapped.
        asked = parse_number(request.GET.get("stage") or request.POST.get("stage"), name="stage")
        return quick_add(request, get_object_or_404(_live_stages(), pk=asked))
    stage = _new_deal_stage(request)
    if stage is None:
        return redirect("board")
    form = NewDealForm(request.POST or None, initial={"currency": "USD"}, stage=stage)
    context = {"form": form, "stage": stage}
    if request.method == "POST" and form.is_valid():
        try:
            deal = _create(request, form, stage)
        except DomainError as error:
            # The form again, with what the user typed and why it was refused.
            refusal = describe(error)
            if isinstance(error, services.GateBlocked):
                context["failures"] = error.failures
            else:
                form.add_error(None, refusal.message)
            return TemplateResponse(request, "deals/deal_new.html", context, status=refusal.status)
        messages.success(request, f"Created “{deal.title}” in {stage.name}.")
        return redirect(f"{reverse('board')}?pipeline={stage.pipeline_id}")
    status = 422 if request.method == "POST" else 200
    return TemplateResponse(request, "deals/deal_new.html", context, status=status)


def quick_add(request: HttpRequest, stage: Stage) -> HttpResponse:
    """A column's inline quick add. GET: its form, asking what the stage's entry criteria
    need, or, for a stage a new deal cannot start in, the stages it may. POST: the deal is
    created (the card goes to the top of its column, the column's totals follow, and a
    blank form waits for the next) or the form comes back with each missing item (422).
    The board's filters ride along in the query string, so the card and the totals keep
    to them."""
    form = QuickDealForm(
        request.POST or None, initial={"currency": settings.DEFAULT_CURRENCY}, stage=stage
    )
    board_query = request.GET.copy()
    board_query.pop("stage", None)
    context: dict[str, Any] = {
        "form": form,
        "stage": stage,
        "board_query": board_query.urlencode(),
    }
    if request.method == "GET":
        starts = queries.start_stages(stage.pipeline_id)
        if stage.pk in starts.why_not:
            context.update(starts=starts.stages, why_not=starts.why_not[stage.pk])
        return TemplateResponse(request, "deals/board.html#quick_add", context)
    status = 422
    if form.is_valid():
        try:
            deal = _create(request, form, stage)
        except DomainError as error:
            status = describe(error).status
            if not isinstance(error, services.GateBlocked):
                form.add_error(None, describe(error).message)
            for failure in form.add_failures(getattr(error, "failures", [])):
                form.add_error(None, failure.message)
        else:
            return added(request, deal, context)
    return TemplateResponse(request, "deals/board.html#quick_add", context, status=status)
