"""Pipelines: create, rename, reorder, archive and restore."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Max

from stages import queries
from stages.models import ConfigAction, ForecastCategory, Pipeline, Stage, StageKind
from stages.services.base import (
    ConfigError,
    apply_order,
    clean_name,
    lock_pipeline,
    moved,
    record,
    set_archived,
)

if TYPE_CHECKING:
    from accounts.models import User

STARTER_STAGES = [
    {"name": "Lead in", "kind": StageKind.OPEN, "probability": 10},
    {
        "name": "Won",
        "kind": StageKind.WON,
        "probability": 100,
        "forecast_category": ForecastCategory.CLOSED,
    },
    {
        "name": "Lost",
        "kind": StageKind.LOST,
        "probability": 0,
        "forecast_category": ForecastCategory.OMITTED,
    },
]


def _ensure_pipeline_name_free(name: str, *, exclude_pk: int | None = None) -> None:
    clash = Pipeline.objects.filter(name__iexact=name).exclude(pk=exclude_pk)
    if clash.exists():
        raise ConfigError(f"There is already a pipeline named {name}.")


def create_pipeline(*, name: str, by: User) -> Pipeline:
    """Add a pipeline at the end of the list, with starter stages (Lead in, Won, Lost).

    The name must be new (case-insensitive). The starter stages make the pipeline usable
    at once: every pipeline needs an open stage to place deals and won/lost to close them.
    """
    name = clean_name(name, "pipeline")
    with transaction.atomic():
        _ensure_pipeline_name_free(name)
        last = Pipeline.objects.aggregate(m=Max("position"))["m"]
        pipeline = Pipeline.objects.create(name=name, position=0 if last is None else last + 1)
        Stage.objects.bulk_create(
            Stage(pipeline=pipeline, position=position, **starter)
            for position, starter in enumerate(STARTER_STAGES)
        )
        stage_names = ", ".join(s["name"] for s in STARTER_STAGES)
        record(
            by=by,
            action=ConfigAction.CREATED,
            subject=pipeline,
            pipeline_id=pipeline.pk,
            summary=f"created pipeline {name} with stages {stage_names}",
            changes={"name": [None, name]},
        )
    return pipeline


def rename_pipeline(pipeline: Pipeline, *, name: str, by: User) -> Pipeline:
    """Rename a pipeline; the new name must not be another pipeline's."""
    name = clean_name(name, "pipeline")
    with transaction.atomic():
        locked = lock_pipeline(pipeline.pk)
        old = locked.name
        if old == name:
            return locked
        _ensure_pipeline_name_free(name, exclude_pk=locked.pk)
        locked.name = name
        locked.save(update_fields=["name"])
        record(
            by=by,
            action=ConfigAction.UPDATED,
            subject=locked,
            pipeline_id=locked.pk,
            summary=f"renamed pipeline {old} → {name}",
            changes={"name": [old, name]},
        )
    return locked


def reorder_pipelines(order: Sequence[int], *, by: User) -> None:
    """Put the pipelines in `order` (every pipeline id, once); the board lists them so."""
    with transaction.atomic():
        pipelines = list(Pipeline.objects.select_for_update().order_by("position", "id"))
        if apply_order(pipelines, order):
            names = {p.pk: p.name for p in pipelines}
            record(
                by=by,
                action=ConfigAction.REORDERED,
                subject=pipelines[0],
                pipeline_id=None,
                summary="reordered pipelines: " + ", ".join(names[pk] for pk in order),
                changes={"order": [[p.pk for p in pipelines], list(order)]},
            )


def move_pipeline(pipeline: Pipeline, *, offset: int, by: User) -> None:
    """Move a pipeline one place up (offset -1) or down (+1) in the list."""
    with transaction.atomic():
        pipelines = list(Pipeline.objects.select_for_update().order_by("position", "id"))
        ids = [p.pk for p in pipelines]
        order = moved(ids, pipeline.pk, offset, name=pipeline.name)
        apply_order(pipelines, order)
        record(
            by=by,
            action=ConfigAction.REORDERED,
            subject=pipeline,
            pipeline_id=pipeline.pk,
            summary=f"moved pipeline {pipeline.name} {'up' if offset < 0 else 'down'}",
            changes={"order": [ids, order]},
        )


def archive_pipeline(pipeline: Pipeline, *, by: User) -> Pipeline:
    """Hide a pipeline from the board. Refused while it holds open deals (they would
    vanish from every board) or when it is the last active pipeline."""
    with transaction.atomic():
        locked = lock_pipeline(pipeline.pk)
        if locked.is_archived:
            return locked
        if not Pipeline.objects.filter(is_archived=False).exclude(pk=locked.pk).exists():
            raise ConfigError(f"{locked.name} is the only active pipeline; it cannot be archived.")
        open_deals = queries.open_deal_count(locked)
        if open_deals:
            raise ConfigError(
                f"{locked.name} still has {open_deals} open deal{'s' if open_deals != 1 else ''}; "
                "close them or move them to another pipeline before archiving it."
            )
        set_archived(locked, True, by=by, pipeline_id=locked.pk, label=f"pipeline {locked.name}")
    return locked


def restore_pipeline(pipeline: Pipeline, *, by: User) -> Pipeline:
    """Bring an archived pipeline back onto the board."""
    with transaction.atomic():
        locked = lock_pipeline(pipeline.pk)
        if not locked.is_archived:
            return locked
        set_archived(locked, False, by=by, pipeline_id=locked.pk, label=f"pipeline {locked.name}")
    return locked
