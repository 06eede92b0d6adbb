"""Reads for the board: a fixed number of queries whatever the number of deals."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    Count,
    DecimalField,
    Exists,
    F,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    Window,
    prefetch_related_objects,
)
from django.db.models.functions import RowNumber
from django.utils import timezone

from accounts import policy
from common import formats
from common.statements import Prepared
from deals import rows
from deals.models import Activity, Deal, StalledFlag
from stages.models import Pipeline, Stage, StageKind

if TYPE_CHECKING:
    from accounts.models import User

SORTS = {
    "manual": ("position", "id"),
    "next_activity": (F("next_activity_due").asc(nulls_last=True), "id"),
    "amount": (F("amount").desc(nulls_last=True), "id"),
    "days_in_stage": ("stage_entered_at", "id"),
}


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows; every field comes from the URL so a view can be bookmarked."""

    owner: int | None = None
    team: int | None = None
    stage: int | None = None
    q: str = ""
    stalled: bool = False
    no_next_activity: bool = False
    no_close_date: bool = False
    close_from: date | None = None
    close_to: date | None = None
    sort: str = "manual"

    def apply(self, deals: QuerySet[Deal]) -> QuerySet[Deal]:
        if self.owner:
            deals = deals.filter(owner_id=self.owner)
        if self.team:
            deals = deals.filter(owner__team_id=self.team)
        if self.stage:
            deals = deals.filter(stage_id=self.stage)
        if self.q:
            deals = deals.filter(
                Q(title__icontains=self.q)
                | Q(organization__name__icontains=self.q)
                | Q(person__name__icontains=self.q)
            )
        if self.stalled:
            deals = deals.filter(Exists(StalledFlag.objects.filter(deal=OuterRef("pk"))))
        if self.no_next_activity:
            deals = deals.filter(next_activity__isnull=True)
        if self.no_close_date:
            deals = deals.filter(expected_close_date__isnull=True)
        if self.close_from:
            deals = deals.filter(expected_close_date__gte=self.close_from)
        if self.close_to:
            deals = deals.filter(expected_close_date__lte=self.close_to)
        return deals


@dataclass
class Total:
    currency: str
    amount: Decimal
    weighted: Decimal


@dataclass
class Column:
    stage: Stage
    cards: list[Deal] = field(default_factory=list)
    count: int = 0
    totals: list[Total] = field(default_factory=list)

    @property
    def has_more(self) -> bool:
        return len(self.cards) < self.count


def with_next_activity(deals: QuerySet[Deal]) -> QuerySet[Deal]:
    """The next open activity a card shows, as the activity writes keep it on the deal
    (`Deal.next_activity`): one join, not three subqueries per card."""
    return deals.annotate(
        next_activity_due=F("next_activity__due_at"),
        next_activity_subject=F("next_activity__subject"),
        next_activity_type=F("next_activity__type"),
    )


def _cards(user: User, filters: BoardFilters) -> QuerySet[Deal]:
    """The deals a card shows, with what a card needs joined or annotated.

    Only the joins a card prints (organization, owner); every extra join in each part of
    the first-pages UNION costs planning time on every board load.
    """
    deals = filters.apply(policy.deals(user))
    return with_next_activity(deals.select_related("organization", "owner"))


STALLED_FLAGS = Prefetch("stalled_flags", queryset=StalledFlag.objects.order_by("rule"))


def card_queryset(user: User, filters: BoardFilters) -> QuerySet[Deal]:
    return _cards(user, filters).prefetch_related(STALLED_FLAGS)


def column_page(
    user: User,
    stage: Stage,
    filters: BoardFilters,
    *,
    offset: int = 0,
    size: int | None = None,
) -> list[Deal]:
    """One page of a column's cards, in the board's sort order."""
    size = size or settings.BOARD_PAGE_SIZE
    deals = card_queryset(user, filters).filter(stage=stage)
    return list(deals.order_by(*SORTS.get(filters.sort, SORTS["manual"]))[offset : offset + size])


