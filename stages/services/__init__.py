"""Configuration writes with rules: pipelines, stages and entry criteria.

Every function locks what it changes, checks its rule, writes, and appends one
`ConfigChange` row in the same transaction, so the audit page tells exactly who
changed what and when. Domain failures raise `ConfigError` with a message fit to show.

Invariants kept here:
- names are unique (case-insensitive): pipelines among pipelines, stages within their
  pipeline, so the board, the "Move to stage" menu and reports never show two
  look-alikes;
- a pipeline keeps at least one active open, won and lost stage, so a deal can always
  be placed, won and lost;
- a stage holding deals or history is never deleted (the database protects it too),
  and a stage holding deals is neither archived nor changes kind while they sit there.
"""

from __future__ import annotations

from stages.services.base import NAME_MAX_LENGTH, ConfigError, StaleOrder
from stages.services.criteria import (
    KIND_FIELDS,
    MAX_CRITERION_DAYS,
    REQUIRABLE_ACTIVITY_TYPES,
    add_criterion,
    move_criterion,
    remove_criterion,
    update_criterion,
)
from stages.services.pipelines import (
    archive_pipeline,
    create_pipeline,
    move_pipeline,
    rename_pipeline,
    reorder_pipelines,
    restore_pipeline,
)
from stages.services.stages import (
    MAX_ROTTING_DAYS,
    StageSettings,
    archive_stage,
    create_stage,
    delete_stage,
    move_stage,
    reorder_stages,
    restore_stage,
    update_stage,
)

__all__ = [
    "KIND_FIELDS",
    "MAX_CRITERION_DAYS",
    "MAX_ROTTING_DAYS",
    "NAME_MAX_LENGTH",
    "REQUIRABLE_ACTIVITY_TYPES",
    "ConfigError",
    "StageSettings",
    "StaleOrder",
    "add_criterion",
    "archive_pipeline",
    "archive_stage",
    "create_pipeline",
    "create_stage",
    "delete_stage",
    "move_criterion",
    "move_pipeline",
    "move_stage",
    "remove_criterion",
    "rename_pipeline",
    "reorder_pipelines",
    "reorder_stages",
    "restore_pipeline",
    "restore_stage",
    "update_criterion",
    "update_stage",
]
