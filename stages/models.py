from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from common import formats


class Pipeline(models.Model):
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0)
    is_archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class StageKind(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class ForecastCategory(models.TextChoices):
    PIPELINE = "pipeline", "Pipeline"
    BEST_CASE = "best_case", "Best case"
    COMMIT = "commit", "Commit"
    CLOSED = "closed", "Closed"
    OMITTED = "omitted", "Omitted"


class StageQuerySet(models.QuerySet["Stage"]):
    def active(self) -> StageQuerySet:
        return self.filter(is_archived=False)

    def open(self) -> StageQuerySet:
        return self.filter(kind=StageKind.OPEN)


class Stage(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="stages")
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=4, choices=StageKind.choices, default=StageKind.OPEN)
    probability = models.PositiveSmallIntegerField(default=10, help_text="Default win %, 0-100")
    forecast_category = models.CharField(
        max_length=10, choices=ForecastCategory.choices, default=ForecastCategory.PIPELINE
    )
    rotting_days = models.PositiveIntegerField(default=0, help_text="0 turns the rule off")
    guidance = models.TextField(blank=True, max_length=5000)
    is_archived = models.BooleanField(default=False)

    objects = StageQuerySet.as_manager()

    class Meta:
        ordering = ["pipeline_id", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(probability__gte=0) & Q(probability__lte=100),
                name="stage_probability_0_100",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.kind == StageKind.OPEN

    @property
    def is_won(self) -> bool:
        return self.kind == StageKind.WON

    @property
    def is_lost(self) -> bool:
        return self.kind == StageKind.LOST


class CriterionKind(models.TextChoices):
    FIELD_REQUIRED = "field_required", "Field is filled"
    AMOUNT_AT_LEAST = "amount_at_least", "Amount at least"
    ACTIVITY_DONE = "activity_done", "Activity completed"
    CONTACT_ROLE = "contact_role", "Contact with role"
    CHECKLIST = "checklist", "Checklist confirmation"
    NO_SKIP = "no_skip", "No skipping stages"
    MIN_DAYS_IN_PREVIOUS = "min_days_in_previous", "Minimum days in previous stage"


class ActivityType(models.TextChoices):
    """Activity types live here because criteria name them; deals.Activity uses them."""

    CALL = "call", "Call"
    MEETING = "meeting", "Meeting"
    DEMO = "demo", "Demo"
    EMAIL = "email", "Email"
    TASK = "task", "Task"
    NOTE = "note", "Note"


class ContactRole(models.TextChoices):
    DECISION_MAKER = "decision_maker", "Decision maker"
    ECONOMIC_BUYER = "economic_buyer", "Economic buyer"
    CHAMPION = "champion", "Champion"
    INFLUENCER = "influencer", "Influencer"
    TECHNICAL = "technical", "Technical evaluator"
    USER = "user", "User"


# Deal fields a `field_required` criterion may name, with the message a rep reads.
REQUIRABLE_FIELDS: dict[str, str] = {
    "amount": "Add an amount",
    "expected_close_date": "Add an expected close date",
    "person": "Add a primary contact",
    "organization": "Add an organization",
    "next_step": "Write the next step",
}


class EntryCriterion(models.Model):
    """One condition a deal must meet to enter `stage`. Which fields matter depends on `kind`."""

    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="criteria")
    kind = models.CharField(max_length=24, choices=CriterionKind.choices)
    position = models.PositiveIntegerField(default=0)
    field_name = models.CharField(max_length=40, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    activity_type = models.CharField(max_length=10, choices=ActivityType.choices, blank=True)
    contact_role = models.CharField(max_length=20, choices=ContactRole.choices, blank=True)
    label = models.CharField(max_length=200, blank=True, help_text="Checklist confirmation")
    days = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["stage_id", "position", "id"]
        verbose_name_plural = "entry criteria"
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="field_required") | Q(field_name__in=list(REQUIRABLE_FIELDS)),
                name="criterion_field_required_names_field",
            ),
            models.CheckConstraint(
                condition=~Q(kind="amount_at_least") | Q(amount__gte=0),
                name="criterion_amount_at_least_has_amount",
            ),
            models.CheckConstraint(
                condition=~Q(kind="activity_done") | ~Q(activity_type=""),
                name="criterion_activity_done_has_type",
            ),
            models.CheckConstraint(
                condition=~Q(kind="contact_role") | ~Q(contact_role=""),
                name="criterion_contact_role_has_role",
            ),
            models.CheckConstraint(
                condition=~Q(kind="checklist") | ~Q(label=""),
                name="criterion_checklist_has_label",
            ),
            models.CheckConstraint(
                condition=~Q(kind="min_days_in_previous") | Q(days__gte=1),
                name="criterion_min_days_has_days",
            ),
        ]

    def __str__(self) -> str:
        return self.requirement

    @property
    def requirement(self) -> str:
        """What the deal needs, phrased as an instruction to the rep."""
        match self.kind:
            case CriterionKind.FIELD_REQUIRED:
                return REQUIRABLE_FIELDS.get(self.field_name, f"Fill in {self.field_name}")
            case CriterionKind.AMOUNT_AT_LEAST:
                # The app's money format; no symbol, as deals in any currency compare.
                return f"Amount must be at least {formats.money(self.amount)}"
            case CriterionKind.ACTIVITY_DONE:
                return f"Log a completed {ActivityType(self.activity_type).label.lower()}"
            case CriterionKind.CONTACT_ROLE:
                role = ContactRole(self.contact_role).label.lower()
                return f"Add a contact with the role {role}"
            case CriterionKind.CHECKLIST:
                return f"Confirm: {self.label}"
            case CriterionKind.NO_SKIP:
                return "Pass through the previous stage first (no skipping)"
            case CriterionKind.MIN_DAYS_IN_PREVIOUS:
                return f"Spend at least {self.days} days in the previous stage"
        return self.get_kind_display()


class ConfigSubject(models.TextChoices):
    PIPELINE = "pipeline", "Pipeline"
    STAGE = "stage", "Stage"
    CRITERION = "criterion", "Entry criterion"


class ConfigAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Changed"
    REORDERED = "reordered", "Reordered"
    ARCHIVED = "archived", "Archived"
    RESTORED = "restored", "Restored"
    DELETED = "deleted", "Deleted"


class ConfigChange(models.Model):
    """Audit trail of configuration edits: who changed which pipeline, stage or criterion, how.

    Written only by `stages.services`, in the same transaction as the change itself.
    """

    at = models.DateTimeField(default=timezone.now)
    # PROTECT: the audit must always say who; people who configured things are deactivated,
    # not deleted.
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=ConfigAction.choices)
    subject_type = models.CharField(max_length=10, choices=ConfigSubject.choices)
    # No foreign key: the row must outlive a deleted stage or criterion.
    subject_id = models.PositiveBigIntegerField()
    pipeline = models.ForeignKey(
        Pipeline, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    summary = models.CharField(max_length=1000)
    changes = models.JSONField(default=dict, blank=True, help_text="{field: [before, after]}")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["-at", "-id"], name="config_change_recent"),
            models.Index(fields=["pipeline", "-at"], name="config_change_pipeline"),
        ]

    def __str__(self) -> str:
        return self.summary