def board(
    user: User,
    pipeline: Pipeline,
    filters: BoardFilters,
    *,
    stage_ids: Collection[int] | None = None,
) -> list[Column]:
    """The open columns of `pipeline` (or just `stage_ids`) with first pages and totals.

    Three queries whatever the data: grouped totals, the first page of every column at
    once, and the stalled flags of those cards (stages come prefetched with the pipeline).
    """
    stages = [
        s
        for s in pipeline.stages.all()
        if s.kind == StageKind.OPEN
        and not s.is_archived
        and (stage_ids is None or s.pk in stage_ids)
    ]
    columns = column_heads(user, filters, stages)
    by_stage = {column.stage.pk: column for column in columns}
    busy = [column.stage.pk for column in columns if column.count]
    for deal in _first_pages(user, filters, busy):
        by_stage[deal.stage_id].cards.append(deal)
    prefetch_related_objects([card for column in columns for card in column.cards], STALLED_FLAGS)
    return columns


def column_heads(user: User, filters: BoardFilters, stages: list[Stage]) -> list[Column]:
    """Columns for `stages` (open ones) with their counts and totals, no cards: one query."""
    columns = {s.pk: Column(stage=s) for s in stages if s.kind == StageKind.OPEN}
    if not columns:
        return []
    # Compiled once per user, filters and columns (the ORM's compile cost most of this).
    key = (policy.rule_inputs(user), filters, tuple(columns))
    totals = _COLUMN_HEADS.rows(key, lambda: _column_totals(user, filters, list(columns)))
    for row in totals:
        column = columns[row["stage_id"]]
        column.count += row["n"]
        weighted = (
            (row["default_rated"] or 0) * column.stage.probability + (row["overridden"] or 0)
        ) / Decimal(100)
        column.totals.append(Total(row["currency"], row["total"] or Decimal(0), weighted))
    return list(columns.values())


_COLUMN_HEADS = Prepared()


def column_stages(pipeline_id: int, stage_ids: list[int]) -> list[Stage]:
    """The open columns among `stage_ids` on the board of `pipeline_id` (ids from elsewhere
    are ignored), for `column_heads`: one query, compiled once per pipeline and ids."""
    ids = tuple(sorted(set(stage_ids)))
    found = _COLUMN_STAGES.rows(
        (pipeline_id, ids),
        lambda: Stage.objects.filter(
            pk__in=ids, pipeline_id=pipeline_id, kind=StageKind.OPEN, is_archived=False
        ).values(*STAGE_FIELDS),
    )
    return [stage_from_row(row) for row in found]


_COLUMN_STAGES = Prepared()
STAGE_FIELDS = [f.attname for f in Stage._meta.concrete_fields]


def stage_from_row(row: dict[str, Any]) -> Stage:
    """A stage from a `values(*STAGE_FIELDS)` row, as the ORM would load it."""
    return Stage.from_db("default", STAGE_FIELDS, [row[name] for name in STAGE_FIELDS])


def _column_totals(user: User, filters: BoardFilters, stage_ids: list[int]) -> QuerySet:
    visible = filters.apply(policy.deals(user)).filter(stage_id__in=stage_ids)
    # No join to stages: the stage default probability is applied per group in Python.
    return (
        visible.values("stage_id", "currency")
        .annotate(
            n=Count("id"),
            total=Sum("amount"),
            default_rated=Sum("amount", filter=Q(probability_override__isnull=True)),
            overridden=Sum(
                F("amount") * F("probability_override"),
                filter=Q(probability_override__isnull=False),
                output_field=DecimalField(max_digits=20, decimal_places=2),
            ),
        )
        .order_by("stage_id", "currency")
    )


UNFILTERED = BoardFilters()


