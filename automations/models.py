"""Automation rules (trigger, conditions, actions) and the log of their runs.

A rule's trigger, conditions and actions are JSON checked by one schema
(`automations/spec.py`) on every save, not a table per kind: the kinds take different
parameters (a stage, a field and a value, an offset and an assignee), a rule is read and
written whole, and the references it holds (stages, users, teams, endpoints) are checked
set-based for every rule at once when the list is shown and again when a rule runs.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Rule(models.Model):
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="automation_rules"
    )
    # The rule only looks at deals of this pipeline (None: every pipeline).
    pipeline = models.ForeignKey(
        "stages.Pipeline", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_active = models.BooleanField(default=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    trigger = models.JSONField(default=dict)
    conditions = models.JSONField(default=dict)
    actions = models.JSONField(default=list)
    recipe = models.CharField(max_length=40, blank=True)
    failure_streak = models.PositiveIntegerField(default=0)
    # Round-robin assignment: the member who got the last deal.
    last_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Time-based rules: when the scan last looked; the next looks only at what fell due
    # since (at most CATCH_UP_DAYS back).
    scanned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["is_active"], name="rule_active")]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    PENDING = "pending", "Waiting to run"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class RuleRun(models.Model):
    """One run of a rule on a deal: for an event of the log (`event_id`) or a time-based
    trigger's due date (`due_on`), each exactly once (the two unique constraints).

    Written pending by the event consumer (or the time-based scan) and completed, with
    the actions' outcomes, in the same transaction as the actions themselves.
    """

    # No index of its own: rule_run_log (rule, created_at) serves lookups by rule, and
    # one index less is one write less per run (a week's catch-up writes 280k at 1M).
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="runs", db_index=False)
    deal_id = models.BigIntegerField()
    event_id = models.UUIDField(null=True, blank=True)
    event_name = models.CharField(max_length=40, blank=True)
    due_on = models.DateField(null=True, blank=True)
    # Chain: how many automation runs led here (1 = an event a person or job caused), and
    # the rules that already ran on this deal in the chain.
    depth = models.PositiveSmallIntegerField(default=1)
    chain = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=8, choices=RunStatus.choices, default=RunStatus.PENDING)
    reason = models.CharField(max_length=300, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    outcomes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "event_id"],
                condition=Q(event_id__isnull=False),
                name="rule_run_once_per_event",
            ),
            models.UniqueConstraint(
                fields=["rule", "deal_id", "due_on"],
                condition=Q(due_on__isnull=False),
                name="rule_run_once_per_due_date",
            ),
        ]
        indexes = [
            models.Index(fields=["rule", "created_at"], name="rule_run_log"),
            # Pruning old runs (automations.services.prune_runs) reads them by age.
            models.Index(fields=["created_at"], name="rule_run_age"),
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="rule_run_pending"
            ),
        ]
