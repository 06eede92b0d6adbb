"""Entry criteria: add, change, reorder and remove, with per-kind validation."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from stages.models import (
    REQUIRABLE_FIELDS,
    ActivityType,
    ConfigAction,
    ContactRole,
    CriterionKind,
    EntryCriterion,
    Stage,
)
from stages.services.base import ConfigError, StaleOrder, apply_order, lock_stage, moved, record

if TYPE_CHECKING:
    from accounts.models import User

MAX_CRITERION_DAYS = 3650
MAX_CRITERION_AMOUNT = Decimal("999999999999.99")  # 14 digits, 2 decimals, as the column

# The parameter fields each criterion kind uses; every other parameter stays blank.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    CriterionKind.FIELD_REQUIRED: ("field_name",),
    CriterionKind.AMOUNT_AT_LEAST: ("amount",),
    CriterionKind.ACTIVITY_DONE: ("activity_type",),
    CriterionKind.CONTACT_ROLE: ("contact_role",),
    CriterionKind.CHECKLIST: ("label",),
    CriterionKind.NO_SKIP: (),
    CriterionKind.MIN_DAYS_IN_PREVIOUS: ("days",),
}
BLANK_PARAMETERS: dict[str, Any] = {
    "field_name": "",
    "amount": None,
    "activity_type": "",
    "contact_role": "",
    "label": "",
    "days": None,
}
# Kinds where a second criterion on the same stage would only shadow the first.
ONE_PER_STAGE = {
    CriterionKind.AMOUNT_AT_LEAST,
    CriterionKind.NO_SKIP,
    CriterionKind.MIN_DAYS_IN_PREVIOUS,
}
# A note is written, never "completed", so it cannot be a requirement.
REQUIRABLE_ACTIVITY_TYPES = [t for t in ActivityType if t != ActivityType.NOTE]


def _clean_criterion(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The full parameter set for a criterion of `kind`: its own fields checked, the rest
    blank. Mirrors the database's CheckConstraints, with messages an admin can act on."""
    if kind not in KIND_FIELDS:
        raise ConfigError("Choose what kind of criterion to add.")
    cleaned = dict(BLANK_PARAMETERS)
    match kind:
        case CriterionKind.FIELD_REQUIRED:
            if values.get("field_name") not in REQUIRABLE_FIELDS:
                raise ConfigError("Choose which deal field must be filled in.")
            cleaned["field_name"] = values["field_name"]
        case CriterionKind.AMOUNT_AT_LEAST:
            amount = values.get("amount")
            if amount is None:
                raise ConfigError("Enter the minimum amount.")
            amount = Decimal(amount)
            if not Decimal(0) <= amount <= MAX_CRITERION_AMOUNT:
                raise ConfigError("The minimum amount must be 0 or more.")
            cleaned["amount"] = amount.quantize(Decimal("0.01"))
        case CriterionKind.ACTIVITY_DONE:
            if values.get("activity_type") not in REQUIRABLE_ACTIVITY_TYPES:
                raise ConfigError("Choose which type of activity must be completed.")
            cleaned["activity_type"] = values["activity_type"]
        case CriterionKind.CONTACT_ROLE:
            if values.get("contact_role") not in ContactRole.values:
                raise ConfigError("Choose which contact role the deal needs.")
            cleaned["contact_role"] = values["contact_role"]
        case CriterionKind.CHECKLIST:
            label = " ".join((values.get("label") or "").split())
            if not label:
                raise ConfigError("Write the confirmation the rep must tick.")
            if len(label) > 200:
                raise ConfigError("Keep the confirmation to 200 characters.")
            cleaned["label"] = label
        case CriterionKind.MIN_DAYS_IN_PREVIOUS:
            days = values.get("days")
            if days is None or not 1 <= int(days) <= MAX_CRITERION_DAYS:
                raise ConfigError(f"Enter a number of days from 1 to {MAX_CRITERION_DAYS}.")
            cleaned["days"] = int(days)
    return cleaned


def _ensure_not_duplicate(
    stage: Stage, kind: str, parameters: dict[str, Any], *, exclude_pk: int | None = None
) -> None:
    others = EntryCriterion.objects.filter(stage=stage, kind=kind).exclude(pk=exclude_pk)
    if kind not in ONE_PER_STAGE:
        own = KIND_FIELDS[kind]
        if kind == CriterionKind.CHECKLIST:
            others = others.filter(label__iexact=parameters["label"])
        else:
            others = others.filter(**{field: parameters[field] for field in own})
    existing = others.first()
    if existing is not None:
        raise ConfigError(
            f"{stage.name} already requires “{existing.requirement}”; edit that one instead."
        )


