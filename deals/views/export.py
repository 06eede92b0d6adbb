"""The board as CSV: the deals the board shows with its filters, for the user who asks.

Rows come from `policy.deals(user)` with the board's own filters
(`BoardFilterForm` → `BoardFilters`), so an export never holds a deal its reader could
not open. One query streams every row, whatever the number of deals; text cells are
defused against spreadsheet formulas (common/exports.py).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Value
from django.db.models.functions import Coalesce, Concat, NullIf, Trim
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from accounts import policy
from common.exports import safe_row, streaming_csv
from common.ids import query_number
from deals import queries
from deals.forms import BoardFilterForm
from stages.models import StageKind

HEADER = [
    "id",
    "title",
    "organization",
    "contact",
    "owner",
    "stage",
    "amount",
    "currency",
    "probability",
    "expected close date",
    "product",
    "next step",
    "stage entered",
    "created",
    "external id",
]


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a stream."""

    def write(self, value: str) -> str:
        return value


def _rows(deals: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(HEADER)  # the BOM tells Excel the file is UTF-8
    for row in deals.iterator(chunk_size=2000):
        yield writer.writerow(safe_row(row))


@login_required
@require_GET
def board_export(request: HttpRequest) -> StreamingHttpResponse:
    """The open deals of the board's pipeline, filtered and sorted as the board is."""
    pipeline = queries.board_pipeline(query_number(request.GET, "pipeline"))
    form = BoardFilterForm(request.GET)
    filters = form.filters(request.user)
    deals = filters.apply(policy.deals(request.user)).filter(
        pipeline=pipeline, stage__kind=StageKind.OPEN, stage__is_archived=False
    )
    owner = Coalesce(
        NullIf(Trim(Concat("owner__first_name", Value(" "), "owner__last_name")), Value("")),
        "owner__username",
    )
    order = queries.SORTS.get(filters.sort, queries.SORTS["manual"])
    if filters.sort == "next_activity":
        deals = queries.with_next_activity(deals)
    rows = deals.order_by("stage__position", *order).values_list(
        "pk",
        "title",
        "organization__name",
        "person__name",
        owner,
        "stage__name",
        "amount",
        "currency",
        Coalesce("probability_override", "stage__probability"),
        "expected_close_date",
        "product",
        "next_step",
        "stage_entered_at",
        "created_at",
        "external_id",
    )
    stamp = timezone.localdate().isoformat()
    name = f"{slugify(pipeline.name if pipeline else 'board') or 'board'}-{stamp}.csv"
    return streaming_csv(request, _rows(rows), name)
