"""Reads for the configuration screens and the rules that guard them.

Deals and their history belong to `deals`, which `stages` must not import. The counts
below reach them through the reverse relations Django registers on `Stage` (`deals`,
`entries`), as subqueries, so a page costs the same queries whatever the data size.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from stages.models import ConfigChange, Pipeline, Stage, StageKind


def _deal_model() -> type[models.Model]:
    return Stage._meta.get_field("deals").related_model  # type: ignore[return-value]


def _history_model() -> type[models.Model]:
    return Stage._meta.get_field("entries").related_model  # type: ignore[return-value]


def _count(queryset: QuerySet, group_by: str) -> Coalesce:
    """COUNT(*) of `queryset` as a correlated subquery (0 when it matches nothing)."""
    counted = queryset.order_by().values(group_by).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted), Value(0))


def with_usage(stages: QuerySet[Stage]) -> QuerySet[Stage]:
    """Annotate `deal_count` and `has_history`, the two facts that decide deletability."""
    history = _history_model().objects.filter(
        Q(to_stage=OuterRef("pk")) | Q(from_stage=OuterRef("pk"))
    )
    return stages.annotate(
        deal_count=_count(_deal_model().objects.filter(stage=OuterRef("pk")), "stage"),
        has_history=Exists(history),
    )


@dataclass(frozen=True)
class Usage:
    deal_count: int
    has_history: bool

    @property
    def deletable(self) -> bool:
        return self.deal_count == 0 and not self.has_history


def stage_usage(stage: Stage) -> Usage:
    """How many deals sit in `stage` and whether any history names it (one query)."""
    row = with_usage(Stage.objects.filter(pk=stage.pk)).values("deal_count", "has_history").get()
    return Usage(deal_count=row["deal_count"], has_history=row["has_history"])


def open_deal_count(pipeline: Pipeline) -> int:
    return _deal_model().objects.filter(pipeline=pipeline, stage__kind=StageKind.OPEN).count()


def pipelines_overview() -> QuerySet[Pipeline]:
    """Every pipeline with its active stage count and open deal count, in board order."""
    open_deals = _deal_model().objects.filter(pipeline=OuterRef("pk"), stage__kind=StageKind.OPEN)
    return Pipeline.objects.annotate(
        stage_count=Count("stages", filter=Q(stages__is_archived=False)),
        open_deal_count=_count(open_deals, "pipeline"),
    ).order_by("position", "id")


def stages_overview(pipeline: Pipeline) -> QuerySet[Stage]:
    """A pipeline's stages in order, with usage and their entry criteria (two queries)."""
    return (
        with_usage(pipeline.stages.all()).prefetch_related("criteria").order_by("position", "id")
    )


def recent_changes(pipeline_id: int | None = None) -> QuerySet[ConfigChange]:
    changes = ConfigChange.objects.select_related("by", "pipeline")
    if pipeline_id is not None:
        changes = changes.filter(pipeline_id=pipeline_id)
    return changes.order_by("-at", "-id")
