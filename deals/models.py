from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts import policy
from accounts.models import User
from stages.models import ActivityType, ContactRole, StageKind


class DealQuerySet(models.QuerySet["Deal"]):
    def visible_to(self, user: User) -> DealQuerySet:
        """Deals `user` may see, as the access policy says (`accounts.policy.deals`)."""
        return policy.deals(user, self)

    def editable_by(self, user: User) -> DealQuerySet:
        """Deals `user` may change, as the access policy says."""
        return policy.changeable_deals(user, self)

    def open(self) -> DealQuerySet:
        return self.filter(stage__kind=StageKind.OPEN)


class Deal(models.Model):
    title = models.CharField(max_length=200)
    organization = models.ForeignKey(
        "contacts.Organization",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deals",
    )
    person = models.ForeignKey(
        "contacts.Person",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deals",
        verbose_name="primary contact",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deals"
    )
    pipeline = models.ForeignKey("stages.Pipeline", on_delete=models.PROTECT, related_name="deals")
    # Indexed as the first column of deal_column_order and deal_stage_age.
    stage = models.ForeignKey(
        "stages.Stage", on_delete=models.PROTECT, related_name="deals", db_index=False
    )
    amount = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
    )
    currency = models.CharField(max_length=3, default="USD")
    expected_close_date = models.DateField(null=True, blank=True)
    close_date_pushes = models.PositiveIntegerField(
        default=0, help_text="How often the expected close date moved later"
    )
    probability_override = models.PositiveSmallIntegerField(null=True, blank=True)
    next_step = models.CharField(max_length=200, blank=True)
    lost_reason = models.CharField(max_length=200, blank=True)
    product = models.CharField(max_length=100, blank=True)
    stage_entered_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    position = models.BigIntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    snoozed_until = models.DateField(null=True, blank=True)
    snooze_reason = models.CharField(max_length=200, blank=True)
    external_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # What the stalled rules ask of a deal's activities, kept on the deal by every
    # activity write in its transaction (`deals.activities.refresh_activity_times`), so
    # the job reads one row per deal instead of all the deal's activities: when an
    # activity was last logged or completed, and the open activity that comes next.
    last_activity_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_activity = models.ForeignKey(
        "Activity",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.DO_NOTHING,  # refreshed by whatever deletes the activity
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    objects = DealQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        indexes = [
            models.Index(fields=["stage", "position", "id"], name="deal_column_order"),
            # How long each open deal has been in its stage, per stage, from the index alone
            # (the dashboard's time in stage: 76 -> 43 ms over 80k open deals).
            models.Index(fields=["stage", "pipeline", "stage_entered_at"], name="deal_stage_age"),
            models.Index(fields=["owner", "stage"], name="deal_owner_stage"),
            models.Index(fields=["expected_close_date"], name="deal_close_date"),
            models.Index(fields=["external_id"], name="deal_external_id"),
            # Deals written since the automations scan's last pass (a due point set in
            # the past after it): an index range of minutes' worth, not a table scan.
            models.Index(fields=["updated_at"], name="deal_updated"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gte=0),
                name="deal_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(probability_override__isnull=True)
                | (Q(probability_override__gte=0) & Q(probability_override__lte=100)),
                name="deal_probability_0_100",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.stage.kind == StageKind.OPEN

    @property
    def probability(self) -> int:
        if self.probability_override is not None:
            return self.probability_override
        return self.stage.probability

    @property
    def days_in_stage(self) -> int:
        return (timezone.now() - self.stage_entered_at).days


class Activity(models.Model):
    type = models.CharField(max_length=10, choices=ActivityType.choices, default=ActivityType.CALL)
    subject = models.CharField(max_length=200)
    note = models.TextField(blank=True, max_length=5000)
    due_at = models.DateTimeField(null=True, blank=True)
    done = models.BooleanField(default=False)
    done_at = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="activities"
    )
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="activities")
    person = models.ForeignKey(
        "contacts.Person",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="activities",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["deal", "done", "due_at"], name="activity_deal_next"),
            models.Index(fields=["owner", "done", "due_at"], name="activity_owner_due"),
            # Open activities by due time: the automations scan reads those that fell due
            # since its last pass (minutes' worth), not a week of them at every pass.
            models.Index(fields=["due_at"], condition=Q(done=False), name="activity_open_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(done=False) | Q(done_at__isnull=False), name="activity_done_has_time"
            ),
        ]

    def __str__(self) -> str:
        return self.subject

    @property
    def is_overdue(self) -> bool:
        return not self.done and self.due_at is not None and self.due_at < timezone.now()


