"""The Celery app. Without REDIS_URL, settings make tasks run in-process."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_crm.settings")

app = Celery("pipeline_crm")
# The default app in every thread too, so shared code (common/outbox.py) reaches it through
# celery.current_app instead of importing this wiring module.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
