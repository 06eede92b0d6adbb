"""Writes with rules for deals. Every stage move goes through `move_deal`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import Max, Min, Subquery, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts import audit, policy
from accounts.models import AuditKind
from common.errors import BadInput, DomainError, NotAllowed, NotVisible, RuleFailed, StaleVersion
from deals import events, notifications, rows
from deals.models import (
    Deal,
    Event,
    GateEvent,
    GateOutcome,
    MoveSource,
    RewrittenHistory,
    StageChange,
)
from stages import gate
from stages.models import Stage, StageKind

if TYPE_CHECKING:
    from accounts.models import User

POSITION_GAP = rows.POSITION_GAP  # imports read it here too


# The deals' names for the domain errors (common.errors); callers may catch either.
DealError = DomainError
NotFound = NotVisible


class VersionConflict(StaleVersion):
    def __init__(self, deal: Deal, *, replayed: StageChange | None = None) -> None:
        super().__init__(
            f"“{deal.title}” was changed by someone else meanwhile; here is its current state.",
            current=deal,
        )
        self.deal = deal
        # The move this very request made already (same idempotency key), if it did.
        self.replayed = replayed


class GateBlocked(RuleFailed):
    def __init__(self, deal: Deal, stage: Stage, failures: list[gate.Failure]) -> None:
        super().__init__(f"“{deal.title}” cannot enter {stage.name} yet.", failures=failures)
        self.deal = deal
        self.stage = stage


class InvalidMove(BadInput):
    pass


@dataclass(frozen=True)
class Placement:
    """Where a card lands in its column: right after `after_id` or right before `before_id`."""

    after_id: int | None = None
    before_id: int | None = None


@dataclass(frozen=True)
class MoveResult:
    """A move's outcome; `change` is None when the card only changed place in its column."""

    deal: Deal
    from_stage: Stage
    change: StageChange | None


SEEN_RELATIONS = ("stage", "pipeline", "owner", "organization", "person")


def _lock(deal_id: int, by: User, seen: Deal | None = None) -> Deal:
    """Lock the deal row for the rest of the transaction; 404 unless `by` may edit it.

    The row alone, locked (`rows.lock`: a fixed statement without joins, so a deal another
    request just moved is found as it is now, and its mover gets a 409, not a 404). Then
    the policy's change rule on the row as locked (its owner now), and on refusal one more
    query says 403 or 404. The related rows the caller already read (`seen`: stage,
    pipeline, and the owner, organization and contact a board card prints) are reused when
    the lock finds the same ids, and what they lack loads on first use. A caller that
    read nothing (a board move) gets the stage, owner and organization in one statement
    (`rows.load_related`).
    """
    locked = rows.lock(deal_id)
    if locked is None:
        raise refusal_for(deal_id, by)
    if seen is not None:
        for relation in SEEN_RELATIONS:
            cached = seen._state.fields_cache.get(relation)
            if cached is not None and cached.pk == getattr(locked, f"{relation}_id"):
                setattr(locked, relation, cached)
    if not Deal.stage.is_cached(locked):
        rows.load_related(locked)
    if not policy.can_change_deal(by, locked):
        raise refusal_for(deal_id, by)
    return locked


def refusal_for(deal_id: int, by: User) -> DomainError:
    """Why `by` may not change deal `deal_id`: NotAllowed (403) if they may see it,
    NotVisible (404) if not. Asked on the refusal path only (one query)."""
    if policy.deals(by).filter(pk=deal_id).exists():
        return NotAllowed("You can only change deals you own or manage.")
    return NotVisible("Deal not found.")


def _lock_current(
    deal: Deal | int, by: User, expected_version: int, *, request_key: str = ""
) -> Deal:
    """Lock the deal (see `_lock`) and refuse if it changed since the caller read version
    `expected_version`: the one lock-then-check-version step of every deal action.
    `deal` may be the id alone, when the caller read nothing before (a board move).

    A request that carries an idempotency key and finds the version moved on may be the
    retry of its own move (committed, but its answer lost): the conflict then names that
    move (`replayed`), looked up only on this refusal path.
    """
    locked = _lock(deal, by) if isinstance(deal, int) else _lock(deal.pk, by, seen=deal)
    if locked.version != expected_version:
        replayed = None
        if request_key:
            replayed = (
                StageChange.objects.filter(deal=locked, request_key=request_key, by=by)
                .select_related("from_stage", "to_stage")
                .first()
            )
        raise VersionConflict(locked, replayed=replayed)
    return locked


