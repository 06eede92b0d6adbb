"""The board: columns of deal cards, moves by drag or menu, blocked moves fixed in place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts import policy
from common import formats
from common.errors import BadInput, DomainError, NotAllowed, NotVisible, Refusal, describe
from common.ids import query_number
from common.ratelimit import rate_limited
from common.refusals import presents
from deals import queries, services
from deals.forms import (
    BoardFilterForm,
    BulkMoveForm,
    GateFixForm,
    MoveCommand,
    QuickDealForm,
    active_stage,
)
from deals.models import Deal, MoveSource, StalledRule
from stages import gate
from stages.models import Stage

DEAL_RELATIONS = ("stage", "pipeline", "owner", "organization", "person")
# What a move needs joined: the stage it leaves, and what its answer's card prints.
MOVE_RELATIONS = ("stage", "owner", "organization")


def visible_deal(request: HttpRequest, pk: int, related: tuple[str, ...] = DEAL_RELATIONS) -> Deal:
    """The deal if the user may see it; 404 otherwise, so ids cannot be probed."""
    return policy.visible_or_404(policy.deals(request.user).select_related(*related), pk)


def changeable_deal(
    request: HttpRequest, pk: int, related: tuple[str, ...] = DEAL_RELATIONS
) -> Deal:
    """The deal if the user may change it: 404 if they may not see it, 403 if they see it
    but may not change it (a rep and a teammate's deal). The action checks again."""
    return policy.changeable_deal_or_403(request.user, visible_deal(request, pk, related))


def _filters(request: HttpRequest) -> queries.BoardFilters:
    if not request.GET:  # the unfiltered board (and every move from it): no form needed
        return queries.UNFILTERED
    return BoardFilterForm(request.GET).filters(request.user)


def _prepare_cards(request: HttpRequest, deals: list[Deal], *, movable: bool = False) -> None:
    """What a card shows beyond its row, worked out once per request rather than per card in
    the template (~150 cards a board): whether the user may move it (`movable` when that is
    already known), its page URL (its move, gate and next-step URLs hang off it, see
    deals/urls.py) built without one reverse() per card, its stalled badges, and its next
    activity's date and whether it is overdue."""
    may_edit = (lambda deal: True) if movable else policy.deal_change_rule(request.user)
    prefix = reverse("deal_detail", args=[0]).removesuffix("0/")
    now = timezone.now()
    day = _day_label()
    for deal in deals:
        deal.can_move = may_edit(deal)
        deal.url = f"{prefix}{deal.pk}/"
        deal.flags = stalled_badges(deal, day)
        deal.initials = initials(deal.owner.display_name)
        due = deal.next_activity_due
        deal.next_due = day(due) if due else ""
        deal.overdue = due is not None and due < now


def initials(name: str) -> str:
    """ "AP" for "Ada Park": the owner's mark on a card."""
    return "".join(word[0] for word in name.split()[:2]).upper() or "?"


@dataclass(frozen=True)
class Badge:
    """One stalled flag as a card shows it: the rule's label, and since when."""

    label: str
    since: str


def stalled_badges(deal: Deal, day: Callable[[datetime], str] | None = None) -> list[Badge]:
    """`deal`'s stalled flags (prefetched, in their order) as the card's badges."""
    day = day or _day_label()
    return [
        Badge(StalledRule(flag.rule).label, day(flag.flagged_at))
        for flag in deal.stalled_flags.all()
    ]


def _day_label() -> Callable[[datetime], str]:
    """ "Nov 26" for a moment, in the user's time zone (`formats.short_day`); each
    day is formatted once per request (a board's flags mostly share a few days)."""
    labels: dict[date, str] = {}

    def label(moment: datetime) -> str:
        local = timezone.localtime(moment).date()
        if local not in labels:
            labels[local] = formats.short_day(local)
        return labels[local]

    return label


def _columns(
    request: HttpRequest,
    pipeline: Any,
    filters: queries.BoardFilters,
    stage_ids: list[int] | None = None,
) -> list:
    columns = queries.board(request.user, pipeline, filters, stage_ids=stage_ids)
    _prepare_cards(request, [card for column in columns for card in column.cards])
    return columns


def _stage_context(pipeline: Any) -> dict[str, Any]:
    stages = [s for s in pipeline.stages.all() if not s.is_archived]
    return {
        "targets": stages,
        "closed_stages": [s for s in stages if not s.is_open],
        **_card_context(),
    }


def _card_context() -> dict[str, Any]:
    """What every card compares against, computed once per response."""
    return {
        "today": timezone.localdate(),
        "undo_seconds": settings.UNDO_SECONDS,
    }


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    pipeline, pipelines = queries.board_pipelines(query_number(request.GET, "pipeline"))
    filter_form = BoardFilterForm(request.GET)
    people = queries.filter_people(request.user)
    context: dict[str, Any] = {
        "pipeline": pipeline,
        "pipelines": pipelines,
        "filter_form": filter_form,
        "query": request.GET.urlencode(),
        "people": people,
        "teams": queries.filter_teams(people),
        "filtered": any(key != "pipeline" for key in request.GET),
    }
    if pipeline is not None:
        filters = filter_form.filters(request.user)
        context["columns"] = _columns(request, pipeline, filters)
        context.update(_stage_context(pipeline))
        context["snooze_min"] = context["today"] + timedelta(days=1)
    return TemplateResponse(request, "deals/board.html", context)


@login_required
@require_GET
def column_more(request: HttpRequest, stage_id: int) -> HttpResponse:
    """The next page of one column ("Load more")."""
    stage = get_object_or_404(Stage.objects.select_related("pipeline"), pk=stage_id)
    offset = query_number(request.GET, "offset") or 0
    cards = queries.column_page(request.user, stage, _filters(request), offset=offset)
    _prepare_cards(request, cards)
    query = request.GET.copy()
    query.pop("offset", None)  # the next link sets its own
    context = {
        "cards": cards,
        "stage": stage,
        "next_offset": offset + len(cards),
        "has_more": len(cards) == settings.BOARD_PAGE_SIZE,
        "query": query.urlencode(),
        **_card_context(),
    }
    return TemplateResponse(request, "deals/board.html#more_cards", context)


def _columns_response(
    request: HttpRequest,
    deal: Deal,
    stage_ids: list[int],
    *,
    status: int,
    dialog: str = "",
) -> HttpResponse:
    """A refused move: the deal's column and the one it was aimed at, re-rendered in full
    (out of band) with their totals, plus the flash area.

    A dragged card sits wherever it was dropped (a column, a drop zone) until the server
    answers; re-rendering both columns and the drop zones puts it back where the server
    says it is, wherever that was, whatever the board's sort. Refusals are rare, so the
    cost of two first pages is paid only there; a move that goes through gets
    `_card_response`.
    """
    pipeline = queries.board_pipeline(deal.pipeline_id)
    filters = _filters(request)
    columns = _columns(request, pipeline, filters, stage_ids)
    context = {
        "columns": columns,
        "dialog": dialog,
        "deal": deal,
        "pipeline": pipeline,
        "query": request.GET.urlencode(),
        **_stage_context(pipeline),
    }
    return TemplateResponse(request, "deals/board.html#move_response", context, status=status)


def _card_response(
    request: HttpRequest,
    deal: Deal,
    from_stage: Stage,
    *,
    in_place: bool,
    undo: Any = None,
    notice: str = "",
) -> HttpResponse:
    """A move that went through: only what changed, whatever the size of the columns.

    Out of band: the moved card, re-rendered with its new version, and both columns'
    totals; then the flash (with its undo) and an emptied gate dialog. A dragged card
    (`in_place`) already sits where it was dropped and is replaced by id. Otherwise (the
    menu, a completed gate form, an undo) it leaves its old column and appears at the top
    of the new one, where `move_deal` puts it. A card the board no longer shows (closed,
    or outside the board's filters, which the request carries) is removed.
    Three queries: the card, its stalled flags, the two columns' totals.
    """
    filters = _filters(request)
    card = queries.board_card(request.user, filters, deal)
    if card is not None:
        _prepare_cards(request, [card], movable=True)  # the user just moved it
    context = {
        "heads": queries.column_heads(request.user, filters, [from_stage, deal.stage]),
        "card": card,
        "moved": deal,
        "in_place": in_place,
        "undo": undo,
        "notice": notice,
        "query": request.GET.urlencode(),
        **_card_context(),
    }
    return TemplateResponse(request, "deals/board.html#moved", context)


def added(request: HttpRequest, deal: Deal, context: dict[str, Any]) -> HttpResponse:
    """A deal made by a column's quick add: a blank form for the next one, and out of band
    the new card at the top of its column (unless the board's filters hide it), the
    column's totals and a notice. `context` is the quick add's (its stage, board query)."""
    filters = _filters(request)
    card = queries.board_card(request.user, filters, deal)
    if card is not None:
        _prepare_cards(request, [card], movable=True)  # the user just made it
    stage = context["stage"]
    shown = "" if card is not None else " The board filters hide it."
    context = {
        **context,
        "form": QuickDealForm(initial={"currency": settings.DEFAULT_CURRENCY}, stage=stage),
        "heads": queries.column_heads(request.user, filters, [deal.stage]),
        "card": card,
        "notice": f"Created “{deal.title}” in {deal.stage.name}.{shown}",
        **_card_context(),
    }
    return TemplateResponse(request, "deals/board.html#added", context)


def _plain_redirect(request: HttpRequest, deal: Deal) -> HttpResponse:
    return redirect(f"{reverse('board')}?pipeline={deal.pipeline_id}")


def _move_refused(
    request: HttpRequest, error: DomainError, refusal: Refusal, pk: int
) -> HttpResponse | None:
    """A refused board move: the gate form (422), the fresh card at its place (409), or both
    columns again with the reason, so a dragged card snaps back (400, 403). An unseen
    deal: 404."""
    if isinstance(error, NotVisible):
        return None
    if isinstance(error, services.GateBlocked):
        source = request.POST.get("source")
        return _blocked(request, error, source=source if source in MOVE_SOURCES else "")
    deal = getattr(error, "current", None) or visible_deal(request, pk)
    if isinstance(error, BadInput) and not policy.can_change_deal(request.user, deal):
        # A move reads no deal before checking its input: one who may not change the deal
        # hears that (403), as they would for a well-formed move.
        refusal = describe(NotAllowed("You can only change deals you own or manage."))
    return _error(request, deal, refusal.message, status=refusal.status)


MOVE_SOURCES = {MoveSource.BOARD, MoveSource.MENU, MoveSource.UNDO}


@login_required
@require_POST
@rate_limited("move")
@presents(_move_refused)
def move(request: HttpRequest, pk: int) -> HttpResponse:
    """Board drop or "Move to stage" menu. 200 moved, 409 stale, 422 gate failed, 404 unseen.

    Both post the board's one move form (board.js fills it in). Under htmx a move that
    goes through answers with the moved card and the two columns' totals only
    (`_card_response`); a drop within its own column reorders it (204). Refusals are
    answered by `_move_refused`. Without htmx: a redirect to the board.
    """
    command = MoveCommand.parse(request.POST)
    stage = active_stage(command.stage_id)
    if stage is None:
        raise BadInput("That stage does not exist.")
    if request.htmx and not stage.is_open:
        deal = changeable_deal(request, pk, MOVE_RELATIONS)
        return _closing_page(request, deal, stage, source=command.source)
    # No read before the move: its lock reads the deal (404 or 403 if the user may not
    # change it) with the stage, owner and organization the answer's card prints.
    result = services.move_deal(
        pk,
        stage,
        by=request.user,
        expected_version=command.version,
        position=services.Placement(after_id=command.after, before_id=command.before),
        source=command.source,
        override_reason=command.override_reason,
        request_key=command.key,
    )
    if result.change is None:
        return HttpResponse(status=204) if request.htmx else _plain_redirect(request, result.deal)
    # A replayed move's own origin, not where this (retried) request found the deal.
    return _moved(request, result, result.from_stage, in_place=command.source == MoveSource.BOARD)


def _moved(
    request: HttpRequest, result: services.MoveResult, from_stage: Stage, *, in_place: bool
) -> HttpResponse:
    text = f"Moved “{result.deal.title}” to {result.deal.stage.name}."
    if not request.htmx:
        messages.success(request, text)
        if _from_deal_page(request):
            return redirect("deal_detail", pk=result.deal.pk)
        return _plain_redirect(request, result.deal)
    # Its URL once here: the flash's form prints it twice (a reverse() each in the template).
    url = reverse("deal_undo", args=[result.deal.pk])
    undo = {"deal": result.deal, "change": result.change, "text": text, "url": url}
    return _card_response(request, result.deal, from_stage, in_place=in_place, undo=undo)


def _error(request: HttpRequest, deal: Deal, message: str, *, status: int) -> HttpResponse:
    """Refusals put a dragged card back, with the reason.

    Three columns: where the deal is now, where it was aimed, and where the page showed it
    (`from`, sent by board.js). After a stale move (409) the last differs from the first:
    the fresh card goes to its place (`_stale_response`) and the three columns' totals are
    corrected. Other refusals (rare) re-render the columns.
    """
    if not request.htmx:
        messages.error(request, message)
        return redirect(f"{reverse('board')}?pipeline={deal.pipeline_id}")
    posted = (request.POST.get("stage"), request.POST.get("from"))
    stage_ids = [deal.stage_id, *(_int(value) or 0 for value in posted)]
    if status == 409:
        return _stale_response(request, deal, stage_ids, message)
    response = _columns_response(request, deal, stage_ids, status=status)
    response.context_data["error"] = message
    return response


def _stale_response(
    request: HttpRequest, deal: Deal, stage_ids: list[int], message: str
) -> HttpResponse:
    """A stale move (409): the deal's card as it is now and the three columns' totals, not
    the columns themselves (a conflict is a routine answer under contention; re-rendering
    three first pages cost several times a move).

    The card comes as the live board's card fragment: the card and the card it follows in
    its column under the board's sort (`data-after`), which the page uses to put it at its
    exact place, as it places a card someone else moved (live.js `placeCard`), wherever
    the dragged copy was dropped. A card the board does not show (closed, filtered out)
    leaves it. The locked deal in hand (with its stage, owner and organization) is the
    card, as in a move's answer (`queries.board_card`). Five queries: the card's next
    activity and stalled flags, the card before it, the columns' stages, their totals.
    """
    filters = _filters(request)
    card = queries.board_card(request.user, filters, deal)
    after = None
    if card is not None:
        # The lock judged the change rule on the current row before the version: a 409
        # goes only to one who may change the deal, so the fresh card is movable.
        _prepare_cards(request, [card], movable=True)
        after = queries.card_after(request.user, filters, card)
    stages = queries.column_stages(deal.pipeline_id, stage_ids)
    context = {
        "heads": queries.column_heads(request.user, filters, stages),
        "deal": card,
        "stale": deal,
        "after": after,
        "error": message,
        **_card_context(),
    }
    return TemplateResponse(request, "deals/board.html#stale", context, status=409)


def _blocked(request: HttpRequest, blocked: services.GateBlocked, *, source: str) -> HttpResponse:
    """The inline form that lets the user supply what the gate is missing (422)."""
    deal, stage = blocked.deal, blocked.stage
    form = GateFixForm(
        initial={"stage": stage.pk, "version": deal.version, "source": source},
        deal=deal,
        failures=blocked.failures,
        user=request.user,
    )
    return _gate_page(request, deal, stage, form, blocked.failures)


def _closing_page(request: HttpRequest, deal: Deal, stage: Stage, *, source: str) -> HttpResponse:
    """A board drop on Won or Lost (or the menu's): first confirm the amount and close
    date, or give the reason, in the same form a blocked move answers with; it completes
    the move through `fix_and_move`, with its undo."""
    failures = gate.evaluate(deal, stage)
    form = GateFixForm(
        initial={"stage": stage.pk, "version": deal.version, "source": source},
        deal=deal,
        failures=failures,
        user=request.user,
        closing=stage.kind,
    )
    # What closing always asks is not listed again as missing.
    others = [f for f in failures if f.kind not in {"won_amount", "lost_reason"}]
    return _gate_page(request, deal, stage, form, others, status=200)


def _gate_page(
    request: HttpRequest,
    deal: Deal,
    stage: Stage,
    form: GateFixForm,
    failures: list,
    *,
    status: int = 422,
) -> HttpResponse:
    context = {
        "deal": deal,
        "stage": stage,
        "form": form,
        "failures": failures,
        "closing": not stage.is_open,
        "from_deal": _from_deal_page(request),
    }
    if not request.htmx:
        return TemplateResponse(request, "deals/gate_fix.html", context, status=422)
    # The target column too: a card dragged there must leave it while the form is open.
    stage_ids = [deal.stage_id, stage.pk]
    response = _columns_response(request, deal, stage_ids, status=status, dialog="gate")
    response.context_data.update(context)
    return response


def _fix_refused(
    request: HttpRequest, error: DomainError, refusal: Refusal, pk: int
) -> HttpResponse | None:
    """A refused fix-and-move: the form again with what is still missing (422); otherwise
    as a refused move."""
    if isinstance(error, NotVisible):
        return None
    if isinstance(error, services.GateBlocked):
        deal = visible_deal(request, pk)
        form = GateFixForm(
            request.POST,
            deal=deal,
            failures=error.failures,
            user=request.user,
            closing="" if error.stage.is_open else error.stage.kind,
        )
        form.is_valid()
        return _gate_page(request, deal, error.stage, form, error.failures)
    deal = getattr(error, "current", None) or visible_deal(request, pk)
    return _error(request, deal, refusal.message, status=refusal.status)


@login_required
@require_POST
@rate_limited("move")
@presents(_fix_refused)
def fix_and_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Submit the blocked-move form: save the missing items and move, in one transaction."""
    deal = changeable_deal(request, pk)
    to_stage = Stage.objects.filter(
        pk=_int(request.POST.get("stage")), is_archived=False, pipeline__is_archived=False
    ).first()
    if to_stage is None:
        raise BadInput("That stage does not exist.")
    failures = gate.evaluate(deal, to_stage)
    closing = "" if to_stage.is_open else to_stage.kind
    form = GateFixForm(
        request.POST, deal=deal, failures=failures, user=request.user, closing=closing
    )
    if not form.is_valid():
        if form.errors.keys() & {"version", "source"}:
            # Hidden fields the user cannot correct: the request itself is malformed.
            raise BadInput("That move request was not understood.")
        return _gate_page(request, deal, to_stage, form, failures)
    data = form.cleaned_data
    fixes = services.GateFixes(
        fields={k: data[k] for k in services.FIXABLE_FIELDS if k in data},
        organization_name=data.get("organization", ""),
        person_name=data.get("person", ""),
        checklist_ids=tuple(int(k[6:]) for k, v in data.items() if k.startswith("check_") and v),
        activities=tuple((k[9:], v) for k, v in data.items() if k.startswith("activity_") and v),
        contact_roles=tuple((k[5:], v.pk) for k, v in data.items() if k.startswith("role_") and v),
    )
    from_stage = deal.stage
    result = services.complete_and_move(
        deal,
        to_stage,
        fixes,
        by=request.user,
        expected_version=data["version"],
        source=data.get("source") or MoveSource.BOARD,
        override_reason=data.get("override_reason") or "",
    )
    # The card went back to its column when the form opened, so it moves like a menu move.
    return _moved(request, result, from_stage, in_place=False)


@login_required
@require_GET
def gate_hints(request: HttpRequest, pk: int) -> JsonResponse:
    """At drag start: which stages would refuse this deal, and why (one request per drag)."""
    deal = visible_deal(request, pk)
    targets = deal.pipeline.stages.filter(is_archived=False).exclude(pk=deal.stage_id)
    failures = gate.evaluate_many(deal, targets)
    return JsonResponse(
        {"blocked": {str(k): [f.message for f in v] for k, v in failures.items() if v}}
    )


def _undo_refused(
    request: HttpRequest, error: DomainError, refusal: Refusal, pk: int
) -> HttpResponse | None:
    if isinstance(error, services.GateBlocked):
        return _blocked(request, error, source=MoveSource.UNDO)
    return _move_refused(request, error, refusal, pk)


@login_required
@require_POST
@presents(_undo_refused)
def undo(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a deal back shortly after a move; on the board, answered like a menu move."""
    deal = changeable_deal(request, pk)
    from_stage = deal.stage
    change_id = _int(request.POST.get("change")) or 0
    result = services.undo_move(deal, by=request.user, change_id=change_id)
    if not request.htmx:
        messages.success(request, f"Moved “{deal.title}” back to {result.deal.stage.name}.")
        return _plain_redirect(request, deal)
    notice = f"Moved “{deal.title}” back to {result.deal.stage.name}."
    return _card_response(request, result.deal, from_stage, in_place=False, notice=notice)


def _from_deal_page(request: HttpRequest) -> bool:
    """A move asked from the deal page's stage path returns there, not to the board."""
    return request.POST.get("from") == "deal"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    """Move the selected cards; each goes through `move_deal`; report each outcome."""
    form = BulkMoveForm(request.POST)
    stage = None
    if form.is_valid():
        stage = Stage.objects.filter(
            pk=form.cleaned_data["stage"], is_archived=False, pipeline__is_archived=False
        ).first()
    if stage is None:
        messages.error(request, "Pick some deals and a stage to move them to.")
        return redirect("board")
    outcomes = services.bulk_move(form.cleaned_data["deals"], stage, by=request.user)
    context = {"outcomes": outcomes, "stage": stage}
    return TemplateResponse(request, "deals/bulk_result.html", context)