def board_card(user: User, filters: BoardFilters, deal: Deal) -> Deal | None:
    """`deal`, which `user` has just changed (so may see), as its board card, or None when
    the board does not show it (closed, or outside the filters): two queries.

    On an unfiltered board (any sort) every open deal the user may see is shown, so the
    row in hand, with its owner and organization already loaded, becomes the card: its
    next activity and its stalled flags are read for it alone. Otherwise the card is
    read through the board's own card query, filters and all, and its flags.
    """
    if deal.stage.kind != StageKind.OPEN:
        return None
    if replace(filters, sort=UNFILTERED.sort) == UNFILTERED and _card_relations_loaded(deal):
        upcoming = rows.next_activity(deal.pk)
        deal.next_activity_due = upcoming.get("due_at")
        deal.next_activity_subject = upcoming.get("subject")
        deal.next_activity_type = upcoming.get("type")
        rows.prefetch_stalled_flags(deal)
        return deal
    return card_queryset(user, filters).filter(pk=deal.pk, stage_id=deal.stage_id).first()


def _card_relations_loaded(deal: Deal) -> bool:
    """The owner and organization a card prints are in hand (no query to reach them)."""
    return Deal.owner.is_cached(deal) and (
        deal.organization_id is None or Deal.organization.is_cached(deal)
    )


def _first_pages(user: User, filters: BoardFilters, stage_ids: list[int]) -> list[Deal]:
    """The first page of each column in one query.

    PostgreSQL: a UNION ALL of one LIMITed query per column, each an index range scan
    on (stage, position, id), so the cost follows the page size, not the number of deals.
    SQLite cannot order inside a compound query; there a window function numbers each
    column's cards instead (fine at the sizes SQLite serves).
    """
    if not stage_ids:
        return []
    size = settings.BOARD_PAGE_SIZE
    order = SORTS.get(filters.sort, SORTS["manual"])
    cards = _cards(user, filters)
    if connection.features.supports_slicing_ordering_in_compound:
        parts = [cards.filter(stage_id=pk).order_by(*order)[:size] for pk in stage_ids]
        combined = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
        rows = list(combined)
        rank = {pk: i for i, pk in enumerate(stage_ids)}
        return sorted(rows, key=lambda d: rank[d.stage_id])  # each part keeps its own order
    ranked = cards.filter(stage_id__in=stage_ids).annotate(
        rank=Window(RowNumber(), partition_by=[F("stage_id")], order_by=list(order))
    )
    return list(ranked.filter(rank__lte=size).order_by("stage_id", "rank"))


def board_pipelines(pipeline_id: int | None) -> tuple[Pipeline | None, list[Pipeline]]:
    """The pipeline to show (the requested one, else the first) and all for the switcher."""
    pipelines = list(Pipeline.objects.filter(is_archived=False).prefetch_related("stages"))
    chosen = next((p for p in pipelines if p.pk == pipeline_id), None)
    return chosen or (pipelines[0] if pipelines else None), pipelines


def board_pipeline(pipeline_id: int | None) -> Pipeline | None:
    return board_pipelines(pipeline_id)[0]


@dataclass(frozen=True)
class TimelineEntry:
    at: timezone.datetime
    kind: str  # "stage", "activity", "field"
    text: str
    by: str
    detail: str = ""


FIELD_LABELS = {
    "title": "Title",
    "amount": "Amount",
    "currency": "Currency",
    "expected_close_date": "Expected close date",
    "probability_override": "Probability",
    "next_step": "Next step",
    "organization": "Organization",
    "person": "Primary contact",
    "product": "Product",
    "owner": "Owner",
    "lost_reason": "Lost reason",
    "snoozed_until": "Snoozed until",
}


def _field_value(deal: Deal, field_name: str, value: str) -> str:
    """A stored field change value as the deal page shows that field."""
    if value == "":
        return "—"
    if field_name == "amount":
        return formats.money(value, deal.currency, places=2)
    if field_name == "expected_close_date":
        return formats.day(value)
    if field_name == "probability_override":
        return f"{value} %"
    if field_name == "snoozed_until":
        until, _, reason = value.partition(" ")
        return f"{formats.day(until)} {reason}".strip()
    return value


def _field_text(deal: Deal, edit: Any) -> str:
    label = FIELD_LABELS.get(edit.field, edit.field.replace("_", " ").capitalize())
    if edit.field == "snoozed_until" and not edit.new_value:
        return "Snooze ended"
    old = _field_value(deal, edit.field, edit.old_value)
    new = _field_value(deal, edit.field, edit.new_value)
    if not edit.old_value:
        return f"{label} set to {new}"
    return f"{label}: {old} → {new}"