def _lock_column(stage_id: int) -> None:
    """Serialise placed moves and reorders within one column (PostgreSQL advisory lock).

    Renumbering a column writes its other cards; two placements that each hold their own
    card's row lock and then renumber would deadlock. Taking this lock first, before any
    row lock, orders them. Menu moves (top of column) never renumber and skip it.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [COLUMN_LOCK_SPACE, stage_id])


COLUMN_LOCK_SPACE = 7001  # advisory-lock namespace for board columns


def _renumber(stage_id: int) -> None:
    """Spread a column's positions out again when two neighbours leave no gap between them."""
    table = Deal._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET position = ranked.rn * %s
            FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY position, id) AS rn
                  FROM {table} WHERE stage_id = %s) AS ranked
            WHERE {table}.id = ranked.id
            """,
            [POSITION_GAP, stage_id],
        )


def _position(stage_id: int, deal_id: int, placement: Placement | None) -> int | Combinable:
    """A position in the column that puts the card where `placement` says (top by default)."""
    column = Deal.objects.filter(stage_id=stage_id).exclude(pk=deal_id)
    for _attempt in range(2):
        anchor = None
        if placement and (placement.after_id or placement.before_id):
            anchor_id = placement.after_id or placement.before_id
            anchor = column.filter(pk=anchor_id).values_list("position", flat=True).first()
        if anchor is None:
            # Top of the column, computed inside the UPDATE that saves it (no round trip).
            top = column.values("stage_id").annotate(m=Min("position")).values("m")
            return Coalesce(Subquery(top), Value(POSITION_GAP)) - POSITION_GAP
        if placement and placement.after_id:
            neighbour = column.filter(position__gt=anchor).aggregate(m=Min("position"))["m"]
            if neighbour is None:
                return anchor + POSITION_GAP
        else:
            neighbour = column.filter(position__lt=anchor).aggregate(m=Max("position"))["m"]
            if neighbour is None:
                return anchor - POSITION_GAP
        if abs(neighbour - anchor) > 1:
            return (anchor + neighbour) // 2
        _renumber(stage_id)
    raise InvalidMove("Could not place the card; please try again.")


def _record_gate_events(
    deal: Deal,
    stage: Stage,
    failures: list[gate.Failure],
    *,
    outcome: str,
    by: User,
    source: str,
) -> None:
    """Gate telemetry: one bulk insert, whatever the number of failures."""
    GateEvent.objects.bulk_create(
        GateEvent(
            deal_id=deal.pk,
            stage=stage,
            criterion=failure.criterion,
            requirement=failure.message[:200],
            outcome=outcome,
            by=by,
            source=source,
        )
        for failure in failures
    )


def move_deal(
    deal: Deal | int,
    to_stage: Stage,
    *,
    by: User,
    expected_version: int,
    position: Placement | None = None,
    source: str = MoveSource.BOARD,
    override_reason: str = "",
    entered_at: datetime | None = None,
    request_key: str = "",
) -> MoveResult:
    """Move `deal` into `to_stage`, following the move protocol.

    In one transaction: lock the row; refuse a stale `expected_version` (VersionConflict);
    refuse if the gate fails (GateBlocked), unless `by` may override and gave a reason;
    then update stage, entry time, position and version, append a StageChange with the
    next per-deal sequence number, and enqueue follow-up work to run after commit.
    Every blocked attempt and every override is recorded as gate telemetry.
    A placed "move" into the stage the deal is in reorders it there (`reorder_deal`); the
    version is checked all the same. A retried request (same `request_key`, by the same
    user) whose move already committed gets that move back instead of a conflict.
    `entered_at` (undo only) is when the deal first entered `to_stage`, so going back
    does not restart its time in stage. `deal` may be its id alone, when the caller read
    nothing before (a board move): the lock reads it, with what the answer's card prints.
    The writes are fixed statements (`rows`), written once per process.
    """
    if source not in MoveSource.values:
        raise BadInput("Unknown move source.")
    override_reason = override_reason.strip()
    placed = bool(position and (position.after_id or position.before_id))
    try:
        with transaction.atomic():
            if placed:
                _lock_column(to_stage.pk)
            locked = _lock_current(deal, by, expected_version, request_key=request_key)
            from_stage = locked.stage
            # After the lock, so one who may not change the deal hears that (403 or 404).
            if override_reason and not policy.can_override_gate(by):
                # The form offers no override to them, so this is a malformed request (400).
                raise InvalidMove("Only managers and admins can override entry criteria.")
            if to_stage.is_archived and to_stage.pk != from_stage.pk:
                raise InvalidMove(f"{to_stage.name} is archived.")
            if to_stage.pk == from_stage.pk:
                if not placed:
                    raise InvalidMove(f"“{locked.title}” is already in {to_stage.name}.")
                # Order is not content: the card's own row only, version unchanged.
                locked.position = _position(to_stage.pk, locked.pk, position)
                locked.save(update_fields=["position"])
                return MoveResult(deal=locked, from_stage=from_stage, change=None)
            failures = gate.evaluate(locked, to_stage)
            if failures and not override_reason:
                raise GateBlocked(locked, to_stage, failures)
            now = timezone.now()
            locked.stage = to_stage
            locked.pipeline_id = to_stage.pipeline_id
            locked.stage_entered_at = entered_at or now
            locked.version += 1
            locked.closed_at = None if to_stage.kind == StageKind.OPEN else now
            locked.updated_at = now
            closing = _close_date_fields(locked, to_stage, now, by=by)
            # A placement between two cards is a number; the top of the column (no
            # placement, or its anchor gone) is worked out inside the UPDATE.
            place = _position(to_stage.pk, locked.pk, position) if placed else None
            rows.update(
                locked,
                [
                    "stage_id",
                    "pipeline_id",
                    "stage_entered_at",
                    "version",
                    "closed_at",
                    "updated_at",
                    *closing,
                ],
                position=place if isinstance(place, int) else None,
            )
            change = rows.append_history(
                StageChange(
                    deal=locked,
                    from_stage=from_stage,
                    to_stage=to_stage,
                    pipeline_id=to_stage.pipeline_id,
                    at=now,
                    by=by,
                    source=source,
                    override_reason=override_reason if failures else "",
                    overridden=[f.message for f in failures],
                    request_key=request_key,
                )
            )
            if failures:
                _record_gate_events(
                    locked,
                    to_stage,
                    failures,
                    outcome=GateOutcome.OVERRIDDEN,
                    by=by,
                    source=source,
                )
                audit.record(
                    AuditKind.GATE_OVERRIDE,
                    user=by,
                    detail=f"deal {locked.pk} → {to_stage.name}: {override_reason}",
                )
            events.publish(
                *_move_events(locked, from_stage, change, by=by, source=source),
                versions={locked.pk: locked.version},
            )
    except GateBlocked as blocked:
        _record_gate_events(
            blocked.deal,
            to_stage,
            blocked.failures,
            outcome=GateOutcome.BLOCKED,
            by=by,
            source=source,
        )
        raise
    except VersionConflict as conflict:
        if conflict.replayed is None or conflict.replayed.to_stage_id != to_stage.pk:
            raise
        done = conflict.replayed
        return MoveResult(deal=conflict.deal, from_stage=done.from_stage, change=done)
    return MoveResult(deal=locked, from_stage=from_stage, change=change)


def _move_events(
    deal: Deal, from_stage: Stage | None, change: StageChange, *, by: User, source: str
) -> list[Event]:
    """deal.moved, and what the move means: deal.won, deal.lost or deal.reopened."""
    to_stage = deal.stage
    moved = events.event(
        "deal.moved",
        by=by,
        source=source,
        deal=deal,
        from_stage_id=from_stage.pk if from_stage else None,
        to_stage_id=to_stage.pk,
        pipeline_id=to_stage.pipeline_id,
        stage_change_id=change.pk,
    )
    outcome = {StageKind.WON: "deal.won", StageKind.LOST: "deal.lost"}.get(to_stage.kind)
    if outcome is None and from_stage is not None and from_stage.kind != StageKind.OPEN:
        outcome = "deal.reopened"
    if outcome is None:
        return [moved]
    return [moved, events.event(outcome, by=by, source=source, deal=deal, stage_id=to_stage.pk)]


def _close_date_fields(deal: Deal, to_stage: Stage, now: datetime, *, by: User) -> list[str]:
    """A won deal's expected close date becomes the day it was won, so forecasts and the
    deal page never show a won deal as still expected to close later (or earlier)."""
    won_on = timezone.localdate(now)
    if to_stage.kind != StageKind.WON or deal.expected_close_date == won_on:
        return []
    deal.expected_close_date = won_on
    record_field_changes(deal, ["expected_close_date"], by=by)
    return ["expected_close_date"]


def reorder_deal(deal: Deal, *, by: User, position: Placement, expected_version: int) -> Deal:
    """Change a card's place within its own column, if it is unchanged since `expected_version`.

    Only the card's own row is written, so concurrent reorders cannot lose or duplicate
    a card; ties are broken by id. The version is left alone: order is not content. A
    card that changed meanwhile (it left the column, or was edited) is a VersionConflict.
    """
    return move_deal(
        deal, deal.stage, by=by, expected_version=expected_version, position=position
    ).deal


def create_deal(
    *,
    by: User,
    title: str,
    stage: Stage,
    owner: User | None = None,
    amount: Decimal | None = None,
    currency: str = "USD",
    expected_close_date: date | None = None,
    source: str = MoveSource.CREATE,
    override_reason: str = "",
    organization_name: str = "",
    person_name: str = "",
    with_items: GateFixes | None = None,
    role_names: tuple[tuple[str, str], ...] = (),
    **fields: Any,
) -> Deal:
    """Create a deal in `stage`, which must let it in (the gate applies to new deals too).

    Typed organization and contact names are resolved (`resolve_contacts`) in the same
    transaction, so a refused deal leaves no new contact behind. `with_items` are what
    the new-deal form asked for beyond fields: checklist confirmations, contacts in a
    role, activities already done. The gate counts them as the deal's own, and they are
    saved with it, so a stage that needs them can be a deal's first. The deal starts at
    the top of its column with history row 1 (from nowhere). `role_names` are (role,
    typed name) pairs: each contact is found or added at the deal's organization in the
    same transaction and joins `with_items`' contact roles.
    """
    if organization_name or person_name or role_names:
        with transaction.atomic():
            contacts = resolve_contacts(
                organization_name=organization_name, person_name=person_name, by=by
            )
            roles = tuple(
                (
                    role,
                    resolve_contacts(organization_name=organization_name, person_name=name, by=by)[
                        "person"
                    ].pk,
                )
                for role, name in role_names
            )
            items = with_items or GateFixes(fields={})
            if roles:
                items = replace(items, contact_roles=items.contact_roles + roles)
            return create_deal(
                by=by,
                title=title,
                stage=stage,
                owner=owner,
                amount=amount,
                currency=currency,
                expected_close_date=expected_close_date,
                source=source,
                override_reason=override_reason,
                with_items=items,
                **fields | contacts,
            )
    owner = owner or by
    if not by.is_active:
        raise NotAllowed("Deactivated users cannot create deals.")
    if not policy.can_assign_to(by, owner):
        raise NotAllowed("You can create deals only for members of the teams you manage.")
    if stage.is_archived:
        raise InvalidMove(f"{stage.name} is archived.")
    deal = Deal(
        title=title,
        stage=stage,
        pipeline_id=stage.pipeline_id,
        owner=owner,
        amount=amount,
        currency=currency,
        expected_close_date=expected_close_date,
        **fields,
    )
    items = with_items or GateFixes(fields={})
    failures = (
        gate.evaluate_many(deal, [stage], facts=_NewDealFacts(deal, items=items))[stage.pk]
        if stage.criteria.exists() or not stage.is_open
        else []
    )
    if failures and not (override_reason and policy.can_override_gate(by)):
        raise GateBlocked(deal, stage, failures)
    with transaction.atomic():
        now = timezone.now()
        deal.stage_entered_at = now
        deal.closed_at = None if stage.is_open else now
        deal.position = _position(stage.pk, 0, None)
        deal.save()
        logged = _save_items(deal, stage, items, by=by, now=now)
        StageChange.objects.create(
            deal=deal,
            seq=1,
            from_stage=None,
            to_stage=stage,
            pipeline_id=stage.pipeline_id,
            at=now,
            by=by,
            source=source,
            override_reason=override_reason if failures else "",
            overridden=[f.message for f in failures],
        )
        created = events.event(
            "deal.created",
            by=by,
            source=source,
            deal=deal,
            stage_id=stage.pk,
            pipeline_id=stage.pipeline_id,
        )
        outcome = {StageKind.WON: "deal.won", StageKind.LOST: "deal.lost"}.get(stage.kind)
        closed = (
            [events.event(outcome, by=by, source=source, deal=deal, stage_id=stage.pk)]
            if outcome
            else []
        )
        events.publish(created, *closed, *_activity_events(logged, deal, by=by, source=source))
    return deal


@dataclass(frozen=True)
class GateFixes:
    """What a rep filled in on the blocked-move form, already validated."""

    fields: dict[str, Any]  # deal fields: amount, expected_close_date, next_step, lost_reason
    organization_name: str = ""
    person_name: str = ""
    checklist_ids: tuple[int, ...] = ()
    activities: tuple[tuple[str, str], ...] = ()  # (activity type, subject), logged as done
    contact_roles: tuple[tuple[str, int], ...] = ()  # (role, person id)


FIXABLE_FIELDS = {"amount", "expected_close_date", "next_step", "lost_reason"}


def complete_and_move(
    deal: Deal,
    to_stage: Stage,
    fixes: GateFixes,
    *,
    by: User,
    expected_version: int,
    source: str = MoveSource.BOARD,
    override_reason: str = "",
) -> MoveResult:
    """Save what a blocked move was missing and retry the move, all in one transaction.

    Either both happen or neither: if the deal still fails the gate, the fixes are rolled
    back with the refused move and GateBlocked tells what is still missing.
    """
    from contacts import resolve

    with transaction.atomic():
        locked = _lock_current(deal, by, expected_version)
        changed = []
        for name, value in fixes.fields.items():
            if name in FIXABLE_FIELDS and value not in (None, ""):
                setattr(locked, name, value)
                changed.append(name)
        if fixes.organization_name:
            locked.organization = resolve.resolve_organization(fixes.organization_name, by=by)
            changed.append("organization")
        if fixes.person_name:
            locked.person = resolve.resolve_person(
                fixes.person_name, by=by, organization=locked.organization
            )
            changed.append("person")
        published = []
        if changed:
            changes = record_field_changes(locked, changed, by=by)
            locked.save(update_fields=[*changed, "updated_at"])
            published.append(_updated(locked, changes, by=by, source=source))
        logged = _save_items(locked, to_stage, fixes, by=by, now=timezone.now())
        published += _activity_events(logged, locked, by=by, source=source)
        if published:
            events.publish(*published)
        return move_deal(
            locked,
            to_stage,
            by=by,
            expected_version=locked.version,
            source=source,
            override_reason=override_reason,
        )


def _save_items(
    deal: Deal, stage: Stage, items: GateFixes, *, by: User, now: datetime
) -> list[Any]:
    """Save the checklist ticks (of `stage`'s criteria only), contacts in their roles and
    done activities a gate form or the new-deal form supplied; returns the activities."""
    from deals.models import Activity, ChecklistTick, DealContact

    if items.checklist_ids:
        valid = stage.criteria.filter(pk__in=items.checklist_ids).values_list("pk", flat=True)
        ChecklistTick.objects.bulk_create(
            [ChecklistTick(deal=deal, criterion_id=pk, by=by) for pk in valid],
            ignore_conflicts=True,
        )
    logged = Activity.objects.bulk_create(
        Activity(
            deal=deal, owner=by, type=kind, subject=subject, done=True, done_at=now, due_at=now
        )
        for kind, subject in items.activities
    )
    if logged:
        from deals.activities import refresh_activity_times

        refresh_activity_times([deal.pk])
    if items.contact_roles:
        DealContact.objects.bulk_create(
            [DealContact(deal=deal, person_id=pk, role=role) for role, pk in items.contact_roles],
            ignore_conflicts=True,
        )
    return logged


def _activity_events(logged: list[Any], deal: Deal, *, by: User, source: str) -> list[Event]:
    return [
        events.event(
            "activity.created",
            by=by,
            source=source,
            deal=deal,
            activity_id=activity.pk,
            type=activity.type,
        )
        for activity in logged
    ]


@dataclass
class _NewDealFacts(gate.DealFacts):
    """The gate's view of a deal not saved yet: what the form will save with it counts."""

    items: GateFixes | None = None

    def done_activity_types(self) -> set[str]:
        return {kind for kind, _subject in self.items.activities} if self.items else set()

    def contact_roles(self) -> set[str]:
        return {role for role, _person in self.items.contact_roles} if self.items else set()

    def ticked(self) -> set[int]:
        return set(self.items.checklist_ids) if self.items else set()


def record_field_changes(deal: Deal, names: list[str], *, by: User) -> dict[str, list[Any]]:
    """Append timeline rows for fields about to be saved, old values read from the DB.

    Returns what changed, {name: [old, new]} (ids for relations), for the deal.updated event.
    """
    from deals.models import FieldChange

    relations = [n for n in names if n in RELATIONS]
    old_rows = Deal.objects.select_related(*relations) if relations else Deal.objects
    old = old_rows.get(pk=deal.pk)
    changed = [n for n in names if getattr(old, _column(n)) != getattr(deal, _column(n))]
    FieldChange.objects.bulk_create(
        FieldChange(
            deal=deal,
            field=name,
            old_value=_text(getattr(old, name))[:500],
            new_value=_text(getattr(deal, name))[:500],
            by=by,
        )
        for name in changed
    )
    return {n: [getattr(old, _column(n)), getattr(deal, _column(n))] for n in changed}


def _updated(deal: Deal, changes: dict[str, list[Any]], *, by: User, source: str) -> Event:
    """deal.updated: the changed fields' names, and their old and new values."""
    return events.event(
        "deal.updated", by=by, source=source, deal=deal, fields=sorted(changes), changes=changes
    )


RELATIONS = {"organization", "person", "owner", "stage"}


def _column(name: str) -> str:
    return f"{name}_id" if name in RELATIONS else name


def _text(value: object) -> str:
    return "" if value is None else str(value)


class UndoExpired(StaleVersion):
    pass


def undo_move(deal: Deal, *, by: User, change_id: int) -> MoveResult:
    """Move a deal back where it came from, shortly after the move, as a move of its own.

    Only the latest stage change of the deal, made by the same user within the undo
    window, can be undone. History stays append-only: the undo is a new row. The deal's
    time in stage resumes from when it entered the stage it goes back to.
    """
    from django.conf import settings

    latest = StageChange.objects.filter(deal_id=deal.pk).order_by("-seq").first()
    if (
        latest is None
        or latest.pk != change_id
        or latest.by_id != by.pk
        or latest.from_stage_id is None
        or latest.source == MoveSource.UNDO
        or timezone.now() - latest.at > settings.UNDO_WINDOW
    ):
        raise UndoExpired("This move can no longer be undone.")
    current = policy.changeable_deals(by).filter(pk=deal.pk).values_list("version", flat=True)
    version = current.first()
    if version is None:
        raise NotFound("Deal not found.")
    back = Stage.objects.get(pk=latest.from_stage_id)
    entered = (
        StageChange.objects.filter(deal_id=deal.pk, seq__lt=latest.seq, to_stage_id=back.pk)
        .order_by("-seq")
        .values_list("at", flat=True)
        .first()
    )
    return move_deal(
        deal,
        back,
        by=by,
        expected_version=version,
        source=MoveSource.UNDO,
        override_reason="",
        entered_at=entered,
    )


EDITABLE_FIELDS = (
    "title",
    "amount",
    "currency",
    "expected_close_date",
    "probability_override",
    "next_step",
    "organization",
    "person",
    "product",
)


def update_deal(
    deal: Deal,
    changes: dict[str, Any],
    *,
    by: User,
    expected_version: int,
    to_stage: Stage | None = None,
    source: str = MoveSource.FORM,
) -> Deal:
    """Edit a deal's fields; a stage change in the same form goes through `move_deal`.

    Refuses a stale version. Every changed field is recorded for the timeline; moving the
    expected close date later counts as a slip (the `close_date_slipping` stalled rule).
    Field edits and the move are one transaction: a refused move saves nothing.
    """
    with transaction.atomic():
        locked = _lock_current(deal, by, expected_version)
        changed = []
        for name, value in changes.items():
            if name not in EDITABLE_FIELDS:
                continue  # mass assignment: only the listed fields can be written
            if getattr(locked, _column(name)) != (getattr(value, "pk", value)):
                if name == "expected_close_date" and _slips(locked.expected_close_date, value):
                    locked.close_date_pushes += 1
                    changed.append("close_date_pushes")
                setattr(locked, name, value)
                changed.append(name)
        if changed:
            changes = record_field_changes(
                locked, [n for n in changed if n != "close_date_pushes"], by=by
            )
            locked.version += 1
            locked.save(update_fields=[*changed, "version", "updated_at"])
            events.publish(_updated(locked, changes, by=by, source=source))
        if to_stage is not None and to_stage.pk != locked.stage_id:
            return move_deal(
                locked, to_stage, by=by, expected_version=locked.version, source=source
            ).deal
    return locked


def edit_deal(
    deal: Deal,
    changes: dict[str, Any],
    *,
    by: User,
    expected_version: int,
    organization_name: str = "",
    person_name: str = "",
    to_stage: Stage | None = None,
    source: str = MoveSource.FORM,
) -> Deal:
    """The deal form's save: typed names become contacts (`resolve_contacts`) and the deal
    is updated (`update_deal`) in one transaction, so a refused edit creates nothing."""
    with transaction.atomic():
        contacts = resolve_contacts(
            organization_name=organization_name, person_name=person_name, by=by
        )
        return update_deal(
            deal,
            changes | contacts,
            by=by,
            expected_version=expected_version,
            to_stage=to_stage,
            source=source,
        )


def _slips(old: date | None, new: date | None) -> bool:
    return old is not None and new is not None and new > old


def reassign_deal(
    deal: Deal,
    *,
    new_owner: User,
    by: User,
    expected_version: int,
    source: str = MoveSource.FORM,
) -> Deal:
    """Hand a deal to another rep: managers within the teams they manage, admins anyone.

    Publishes deal.reassigned with both owners: the deal leaves one owner's numbers and
    joins the other's, so both forecasts are recomputed.
    """
    if not policy.can_reassign(by):
        raise NotAllowed("Only managers and admins can reassign deals.")
    if not new_owner.is_active:
        raise InvalidMove(f"{new_owner.display_name} is deactivated.")
    if not policy.can_assign_to(by, new_owner):
        raise NotAllowed("You can only reassign to members of teams you manage.")
    with transaction.atomic():
        locked = _lock_current(deal, by, expected_version)
        if locked.owner_id == new_owner.pk:
            return locked
        previous_owner_id = locked.owner_id
        locked.owner = new_owner
        record_field_changes(locked, ["owner"], by=by)
        locked.version += 1
        locked.save(update_fields=["owner", "version", "updated_at"])
        events.publish(
            events.event(
                "deal.reassigned",
                by=by,
                source=source,
                deal=locked,
                previous_owner_id=previous_owner_id,
            )
        )
    return locked


def delete_deal(
    deal: Deal, *, by: User, expected_version: int, source: str = MoveSource.FORM
) -> None:
    """Delete a deal and everything that hangs on it, for good.

    Managers may delete the deals they may change, admins any; a rep gets NotAllowed (403)
    for a deal they see and NotVisible (404) otherwise, like a manager for another team's
    deal. A stale `expected_version` is refused (VersionConflict). The audit log keeps
    what was deleted (title, owner, amount), since the deal's own history goes with it:
    its stage changes are deleted explicitly (StageChange protects its deal); activities,
    flags, notices and ticks go by cascade. The deal is marked as history rewritten, so
    the dashboard's summaries drop its rows (and their per-day counts) before they are
    next read. Publishes deal.deleted (ids only) after commit: the owner's forecast is
    recomputed, webhooks and boards hear it.
    """
    if not policy.can_delete_deals(by):
        if policy.deals(by).filter(pk=deal.pk).exists():
            raise NotAllowed("Only managers and admins can delete deals.")
        raise NotVisible("Deal not found.")
    with transaction.atomic():
        locked = _lock_current(deal, by, expected_version)
        amount = "no amount" if locked.amount is None else f"{locked.currency} {locked.amount}"
        audit.record(
            AuditKind.DEAL_DELETED,
            user=by,
            detail=f"deal {locked.pk} “{locked.title}”, owner {locked.owner.username}, {amount}",
        )
        gone = events.event(
            "deal.deleted",
            by=by,
            source=source,
            deal=locked,
            stage_id=locked.stage_id,
            pipeline_id=locked.pipeline_id,
        )
        RewrittenHistory.mark([locked.pk])
        StageChange.objects.filter(deal=locked).delete()
        locked.delete()
        events.publish(gone)


@dataclass(frozen=True)
class BulkOutcome:
    deal_id: int
    title: str
    moved: bool
    reason: str = ""


def bulk_move(
    deal_ids: list[int], to_stage: Stage, *, by: User, source: str = MoveSource.BULK
) -> list[BulkOutcome]:
    """Move several deals, each through `move_deal` on its own; report each outcome.

    One deal's refusal does not undo the others: each move is its own transaction.
    Deals the user may not see are reported as not found, never moved. Each owner of
    moved deals (other than `by`) gets one summary notice, not one per deal.
    """
    found = {d.pk: d for d in policy.deals(by).filter(pk__in=deal_ids).select_related("stage")}
    outcomes = []
    for deal_id in dict.fromkeys(deal_ids):
        deal = found.get(deal_id)
        if deal is None:
            outcomes.append(BulkOutcome(deal_id, f"#{deal_id}", False, "Deal not found."))
            continue
        try:
            move_deal(deal, to_stage, by=by, expected_version=deal.version, source=source)
        except GateBlocked as blocked:
            reason = "; ".join(f.message for f in blocked.failures)
            outcomes.append(BulkOutcome(deal.pk, deal.title, False, reason))
        except DealError as error:
            outcomes.append(BulkOutcome(deal.pk, deal.title, False, error.message))
        else:
            outcomes.append(BulkOutcome(deal.pk, deal.title, True))
    moved = Counter(found[o.deal_id].owner_id for o in outcomes if o.moved)
    notifications.tell_owners(
        moved, by=by, text=f"{by.display_name} moved {{n}} of your {{deals}} to {to_stage.name}."
    )
    return outcomes


def resolve_contacts(*, organization_name: str, person_name: str, by: User) -> dict[str, Any]:
    """Typed names to an organization and a person `by` may see, created when new
    (`contacts.resolve`: a hidden record is never attached)."""
    from contacts.resolve import resolve_names

    return resolve_names(
        organization_name=organization_name, person_name=person_name, by=by
    ).as_fields()
