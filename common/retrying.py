"""The project's base Celery task: acknowledged late, retried on infrastructure errors.

A task that meets a dropped database connection or an unreachable broker is not lost:
it is retried with backoff (its message is acknowledged only once the retry is queued,
`acks_late`), and a worker that dies mid-task leaves its message for redelivery
(`reject_on_worker_lost`). Domain work is idempotent, so a retry after a partial run
changes nothing twice. Beyond the retries, the outbox and event-log drains send the work
again.
"""

from __future__ import annotations

from celery import Task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, BrokerError)


class RetryingTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = INFRASTRUCTURE_ERRORS
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 5
