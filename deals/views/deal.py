"""The deal page: fields, stage path with guidance and next-stage checklist, timeline."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from deals import queries
from deals.views.board import visible_deal
from stages import gate


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    deal = visible_deal(request, pk)
    stages = [s for s in deal.pipeline.stages.all() if not s.is_archived]
    open_stages = [s for s in stages if s.is_open]
    later = [s for s in open_stages if s.position > deal.stage.position]
    next_stage = later[0] if later else None
    checklist: list[dict[str, Any]] = []
    if next_stage is not None:
        failing = {f.criterion_id for f in gate.evaluate(deal, next_stage)}
        checklist = [
            {"text": c.requirement, "met": c.pk not in failing} for c in next_stage.criteria.all()
        ]
    deal.can_move = queries.edit_rule(request.user)(deal)
    context = {
        "deal": deal,
        "stages": stages,
        "next_stage": next_stage,
        "checklist": checklist,
        "timeline": queries.timeline(deal),
        "next_activity": deal.activities.filter(done=False).order_by("due_at", "id").first(),
    }
    return TemplateResponse(request, "deals/deal_detail.html", context)