class MoveSource(models.TextChoices):
    BOARD = "board", "Board"
    MENU = "menu", "Move menu"
    FORM = "form", "Edit form"
    BULK = "bulk", "Bulk action"
    IMPORT = "import", "Import"
    API = "api", "API"
    AUTOMATION = "automation", "Automation"
    UNDO = "undo", "Undo"
    ADMIN = "admin", "Django admin"
    CREATE = "create", "Created"


class StageChange(models.Model):
    """Append-only history of stage entries. `seq` orders a deal's rows exactly."""

    # Indexed by the (deal, seq) unique constraint and (deal, to_stage) below.
    deal = models.ForeignKey(
        Deal, on_delete=models.PROTECT, related_name="stage_changes", db_index=False
    )
    seq = models.PositiveIntegerField()
    from_stage = models.ForeignKey(
        "stages.Stage", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_stage = models.ForeignKey("stages.Stage", on_delete=models.PROTECT, related_name="entries")
    pipeline = models.ForeignKey("stages.Pipeline", on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=10, choices=MoveSource.choices)
    override_reason = models.CharField(max_length=500, blank=True)
    overridden = models.JSONField(default=list, blank=True, help_text="Requirements overridden")
    # The idempotency key of the request that made this move (the board sends one per
    # attempt): its retry is answered with this move instead of a conflict.
    request_key = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["deal_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["deal", "seq"], name="stage_change_unique_seq"),
            models.UniqueConstraint(
                fields=["deal", "request_key"],
                condition=~Q(request_key=""),
                name="stage_change_request_once",
            ),
        ]
        indexes = [
            models.Index(fields=["to_stage", "at"], name="stage_change_to_at"),
            models.Index(fields=["pipeline", "at"], name="stage_change_pipeline_at"),
            # Learned win rates read which stages each closed deal passed through from
            # this index alone (index-only scan), not from the history rows.
            models.Index(fields=["deal", "to_stage"], name="stage_change_deal_stage"),
            # The dashboard derives the last minutes' stays from the changes since its
            # summary's mark. With `at` leading an index, PostgreSQL reads the newest `at`
            # from it when planning, instead of guessing "no rows past the statistics":
            # that guess planned a manager's time-in-stage as a nested loop (0.6 s vs 50 ms).
            models.Index(fields=["at"], name="stage_change_at"),
        ]

    def __str__(self) -> str:
        return f"{self.deal_id} #{self.seq} → {self.to_stage_id}"


class RewrittenHistory(models.Model):
    """A deal whose stage history was written with past dates or removed: an import
    (history of the years before it), an import's undo, a delete.

    Summaries derived from the history (the dashboard's, in `reports`) are kept up to a
    time mark and only look at changes newer than it, so a write dated before the mark
    would never reach them. Whoever writes such history adds a row here in the same
    transaction; the summaries recompute these deals from their whole history before
    they are read (and in their periodic refresh), then delete the rows. Moves, written
    at the current time, need no row. Deleting a deal's history (an import's undo, the
    only delete) must add one too: the summaries' rows do not cascade, they leave when
    the deal is recomputed (to nothing). Plain columns: the deal may be gone already.
    """

    deal_id = models.BigIntegerField()
    # Set by the summary refresh that is recomputing the deal, in its own transaction:
    # rows added meanwhile stay for the next one.
    claimed = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["claimed", "deal_id"], name="rewritten_history_deal")]

    @classmethod
    def mark(cls, deal_ids: Iterable[int]) -> None:
        """Record that these deals' history was rewritten (call inside the write's
        transaction, one statement however many deals)."""
        cls.objects.bulk_create([cls(deal_id=deal_id) for deal_id in set(deal_ids)])


class QuietDeal(models.Model):
    """A deal an import created, whose stalled flags have not been computed yet.

    Its flags are computed as for any deal, but the first computation announces none of
    them deal by deal (an import of a year's history would send the owners one notice per
    old deal): the importer gets one notice per import instead, and the row goes. Flags
    the deal raises later notify its owner as any deal's do.
    """

    deal = models.OneToOneField(Deal, on_delete=models.CASCADE, primary_key=True, related_name="+")


class GateOutcome(models.TextChoices):
    BLOCKED = "blocked", "Blocked"
    OVERRIDDEN = "overridden", "Overridden"


class GateEvent(models.Model):
    """Gate telemetry: one row per failed requirement per attempt (a single bulk insert)."""

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="gate_events")
    stage = models.ForeignKey("stages.Stage", on_delete=models.CASCADE, related_name="+")
    criterion = models.ForeignKey(
        "stages.EntryCriterion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requirement = models.CharField(max_length=200)
    outcome = models.CharField(max_length=10, choices=GateOutcome.choices)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    source = models.CharField(max_length=10, choices=MoveSource.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["stage", "at"], name="gate_event_stage_at")]


