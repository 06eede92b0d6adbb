"""The Celery app. Without REDIS_URL, settings make tasks run in-process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_crm.settings")

# Every task: acknowledged late, retried on database and broker errors (common/retrying.py).
app = Celery("pipeline_crm", task_cls="common.retrying:RetryingTask")
# The default app in every thread too, so shared code (common/outbox.py) reaches it through
# celery.current_app instead of importing this wiring module.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class HeartbeatScheduler(PersistentScheduler):
    """Beat's scheduler, touching BEAT_HEARTBEAT_FILE after every tick: a beat whose loop
    hangs or died stops touching it, which its health check notices."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        Path(settings.BEAT_HEARTBEAT_FILE).touch()
        return interval