def _activity_entry(activity: Activity) -> TimelineEntry:
    kind = activity.get_type_display()
    if activity.done:
        text = f"{kind} done: {activity.subject}"
        at = activity.done_at or activity.created_at
    else:
        due = f" for {formats.moment(activity.due_at)}" if activity.due_at else ""
        text = f"{kind} planned{due}: {activity.subject}"
        at = activity.created_at
    return TimelineEntry(at, "activity", text, activity.owner.display_name, activity.note)


def timeline(deal: Deal, limit: int = 100) -> list[TimelineEntry]:
    """Stage changes, every activity with its notes (done and planned), and field edits
    with their labels and formatted values, newest first, in three queries."""
    from deals.models import FieldChange, StageChange

    entries: list[TimelineEntry] = []
    changes = StageChange.objects.filter(deal=deal).select_related("from_stage", "to_stage", "by")
    for change in changes.order_by("-seq")[:limit]:
        text = (
            f"Moved from {change.from_stage.name} to {change.to_stage.name}"
            if change.from_stage
            else f"Created in {change.to_stage.name}"
        )
        detail = f"Override: {change.override_reason}" if change.override_reason else ""
        by = change.by.display_name if change.by else "system"
        entries.append(TimelineEntry(change.at, "stage", text, by, detail))
    activities = Activity.objects.filter(deal=deal).select_related("owner")
    entries += [_activity_entry(a) for a in activities.order_by("-created_at")[:limit]]
    for edit in FieldChange.objects.filter(deal=deal).select_related("by")[:limit]:
        by = edit.by.display_name if edit.by else "system"
        entries.append(TimelineEntry(edit.at, "field", _field_text(deal, edit), by))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