class DealContact(models.Model):
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="contact_roles")
    person = models.ForeignKey("contacts.Person", on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=20, choices=ContactRole.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deal", "person", "role"], name="deal_contact_unique"),
        ]


class ChecklistTick(models.Model):
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="checklist_ticks")
    criterion = models.ForeignKey(
        "stages.EntryCriterion", on_delete=models.CASCADE, related_name="ticks"
    )
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deal", "criterion"], name="checklist_tick_unique"),
        ]


class FieldChange(models.Model):
    """Append-only record of edits to a deal's fields, for the timeline."""

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="field_changes")
    field = models.CharField(max_length=40)
    old_value = models.CharField(max_length=500, blank=True)
    new_value = models.CharField(max_length=500, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]


class StalledRule(models.TextChoices):
    IN_STAGE_TOO_LONG = "in_stage_too_long", "In stage too long"
    NO_RECENT_ACTIVITY = "no_recent_activity", "No recent activity"
    NO_NEXT_STEP = "no_next_step", "No next step scheduled"
    CLOSE_DATE_PASSED = "close_date_passed", "Close date passed"
    CLOSE_DATE_SLIPPING = "close_date_slipping", "Close date keeps slipping"


class StalledFlag(models.Model):
    """A stalled rule that currently fires for a deal. Rows are removed when the cause goes."""

    # Indexed by the (deal, rule) unique constraint: one index less to write per flag.
    # No database constraint: a flag is derived data that the job writes by the million
    # when a rule is first turned on, and a constraint checks each row at commit (an
    # index probe and a lock on its deal: a third of that run). Deleting a deal through
    # the ORM still deletes its flags, and the job clears any flag whose deal has gone.
    deal = models.ForeignKey(
        Deal,
        on_delete=models.CASCADE,
        related_name="stalled_flags",
        db_index=False,
        db_constraint=False,
    )
    rule = models.CharField(max_length=24, choices=StalledRule.choices)
    flagged_at = models.DateTimeField(default=timezone.now)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deal", "rule"], name="stalled_flag_unique"),
        ]


class Notification(models.Model):
    # Indexed by notification_unread (user, read_at): one index less to write per notice.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
    )
    deal = models.ForeignKey(
        Deal, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=30)
    text = models.CharField(max_length=300)
    dedupe_key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "dedupe_key"],
                condition=~Q(dedupe_key=""),
                name="notification_dedupe",
            ),
        ]


# ---------------------------------------------------------------------------------------
# The event log (deals/events.py): what each action did, for the follow-up work.
# ---------------------------------------------------------------------------------------


_uuid7_last = [0, 0]  # the last (millisecond, sequence) this process handed out
_uuid7_lock = threading.Lock()


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): ids sort by creation. Within one process
    and millisecond a 12-bit sequence keeps them in the order they were made (the events
    of one action, e.g. deal.moved before deal.won)."""
    with _uuid7_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _uuid7_last[0]:
            ms, seq = _uuid7_last[0], _uuid7_last[1] + 1
            if seq > 0xFFF:
                ms, seq = ms + 1, 0
        else:
            seq = 0
        _uuid7_last[:] = [ms, seq]
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0x2 << 62 | rand_b
    return uuid.UUID(int=value)


class EventSource(models.TextChoices):
    BOARD = "board", "Board"
    MENU = "menu", "Move menu"
    FORM = "form", "Web form"
    BULK = "bulk", "Bulk action"
    UNDO = "undo", "Undo"
    IMPORT = "import", "Import"
    API = "api", "API"
    AUTOMATION = "automation", "Automation"
    ADMIN = "admin", "Django admin"
    JOB = "job", "Background job"


class Event(models.Model):
    """One thing an action did, appended in the action's transaction (never edited).

    `payload` holds ids and changed field names (values only where the catalogue in
    deals/events.py says). `deal_id` is a plain column: the log outlives deleted deals.
    `handled_at` is bookkeeping, not content: set once every consumer has processed it.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=40)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    source = models.CharField(max_length=12, choices=EventSource.choices)
    deal_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Ids are time-ordered (uuid7): the primary key is the log's order.
            models.Index(fields=["deal_id", "at"], name="event_deal"),
            models.Index(
                fields=["at"], condition=Q(handled_at__isnull=True), name="event_unhandled"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id}"


class EventReceipt(models.Model):
    """Consumer `consumer` has processed `event`: written in the consumer's transaction,
    so each consumer's work for an event commits exactly once."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="receipts")
    consumer = models.CharField(max_length=40)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "consumer"], name="event_receipt_once")
        ]
