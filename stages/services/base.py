"""What every configuration service shares: errors, the audit row, locks, ordering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db.models import Model

from common.errors import RuleFailed, StaleVersion
from stages.models import (
    ConfigAction,
    ConfigChange,
    ConfigSubject,
    EntryCriterion,
    Pipeline,
    Stage,
    StageKind,
)

if TYPE_CHECKING:
    from accounts.models import User

NAME_MAX_LENGTH = 100


class ConfigError(RuleFailed):
    """A configuration change refused by a rule (a name taken, a stage in use, the last
    active pipeline), with a message fit to show the admin: 422 through the one mapping
    (common.errors.describe), on the settings pages and the API alike."""


class StaleOrder(StaleVersion):
    """A reorder named a list that changed meanwhile (someone added or removed a row)."""

    def __init__(self) -> None:
        super().__init__("The list changed meanwhile; here it is again. Please reorder once more.")


def record(
    *,
    by: User,
    action: str,
    subject: Model,
    summary: str,
    pipeline_id: int | None,
    changes: dict[str, list[Any]] | None = None,
) -> ConfigChange:
    subject_type = {
        Pipeline: ConfigSubject.PIPELINE,
        Stage: ConfigSubject.STAGE,
        EntryCriterion: ConfigSubject.CRITERION,
    }[type(subject)]
    return ConfigChange.objects.create(
        by=by,
        action=action,
        subject_type=subject_type,
        subject_id=subject.pk,
        pipeline_id=pipeline_id,
        summary=summary[:1000],
        changes=changes or {},
    )


def clean_name(name: str, what: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ConfigError(f"Give the {what} a name.")
    if len(name) > NAME_MAX_LENGTH:
        raise ConfigError(f"Keep the {what} name to {NAME_MAX_LENGTH} characters.")
    return name


def lock_pipeline(pipeline_id: int) -> Pipeline:
    return Pipeline.objects.select_for_update().get(pk=pipeline_id)


def lock_stage(stage_id: int) -> Stage:
    return Stage.objects.select_for_update().select_related("pipeline").get(pk=stage_id)


def moved(ids: list[int], pk: int, offset: int, *, name: str) -> list[int]:
    """`ids` with `pk` moved `offset` places (-1 up, +1 down); refuses to leave the list."""
    index = ids.index(pk)
    target = index + offset
    if target < 0:
        raise ConfigError(f"{name} is already first.")
    if target >= len(ids):
        raise ConfigError(f"{name} is already last.")
    reordered = ids[:]
    reordered.insert(target, reordered.pop(index))
    return reordered


def apply_order(rows: Sequence[Model], order: Sequence[int]) -> bool:
    """Number `rows` 0..n-1 following `order` (one UPDATE); True if the order changed.

    `order` must name exactly the rows, or the caller was looking at a stale list.
    """
    by_pk = {row.pk: row for row in rows}
    if len(order) != len(by_pk) or set(order) != set(by_pk):
        raise StaleOrder()
    before = [row.pk for row in sorted(rows, key=lambda r: (r.position, r.pk))]  # type: ignore[attr-defined]
    changed = []
    for position, pk in enumerate(order):
        row = by_pk[pk]
        if row.position != position:  # type: ignore[attr-defined]
            row.position = position  # type: ignore[attr-defined]
            changed.append(row)
    if changed:
        type(rows[0]).objects.bulk_update(changed, ["position"])  # type: ignore[attr-defined]
    return before != list(order)


def kind_label(kind: str) -> str:
    return StageKind(kind).label.lower()


def ensure_kind_remains(stage: Stage, *, doing: str) -> None:
    """Refuse to take away a pipeline's last active stage of `stage`'s kind."""
    if stage.is_archived:
        return
    others = Stage.objects.filter(
        pipeline_id=stage.pipeline_id, kind=stage.kind, is_archived=False
    ).exclude(pk=stage.pk)
    if not others.exists():
        raise ConfigError(
            f"{stage.pipeline.name} needs at least one active {kind_label(stage.kind)} stage, "
            f"and {stage.name} is the only one; add another before you {doing} it."
        )


def set_archived(
    row: Pipeline | Stage, archived: bool, *, by: User, pipeline_id: int, label: str
) -> None:
    """Flip `is_archived` and record it: the last step of every archive and restore."""
    row.is_archived = archived
    row.save(update_fields=["is_archived"])
    verb = "archived" if archived else "restored"
    record(
        by=by,
        action=ConfigAction.ARCHIVED if archived else ConfigAction.RESTORED,
        subject=row,
        pipeline_id=pipeline_id,
        summary=f"{verb} {label}",
        changes={"is_archived": [not archived, archived]},
    )
