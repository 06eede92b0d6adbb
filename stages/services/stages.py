"""Stages: create, change, reorder, archive, restore and delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError

from stages import queries
from stages.models import ConfigAction, ForecastCategory, Pipeline, Stage, StageKind
from stages.services.base import (
    ConfigError,
    StaleOrder,
    apply_order,
    clean_name,
    ensure_kind_remains,
    kind_label,
    lock_pipeline,
    lock_stage,
    moved,
    record,
    set_archived,
)

if TYPE_CHECKING:
    from accounts.models import User

MAX_ROTTING_DAYS = 3650


@dataclass(frozen=True)
class StageSettings:
    """Everything an admin sets on a stage (position and archiving have their own actions)."""

    name: str
    kind: str = StageKind.OPEN
    probability: int = 10
    forecast_category: str = ForecastCategory.PIPELINE
    rotting_days: int = 0
    guidance: str = ""


def _ensure_stage_name_free(
    pipeline: Pipeline, name: str, *, exclude_pk: int | None = None
) -> None:
    # Archived stages count too: restoring one must not produce twins.
    clash = Stage.objects.filter(pipeline=pipeline, name__iexact=name).exclude(pk=exclude_pk)
    if clash.exists():
        raise ConfigError(f"{pipeline.name} already has a stage named {name}.")


def _clean_stage_settings(values: StageSettings) -> StageSettings:
    if values.kind not in StageKind.values:
        raise ConfigError("Choose whether the stage is open, won or lost.")
    if values.forecast_category not in ForecastCategory.values:
        raise ConfigError("Choose a forecast category.")
    if not 0 <= values.probability <= 100:
        raise ConfigError("The win probability must be between 0 and 100.")
    if not 0 <= values.rotting_days <= MAX_ROTTING_DAYS:
        raise ConfigError(f"Rotting days must be between 0 (off) and {MAX_ROTTING_DAYS}.")
    guidance = (values.guidance or "").replace("\r\n", "\n").strip()
    if len(guidance) > settings.MAX_TEXT_LENGTH:
        raise ConfigError(f"Keep the guidance to {settings.MAX_TEXT_LENGTH} characters.")
    return StageSettings(
        name=clean_name(values.name, "stage"),
        kind=values.kind,
        probability=values.probability,
        forecast_category=values.forecast_category,
        rotting_days=values.rotting_days,
        guidance=guidance,
    )


def create_stage(pipeline: Pipeline, values: StageSettings, *, by: User) -> Stage:
    """Add a stage to `pipeline`. An open stage goes after the last open stage (before
    Won and Lost), a closing stage at the end; its name must be new in the pipeline."""
    values = _clean_stage_settings(values)
    with transaction.atomic():
        locked = lock_pipeline(pipeline.pk)
        _ensure_stage_name_free(locked, values.name)
        siblings = list(Stage.objects.filter(pipeline=locked).order_by("position", "id"))
        order = [s.pk for s in siblings]
        insert_at = len(order)
        if values.kind == StageKind.OPEN:
            open_indexes = [i for i, s in enumerate(siblings) if s.kind == StageKind.OPEN]
            insert_at = open_indexes[-1] + 1 if open_indexes else 0
        stage = Stage.objects.create(pipeline=locked, position=insert_at, **asdict(values))
        order.insert(insert_at, stage.pk)
        apply_order([*siblings, stage], order)
        record(
            by=by,
            action=ConfigAction.CREATED,
            subject=stage,
            pipeline_id=locked.pk,
            summary=f"added {kind_label(values.kind)} stage {values.name} to {locked.name}",
            changes={field: [None, value] for field, value in asdict(values).items()},
        )
    return stage


def _describe(field: str, value: Any) -> str:
    match field:
        case "kind":
            return StageKind(value).label
        case "forecast_category":
            return ForecastCategory(value).label
        case "probability":
            return f"{value}%"
        case "rotting_days":
            return "off" if value == 0 else f"{value} days"
    return str(value)


STAGE_FIELD_LABELS = {
    "kind": "kind",
    "probability": "probability",
    "forecast_category": "forecast category",
    "rotting_days": "rotting",
    "guidance": "guidance",
}


def update_stage(stage: Stage, values: StageSettings, *, by: User) -> Stage:
    """Change a stage's name, kind, probability, forecast category, rotting days or guidance.

    A stage holding deals keeps its kind (changing it would close or reopen those deals
    without a move), and a pipeline keeps an active stage of every kind.
    """
    values = _clean_stage_settings(values)
    with transaction.atomic():
        locked = lock_stage(stage.pk)
        before = {field: getattr(locked, field) for field in asdict(values)}
        after = asdict(values)
        changes = {f: [before[f], after[f]] for f in after if before[f] != after[f]}
        if not changes:
            return locked
        if "name" in changes:
            _ensure_stage_name_free(locked.pipeline, values.name, exclude_pk=locked.pk)
        if "kind" in changes:
            deals = locked.deals.count()
            if deals:
                raise ConfigError(
                    f"{locked.name} holds {deals} deal{'s' if deals != 1 else ''}, so its kind "
                    "cannot change (that would close or reopen them without a move). "
                    "Add a new stage instead."
                )
            ensure_kind_remains(locked, doing="change the kind of")
        old_name = locked.name
        for field, value in after.items():
            setattr(locked, field, value)
        locked.save(update_fields=list(changes))

        details = [
            f"{STAGE_FIELD_LABELS[f]} edited"
            if f == "guidance"
            else f"{STAGE_FIELD_LABELS[f]} {_describe(f, old)} → {_describe(f, new)}"
            for f, (old, new) in changes.items()
            if f != "name"
        ]
        if "name" in changes:
            summary = f"renamed stage {old_name} → {locked.name}"
            if details:
                summary += "; " + ", ".join(details)
        else:
            summary = f"changed stage {locked.name}: " + ", ".join(details)
        record(
            by=by,
            action=ConfigAction.UPDATED,
            subject=locked,
            pipeline_id=locked.pipeline_id,
            summary=summary,
            changes=changes,
        )
    return locked


def reorder_stages(pipeline: Pipeline, order: Sequence[int], *, by: User) -> None:
    """Put the pipeline's stages in `order` (every stage id of the pipeline, once).

    Order matters beyond looks: the board's columns follow it, and `no_skip` and
    `min_days_in_previous` criteria read "the previous stage" from it.
    """
    with transaction.atomic():
        locked = lock_pipeline(pipeline.pk)
        stages = list(Stage.objects.filter(pipeline=locked).order_by("position", "id"))
        if apply_order(stages, order):
            names = {s.pk: s.name for s in stages}
            record(
                by=by,
                action=ConfigAction.REORDERED,
                subject=locked,
                pipeline_id=locked.pk,
                summary=f"reordered stages of {locked.name}: "
                + ", ".join(names[pk] for pk in order),
                changes={"order": [[s.pk for s in stages], list(order)]},
            )


def move_stage(stage: Stage, *, offset: int, by: User) -> None:
    """Move a stage one place earlier (offset -1) or later (+1) in its pipeline."""
    with transaction.atomic():
        locked = lock_pipeline(stage.pipeline_id)
        stages = list(Stage.objects.filter(pipeline=locked).order_by("position", "id"))
        ids = [s.pk for s in stages]
        if stage.pk not in ids:
            raise StaleOrder()
        order = moved(ids, stage.pk, offset, name=stage.name)
        apply_order(stages, order)
        record(
            by=by,
            action=ConfigAction.REORDERED,
            subject=stage,
            pipeline_id=locked.pk,
            summary=f"moved stage {stage.name} {'up' if offset < 0 else 'down'} in {locked.name}",
            changes={"order": [ids, order]},
        )


def archive_stage(stage: Stage, *, by: User) -> Stage:
    """Retire a stage: it leaves the board and the move menu, its history stays.

    Refused while deals sit in an open stage (they would drop off the board) and for the
    pipeline's last active stage of a kind. Closed deals may stay in an archived won or
    lost stage: they are done, and reports still count them.
    """
    with transaction.atomic():
        locked = lock_stage(stage.pk)
        if locked.is_archived:
            return locked
        if locked.kind == StageKind.OPEN:
            deals = locked.deals.count()
            if deals:
                raise ConfigError(
                    f"{locked.name} still holds {deals} deal{'s' if deals != 1 else ''}; "
                    "move them to another stage before archiving it."
                )
        ensure_kind_remains(locked, doing="archive")
        set_archived(
            locked,
            True,
            by=by,
            pipeline_id=locked.pipeline_id,
            label=f"stage {locked.name} in {locked.pipeline.name}",
        )
    return locked


def restore_stage(stage: Stage, *, by: User) -> Stage:
    """Bring an archived stage back onto the board, where it stood in the order."""
    with transaction.atomic():
        locked = lock_stage(stage.pk)
        if not locked.is_archived:
            return locked
        set_archived(
            locked,
            False,
            by=by,
            pipeline_id=locked.pipeline_id,
            label=f"stage {locked.name} in {locked.pipeline.name}",
        )
    return locked


def _cannot_delete(stage: Stage) -> ConfigError:
    return ConfigError(
        f"{stage.name} holds deals or stage history, so it cannot be deleted; archive it instead."
    )


def delete_stage(stage: Stage, *, by: User) -> None:
    """Delete a stage that never held a deal: no deals in it and no history naming it.

    Anything else is refused (archive instead). The database protects the rows as well
    (`on_delete=PROTECT`), so a deal that arrives between the check and the delete still
    stops it, with the same message. Its criteria go with it.
    """
    with transaction.atomic():
        locked = lock_stage(stage.pk)
        if not queries.stage_usage(locked).deletable:
            raise _cannot_delete(locked)
        ensure_kind_remains(locked, doing="delete")
        stage_id, name, pipeline = locked.pk, locked.name, locked.pipeline
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError:
            raise _cannot_delete(locked) from None
        locked.pk = stage_id  # delete() clears it; the audit row names the stage still
        record(
            by=by,
            action=ConfigAction.DELETED,
            subject=locked,
            pipeline_id=pipeline.pk,
            summary=f"deleted stage {name} from {pipeline.name}",
            changes={"name": [name, None]},
        )
