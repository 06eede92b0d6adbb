"""The gate engine: decides whether a deal may enter a stage.

`evaluate(deal, stage)` is the only place that judges entry criteria. It reads what
it needs about the deal in a fixed number of queries (at most one per kind of fact:
criteria, completed activity types, contact roles, checklist ticks, stage history),
whatever the number of criteria. `evaluate_many` shares those facts across stages,
so the board can mark every column a dragged card may not enter in one request.

The deal is read through its relations (`deal.activities`, `deal.contact_roles`,
`deal.checklist_ticks`, `deal.stage_changes`) so this module never imports `deals`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from common.statements import Prepared
from stages.models import CriterionKind, EntryCriterion, Stage, StageKind


@dataclass(frozen=True)
class Failure:
    """One unmet requirement. `criterion` is None for the built-in won/lost rules."""

    message: str
    kind: str
    criterion: EntryCriterion | None = None
    # What would fix it: a deal field name, an activity type, a contact role, a checklist id.
    fix: str = ""

    @property
    def criterion_id(self) -> int | None:
        return self.criterion.pk if self.criterion else None


@dataclass
class DealFacts:
    """What the gate needs to know about one deal, loaded lazily, once."""

    deal: Any
    now: datetime = field(default_factory=timezone.now)
    _cache: dict[str, Any] = field(default_factory=dict)

    def _once(self, key: str, load, empty):  # type: ignore[no-untyped-def]
        if self.deal.pk is None:  # a deal being created has no related rows yet
            return empty
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def done_activity_types(self) -> set[str]:
        return self._once(
            "activities",
            lambda: set(
                self.deal.activities.filter(done=True).values_list("type", flat=True).distinct()
            ),
            set(),
        )

    def contact_roles(self) -> set[str]:
        return self._once(
            "roles", lambda: set(self.deal.contact_roles.values_list("role", flat=True)), set()
        )

    def ticked(self) -> set[int]:
        return self._once(
            "ticks",
            lambda: set(self.deal.checklist_ticks.values_list("criterion_id", flat=True)),
            set(),
        )

    def history(self) -> list[tuple[int, datetime]]:
        """(stage id entered, when), oldest first."""
        return self._once(
            "history",
            lambda: list(self.deal.stage_changes.order_by("seq").values_list("to_stage_id", "at")),
            [],
        )

    def time_in(self, stage_id: int) -> timedelta:
        """Total time the deal has spent in `stage_id`, across every stay."""
        total = timedelta()
        history = self.history()
        for index, (entered_id, entered_at) in enumerate(history):
            if entered_id != stage_id:
                continue
            if index + 1 < len(history):
                total += history[index + 1][1] - entered_at
            elif self.deal.stage_id == stage_id:
                total += self.now - entered_at
        if not history and self.deal.stage_id == stage_id:
            total = self.now - self.deal.stage_entered_at
        return total

    def has_been_in(self, stage_id: int) -> bool:
        return self.deal.stage_id == stage_id or any(s == stage_id for s, _ in self.history())


def _previous_open_stage(stage: Stage, stages: list[Stage]) -> Stage | None:
    earlier = [
        s
        for s in stages
        if s.kind == StageKind.OPEN and not s.is_archived and s.position < stage.position
    ]
    return max(earlier, key=lambda s: (s.position, s.pk)) if earlier else None


def _field_filled(deal: Any, name: str) -> bool:
    if name in {"person", "organization"}:
        return getattr(deal, f"{name}_id", None) is not None
    value = getattr(deal, name, None)
    return value is not None and value != ""


def _check(
    criterion: EntryCriterion, deal: Any, facts: DealFacts, previous: Stage | None
) -> Failure | None:
    kind = criterion.kind
    message = criterion.requirement
    match kind:
        case CriterionKind.FIELD_REQUIRED:
            ok = _field_filled(deal, criterion.field_name)
            fix = criterion.field_name
        case CriterionKind.AMOUNT_AT_LEAST:
            ok = deal.amount is not None and Decimal(deal.amount) >= (criterion.amount or 0)
            fix = "amount"
        case CriterionKind.ACTIVITY_DONE:
            ok = criterion.activity_type in facts.done_activity_types()
            fix = criterion.activity_type
        case CriterionKind.CONTACT_ROLE:
            ok = criterion.contact_role in facts.contact_roles()
            fix = criterion.contact_role
        case CriterionKind.CHECKLIST:
            ok = criterion.pk in facts.ticked()
            fix = str(criterion.pk)
        case CriterionKind.NO_SKIP:
            ok = previous is None or facts.has_been_in(previous.pk)
            fix = ""
            if previous is not None:
                message = f"Pass through {previous.name} first (stages cannot be skipped)"
        case CriterionKind.MIN_DAYS_IN_PREVIOUS:
            needed = timedelta(days=criterion.days or 0)
            ok = previous is None or facts.time_in(previous.pk) >= needed
            fix = ""
            if previous is not None:
                message = f"Spend at least {criterion.days} days in {previous.name} first"
        case _:
            return None
    return None if ok else Failure(message=message, kind=kind, criterion=criterion, fix=fix)


def _builtin(deal: Any, stage: Stage) -> list[Failure]:
    """Closing rules that hold for every pipeline: won needs an amount, lost needs a reason."""
    if stage.kind == StageKind.WON and deal.amount is None:
        return [Failure("Add an amount to mark the deal won", kind="won_amount", fix="amount")]
    if stage.kind == StageKind.LOST and not (deal.lost_reason or "").strip():
        return [Failure("Give a lost reason", kind="lost_reason", fix="lost_reason")]
    return []


def evaluate_many(
    deal: Any,
    stages: Iterable[Stage],
    *,
    criteria: Iterable[EntryCriterion] | None = None,
    facts: DealFacts | None = None,
) -> dict[int, list[Failure]]:
    """Failures per stage id for moving `deal` into each of `stages` (same pipeline)."""
    stages = list(stages)
    if not stages:
        return {}
    if criteria is None:
        criteria = _criteria([s.pk for s in stages])
    by_stage: dict[int, list[EntryCriterion]] = {s.pk: [] for s in stages}
    for criterion in criteria:
        by_stage.setdefault(criterion.stage_id, []).append(criterion)
    needs_order = any(
        c.kind in {CriterionKind.NO_SKIP, CriterionKind.MIN_DAYS_IN_PREVIOUS}
        for group in by_stage.values()
        for c in group
    )
    siblings: dict[int, list[Stage]] = {}
    if needs_order:
        for sibling in Stage.objects.filter(pipeline_id__in={s.pipeline_id for s in stages}):
            siblings.setdefault(sibling.pipeline_id, []).append(sibling)
    facts = facts or DealFacts(deal)
    result: dict[int, list[Failure]] = {}
    for stage in stages:
        same_pipeline = siblings.get(stage.pipeline_id, [])
        previous = _previous_open_stage(stage, same_pipeline) if needs_order else None
        failures = _builtin(deal, stage)
        for criterion in sorted(by_stage.get(stage.pk, []), key=lambda c: (c.position, c.pk)):
            failure = _check(criterion, deal, facts, previous)
            if failure:
                failures.append(failure)
        result[stage.pk] = failures
    return result


_CRITERIA = Prepared()
_CRITERION_FIELDS = [f.attname for f in EntryCriterion._meta.concrete_fields]


def _criteria(stage_ids: list[int]) -> list[EntryCriterion]:
    """The entry criteria of `stage_ids` (one query, its SQL compiled once per stages)."""
    found = _CRITERIA.rows(
        tuple(stage_ids),
        lambda: EntryCriterion.objects.filter(stage__in=stage_ids).values(*_CRITERION_FIELDS),
    )
    return [
        EntryCriterion.from_db("default", _CRITERION_FIELDS, [row[n] for n in _CRITERION_FIELDS])
        for row in found
    ]


def evaluate(deal: Any, stage: Stage) -> list[Failure]:
    """Everything that keeps `deal` out of `stage`; an empty list means it may enter."""
    return evaluate_many(deal, [stage])[stage.pk]
