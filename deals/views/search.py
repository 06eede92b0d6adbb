"""Global search: the header box's dropdown (htmx) and the /search/ page (plain GET).

Three queries whatever the data (deals, organizations, people), each through its
`accounts.policy`, so search never shows a record its page would answer 404 for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_required
from django.db.models import Case, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from accounts import policy
from common.ratelimit import rate_limited
from contacts import queries as contact_queries
from contacts.forms import SearchForm
from deals.queries import BoardFilters

if TYPE_CHECKING:
    from accounts.models import User

MIN_LENGTH = 2  # one letter matches nearly everything and helps nobody
DROPDOWN_ROWS = 5
PAGE_ROWS = 25


@dataclass(frozen=True)
class Found:
    rows: list[Any]
    more: bool


def _first(rows: QuerySet, limit: int) -> Found:
    """The first `limit` rows, and whether there are more, in one query."""
    fetched = list(rows[: limit + 1])
    return Found(rows=fetched[:limit], more=len(fetched) > limit)


def search_everything(user: User, q: str, *, limit: int) -> dict[str, Found]:
    """Deals (title, organization or person name), organizations and people matching `q`.

    Deals match as the board's search box does (`BoardFilters.q`), so both agree.
    """
    starts = Case(When(title__istartswith=q, then=Value(0)), default=Value(1))
    deals = (
        BoardFilters(q=q)
        .apply(policy.deals(user))
        .select_related("stage", "organization", "person")
        .annotate(starts_with_q=starts)
        .order_by("starts_with_q", "-updated_at", "-pk")
    )
    organizations = contact_queries.best_first(policy.organizations(user).matching(q), q)
    people = contact_queries.best_first(policy.people(user).matching(q), q)
    return {
        "deals": _first(deals, limit),
        "organizations": _first(organizations, limit),
        "people": _first(people.select_related("organization"), limit),
    }


@login_required
@require_GET
@rate_limited("search")
def search(request: HttpRequest) -> HttpResponse:
    q = SearchForm(request.GET).query()
    dropdown = bool(request.htmx) and not request.htmx.history_restore_request
    context: dict[str, Any] = {"q": q, "min_length": MIN_LENGTH, "too_short": len(q) < MIN_LENGTH}
    if not context["too_short"]:
        limit = DROPDOWN_ROWS if dropdown else PAGE_ROWS
        context.update(search_everything(request.user, q, limit=limit))
    template = "deals/search.html#dropdown" if dropdown else "deals/search.html"
    response = TemplateResponse(request, template, context)
    # The same URL answers a page or a fragment; caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response
