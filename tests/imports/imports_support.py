"""Shared helpers of the import tests (a module, not a conftest: only those tests use it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imports import runner, services
from imports.mapping import Mapping
from imports.models import ImportJob
from pipeline_crm.celery import app

# The outside data set lives in shared/ beside the checkout (as on CI and every workplace).
SAMPLE_DIR = str(
    Path(__file__).resolve().parents[3] / "shared" / "data" / "crm-sales-opportunities"
)

HEADER = "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value"


@pytest.fixture
def import_root(settings, tmp_path):
    settings.IMPORT_ROOT = tmp_path / "imports"
    return settings.IMPORT_ROOT


@pytest.fixture
def eager():
    """No broker: tasks run in-process (the zero-setup default), whatever REDIS_URL says."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def upload(text: str, name: str = "deals.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def start(
    by: Any,
    text: str,
    *,
    kind: str = "deals",
    pipeline: Any = None,
    reference: dict[str, Any] | None = None,
    override_reason: str = "",
    **options: Any,
) -> ImportJob:
    """A job for `text`, its guessed mapping changed by `options` (Mapping fields)."""
    job = services.start_import(
        by=by, upload=upload(text), kind=kind, pipeline=pipeline, reference=reference
    )
    mapping = Mapping.from_json(job.mapping)
    for name, value in options.items():
        if name in ("stages", "owners", "columns"):
            getattr(mapping, name).update(value)
        else:
            setattr(mapping, name, value)
    return services.update_mapping(
        job, by=by, mapping=mapping, pipeline=job.pipeline, override_reason=override_reason
    )


def run(by: Any, text: str, **kwargs: Any) -> ImportJob:
    """Start, confirm and run an import in this process; the job as it ended."""
    job = start(by, text, **kwargs)
    services.confirm_import(job, by=by, run_in_background=False)
    return runner.run_import(job.pk)


def csv_of(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"