def days_by_stage(deal: Deal, now: datetime | None = None) -> dict[int, int]:
    """Whole days the deal has spent in each stage, over all its stays, in one query.

    A stay runs from one stage entry to the next (the current one until `now`, a closed
    deal's last one until it closed).
    """
    from deals.models import StageChange

    now = now or timezone.now()
    entries = list(
        StageChange.objects.filter(deal=deal).order_by("seq").values_list("to_stage_id", "at")
    )
    spent: dict[int, float] = {}
    for (stage_id, start), following in zip(entries, [*entries[1:], None], strict=True):
        end = following[1] if following else (deal.closed_at or now)
        spent[stage_id] = spent.get(stage_id, 0.0) + max((end - start).total_seconds(), 0.0)
    return {stage_id: int(seconds // 86400) for stage_id, seconds in spent.items()}


def filter_people(user: User) -> list[User]:
    """Owners the board's owner filter offers: people whose deals the user may see."""
    return list(
        policy.deal_owners(user)
        .select_related("team")
        .order_by("first_name", "last_name", "username", "pk")
    )


def filter_teams(people: list[User]) -> list[Any]:
    """The teams of `people`, each once, by name: the board's team filter (no query)."""
    teams = {person.team_id: person.team for person in people if person.team_id}
    return sorted(teams.values(), key=lambda team: (team.name.casefold(), team.pk))


# Rules only time meets: a deal cannot be created already past them.
TIME_RULES = {"no_skip", "min_days_in_previous"}


@dataclass(frozen=True)
class Starts:
    """Where a new deal may start: the stages, and for each other open stage, why not."""

    stages: list[Stage]
    why_not: dict[int, str]


def start_stages(pipeline_id: int) -> Starts:
    """The open stages of a pipeline a new deal may start in: those whose entry criteria a
    form can meet. "No skipping" and "time in the previous stage" are met only over time,
    so a stage that has one (past the first) is reached by moving, not by creating; the
    gate, asked about a blank deal, says which. Three queries at most."""
    from stages import gate

    stages = list(
        Stage.objects.filter(
            pipeline_id=pipeline_id, kind=StageKind.OPEN, is_archived=False
        ).order_by("position", "pk")
    )
    failures = gate.evaluate_many(Deal(pipeline_id=pipeline_id), stages)
    why_not = {
        pk: "; ".join(f.message for f in found if f.kind in TIME_RULES)
        for pk, found in failures.items()
        if any(f.kind in TIME_RULES for f in found)
    }
    return Starts([s for s in stages if s.pk not in why_not], why_not)


@dataclass(frozen=True)
class NextStep:
    """The stage after the deal's current one, its playbook and what the deal still lacks."""

    stage: Stage | None
    checklist: list[tuple[str, bool]]


def next_step(deal: Deal, stages: list[Stage]) -> NextStep:
    from stages import gate

    later = [s for s in stages if s.is_open and s.position > deal.stage.position]
    if not later:
        return NextStep(None, [])
    stage = later[0]
    failing = {f.criterion_id for f in gate.evaluate(deal, stage)}
    return NextStep(stage, [(c.requirement, c.pk not in failing) for c in stage.criteria.all()])


def live_card(user: User, filters: BoardFilters, deal_id: int, pipeline_id: int) -> Deal | None:
    """The card the board of `pipeline_id` (under `filters`) shows for `deal_id`, or None
    when it shows none: not visible to `user`, closed, elsewhere, or filtered out."""
    cards = card_queryset(user, filters).filter(
        pk=deal_id, pipeline_id=pipeline_id, stage__kind=StageKind.OPEN
    )
    return cards.first()


# Each board sort as (field, descending) keys before the id; every key sorts its nulls
# last (SORTS). What card_after compares a card's neighbours by.
SORT_KEYS = {
    "manual": [("position", False)],
    "next_activity": [("next_activity_due", False)],
    "amount": [("amount", True)],
    "days_in_stage": [("stage_entered_at", False)],
}


def card_after(user: User, filters: BoardFilters, deal: Deal) -> int | None:
    """The id of the card shown right before `deal` in its column (the board of `user`
    under `filters`, in its sort order), or None when `deal` comes first: where a live
    update puts a card someone else moved. One query, on the column's sort index."""
    keys = SORT_KEYS.get(filters.sort, SORT_KEYS["manual"])
    before = Q(pk__lt=deal.pk)
    # Built from the last key outwards: (k1 before) or (k1 equal and (k2 before or ...)).
    for name, descending in reversed(keys):
        value = getattr(deal, name)
        if value is None:
            before = Q(**{f"{name}__isnull": False}) | (Q(**{f"{name}__isnull": True}) & before)
        else:
            earlier = Q(**{f"{name}__gt" if descending else f"{name}__lt": value})
            before = earlier | (Q(**{name: value}) & before)
    reverse = [
        F(name).asc(nulls_first=True) if descending else F(name).desc(nulls_first=True)
        for name, descending in keys
    ]
    deals = filters.apply(policy.deals(user)).filter(stage_id=deal.stage_id)
    if filters.sort == "next_activity":
        deals = with_next_activity(deals)
    found = deals.filter(before).order_by(*reverse, "-id").values_list("pk", flat=True)[:1]
    return next(iter(found), None)


def column_versions(user: User, filters: BoardFilters, pipeline: Pipeline) -> dict[str, str]:
    """A version per open column of `pipeline` as `user` sees it under `filters`: it
    changes whenever a card enters, leaves or changes there. One grouped query; what a
    board polls while it has no live stream."""
    open_stages = [s.pk for s in pipeline.stages.all() if s.is_open and not s.is_archived]
    rows = (
        filters.apply(policy.deals(user))
        .filter(stage_id__in=open_stages)
        .values("stage_id")
        .annotate(n=Count("id"), versions=Sum("version"), newest=Max("updated_at"))
        .order_by("stage_id")
    )
    found = {
        str(r["stage_id"]): f"{r['n']}.{r['versions']}.{r['newest'].timestamp():.6f}" for r in rows
    }
    return {str(pk): found.get(str(pk), "0") for pk in open_stages}