def _save_criterion(criterion: EntryCriterion, **save_kwargs: Any) -> None:
    """Save, turning a CheckConstraint violation (validation missed a case) into a message."""
    try:
        with transaction.atomic():
            criterion.save(**save_kwargs)
    except IntegrityError:
        raise ConfigError("That criterion is incomplete; check its fields.") from None


def add_criterion(stage: Stage, *, kind: str, values: dict[str, Any], by: User) -> EntryCriterion:
    """Add an entry criterion of `kind` at the end of the stage's list.

    Only the kind's own parameters are kept; a criterion that repeats one already on the
    stage (or a second amount threshold, no-skip or minimum-days rule) is refused.
    """
    parameters = _clean_criterion(kind, values)
    with transaction.atomic():
        locked = lock_stage(stage.pk)
        _ensure_not_duplicate(locked, kind, parameters)
        last = locked.criteria.aggregate(m=Max("position"))["m"]
        criterion = EntryCriterion(
            stage=locked, kind=kind, position=0 if last is None else last + 1, **parameters
        )
        _save_criterion(criterion)
        record(
            by=by,
            action=ConfigAction.CREATED,
            subject=criterion,
            pipeline_id=locked.pipeline_id,
            summary=f"added criterion '{criterion.requirement}' to {locked.name}",
            changes={"kind": [None, kind], "requirement": [None, criterion.requirement]},
        )
    return criterion


def update_criterion(
    criterion: EntryCriterion, *, values: dict[str, Any], by: User
) -> EntryCriterion:
    """Change a criterion's parameters (its kind stays: remove it and add another instead)."""
    with transaction.atomic():
        locked = EntryCriterion.objects.select_for_update().get(pk=criterion.pk)
        stage = lock_stage(locked.stage_id)
        parameters = _clean_criterion(locked.kind, values)
        changes = {
            field: [getattr(locked, field), value]
            for field, value in parameters.items()
            if getattr(locked, field) != value
        }
        if not changes:
            return locked
        _ensure_not_duplicate(stage, locked.kind, parameters, exclude_pk=locked.pk)
        old_requirement = locked.requirement
        for field, value in parameters.items():
            setattr(locked, field, value)
        _save_criterion(locked, update_fields=list(changes))
        record(
            by=by,
            action=ConfigAction.UPDATED,
            subject=locked,
            pipeline_id=stage.pipeline_id,
            summary=(
                f"changed criterion on {stage.name}: '{old_requirement}' → '{locked.requirement}'"
            ),
            changes={f: [_json(old), _json(new)] for f, (old, new) in changes.items()},
        )
    return locked


def _json(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def move_criterion(criterion: EntryCriterion, *, offset: int, by: User) -> None:
    """Move a criterion one place up (-1) or down (+1); the rep's checklist follows it."""
    with transaction.atomic():
        stage = lock_stage(criterion.stage_id)
        criteria = list(stage.criteria.order_by("position", "id"))
        ids = [c.pk for c in criteria]
        if criterion.pk not in ids:
            raise StaleOrder()
        order = moved(ids, criterion.pk, offset, name=f"'{criterion.requirement}'")
        apply_order(criteria, order)
        record(
            by=by,
            action=ConfigAction.REORDERED,
            subject=criterion,
            pipeline_id=stage.pipeline_id,
            summary=(
                f"moved criterion '{criterion.requirement}' "
                f"{'up' if offset < 0 else 'down'} on {stage.name}"
            ),
            changes={"order": [ids, order]},
        )


def remove_criterion(criterion: EntryCriterion, *, by: User) -> None:
    """Remove a criterion from its stage. Gate telemetry keeps its requirement text;
    reps' ticks of a removed checklist item go with it."""
    with transaction.atomic():
        stage = lock_stage(criterion.stage_id)
        locked = EntryCriterion.objects.select_for_update().get(pk=criterion.pk)
        requirement, criterion_id = locked.requirement, locked.pk
        locked.delete()
        locked.pk = criterion_id  # delete() clears it; the audit row names it still
        record(
            by=by,
            action=ConfigAction.DELETED,
            subject=locked,
            pipeline_id=stage.pipeline_id,
            summary=f"removed criterion '{requirement}' from {stage.name}",
            changes={"requirement": [requirement, None]},
        )
