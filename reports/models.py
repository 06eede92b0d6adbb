"""Forecast tables: derived data, rewritten set-based by `reports.forecasts`.

Nothing here is edited by hand; every row can be recomputed from deals and their
history, so foreign keys cascade (or go null) instead of protecting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models

from accounts import policy

if TYPE_CHECKING:
    from accounts.models import User


def _summarised(to: str, *, null: bool = False) -> models.ForeignKey:
    """A summary row's link to what it summarises: no database constraint or index of
    its own (the summaries' indexes lead with the columns their panels read), no reverse
    accessor, and left alone when the target goes (the catch-up removes the row)."""
    return models.ForeignKey(
        to,
        null=null,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )


class PeriodKind(models.TextChoices):
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"


def _money() -> models.DecimalField:
    # Sums over a million deals of up to 12 integer digits each need more than 14 digits.
    return models.DecimalField(max_digits=20, decimal_places=2, default=0)


class ForecastFigures(models.Model):
    """One pipeline x owner x period x currency: the three forecasts and closed-won.

    Period: the month or quarter of the expected close date for open deals, of the
    actual close (`closed_at`, local date) for won deals. Open deals in stages whose
    forecast category is "omitted", or without an expected close date, are left out.
    """

    pipeline = models.ForeignKey("stages.Pipeline", on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    period_kind = models.CharField(max_length=7, choices=PeriodKind.choices)
    period_start = models.DateField()
    currency = models.CharField(max_length=3)
    open_deals = models.PositiveIntegerField(default=0)
    weighted = _money()
    learned = _money()
    commit = _money()
    best_case = _money()
    pipeline_amount = _money()
    closed_won = _money()
    won_deals = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()

    class Meta:
        abstract = True


class ForecastQuerySet(models.QuerySet["Forecast"]):
    def visible_to(self, user: User) -> ForecastQuerySet:
        """Rows of the owners whose deals `user` may see: the deals' own rule, by owner."""
        return policy.forecast_rows(user, self, own_only=False)

    def numbers_for(self, user: User) -> ForecastQuerySet:
        """What the forecast page counts for `user`: `visible_to`, and for a rep only their
        own rows (DESIGN: a rep's dashboards show their own numbers, not teammates')."""
        return policy.forecast_rows(user, self)


class Forecast(ForecastFigures):
    """The current forecast; recomputed hourly, nightly, and per owner after a move."""

    objects = ForecastQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "owner", "period_kind", "period_start", "currency"],
                name="forecast_unique_cell",
            ),
        ]
        indexes = [
            models.Index(fields=["period_kind", "period_start"], name="forecast_period"),
            models.Index(fields=["owner", "period_kind"], name="forecast_owner"),
        ]


class ForecastScratch(ForecastFigures):
    """Cells of one recompute before they are compared with `Forecast`.

    A temporary table created and dropped by each recompute (`common.sql.scratch_table`),
    never by migrations. Its relations are plain columns to Django: deleting a user, team
    or pipeline must not look for rows in a table that exists only during a recompute.
    """

    pipeline = models.ForeignKey(
        "stages.Pipeline", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )

    class Meta:
        managed = False
        db_table = "reports_forecast_scratch"


class ForecastSnapshot(ForecastFigures):
    """The forecast as it stood in the week starting `taken_on` (a Monday).

    Comparing a period's snapshots with what finally closed in it measures accuracy.
    One snapshot per week: taking it again the same week replaces it.
    """

    taken_on = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "taken_on",
                    "pipeline",
                    "owner",
                    "period_kind",
                    "period_start",
                    "currency",
                ],
                name="forecast_snapshot_unique_cell",
            ),
        ]
        indexes = [
            models.Index(
                fields=["period_kind", "period_start", "taken_on"], name="snapshot_period"
            )
        ]


class StageWinRate(models.Model):
    """A stage's learned win rate from this instance's own closed deals.

    closed: deals that entered the stage at some point (a StageChange into it) and are
    now closed, won or lost, with `closed_at` in the history window (12 months); won:
    those of them that were won. The learned rate shrinks the observed rate toward the
    configured probability p, as if k extra deals had closed at exactly p:

        learned = (won + k*p) / (closed + k)        (k = FORECAST_SHRINKAGE_K, 10)

    With no history it is p; with ten closed deals it is halfway between p and the
    observed rate; with hundreds it is nearly the observed rate.
    """

    stage = models.OneToOneField(
        "stages.Stage", on_delete=models.CASCADE, primary_key=True, related_name="win_rate"
    )
    closed = models.PositiveIntegerField(default=0)
    won = models.PositiveIntegerField(default=0)
    configured = models.PositiveSmallIntegerField(help_text="Stage probability (%) when computed")
    learned = models.DecimalField(max_digits=7, decimal_places=6)
    computed_at = models.DateTimeField()

    @property
    def learned_percent(self) -> float:
        return float(self.learned) * 100

    @property
    def observed_percent(self) -> float | None:
        return self.won * 100 / self.closed if self.closed else None


class FromHistory(models.Model):
    """A row derived from one history row (`change`) of `deal` about `stage`.

    No database constraints: checking three foreign keys per row tripled the time of a
    first refresh. History is never deleted and protects its deals and stages, except
    when an import's undo deletes the deals it created. It marks them
    (`deals.RewrittenHistory`) in the same transaction, and the summaries' catch-up
    removes their rows, before any panel reads them: a stay's row must leave through
    it, because `StageDay` counts it too (so no cascade here: Django's delete would
    remove the row and leave the count).
    """

    change = models.OneToOneField(
        "deals.StageChange",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        primary_key=True,
        related_name="+",
    )
    deal = _summarised("deals.Deal")
    stage = _summarised("stages.Stage")

    class Meta:
        abstract = True


class StageStay(FromHistory):
    """A completed stay in a stage: the deal entered `stage` at its previous change and
    left it at `change` (the dashboard's time in stage and cumulative flow).

    Derived from the append-only history by `reports.dashboard.stays.refresh`, which
    adds the stays that ended before `StageStayMark.covered_until`; the dashboard reads
    these and derives any later ones from the history itself, so its figures never wait
    for the job. `entered_at` is null only for a change with no earlier one (bad data),
    exactly as the live derivation leaves it.
    """

    entered_at = models.DateTimeField(null=True)
    exited_at = models.DateTimeField()
    # exit - entry in days, worked out once as the dashboard would (`history.days_between`):
    # doing it for every stay of a period took as long as the percentiles themselves.
    days = models.FloatField(null=True)

    class Meta:
        indexes = [
            # Holds every column the admin's dashboard reads, so PostgreSQL answers a
            # period from the index alone (an index-only scan) instead of the table.
            models.Index(
                fields=["exited_at", "stage", "entered_at", "days"], name="stage_stay_exited"
            ),
            # A manager's dashboard probes by deal (visible_to), then by period.
            models.Index(fields=["deal", "exited_at"], name="stage_stay_deal_exited"),
            # The stays `StageDay` does not count, read one by one by the admin's flow:
            # those in won or lost stages (few: reopened deals) and those that ended
            # before they began (bad clocks; a partial index holds only them).
            models.Index(fields=["stage", "exited_at"], name="stage_stay_stage_exited"),
            models.Index(
                fields=["exited_at"],
                condition=models.Q(entered_at__gt=models.F("exited_at")),
                name="stage_stay_inverted",
            ),
            # The stays of one length bucket (`StageLength`) of a stage, read from the
            # index alone by the admin's time in stage.
            models.Index(
                fields=["stage", "days", "exited_at", "entered_at"], name="stage_stay_length"
            ),
        ]


class StageEntry(FromHistory):
    """A deal's entry into a stage (its `change`), for the dashboard's funnel and conversion.

    `previous_at`: when the deal last entered the same stage before (null if never), so an
    entry is a deal's first into the stage since a period began when it is before that.
    `went_on`: a later change of the deal entered a later open stage of the pipeline, or a
    won stage (DESIGN: stage conversion). History is append-only, so it only ever turns
    from false to true. Which stage is "later" depends on the stages' order and kinds:
    the mark keeps the `stages_key` it was worked out with, and the dashboard ignores
    these rows when the stages have changed since.

    Kept like `StageStay` by `reports.dashboard.stays.refresh`, for changes before
    `StageStayMark.covered_until`; plain columns for the same reasons.
    """

    pipeline = _summarised("stages.Pipeline")
    # The change's from-stage (null for a deal's first change): the movement panel's
    # direction, counted per day in `StageEntryDay`.
    from_stage = _summarised("stages.Stage", null=True)
    seq = models.PositiveIntegerField()
    entered_at = models.DateTimeField()
    previous_at = models.DateTimeField(null=True)
    went_on = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # Holds every column the admin's funnel reads (index-only scan), as for stays.
            models.Index(
                fields=["entered_at", "pipeline", "stage", "previous_at", "went_on", "deal"],
                name="stage_entry_entered",
            ),
            # A manager's dashboard probes by deal (visible_to), then by period; with the
            # stages and pipeline, its movement is read from the index alone.
            models.Index(
                fields=["deal", "entered_at", "pipeline", "stage", "from_stage"],
                name="stage_entry_deal_entered",
            ),
        ]


class StageDay(models.Model):
    """Per stage and day (in `StageStayMark.days_zone`): how many stays in `StageStay`
    began (`entered`) and ended (`exited`) that day — the admin's cumulative flow over
    years without reading every stay (`history.cumulative_flow`).

    Counts only stays with an entry no later than their exit (others, which only bad
    clocks make, are read from `StageStay` itself). Kept by `reports.dashboard.stays` in
    the same statements' transaction as every `StageStay` insert and delete, so it
    always counts exactly the stored stays.
    """

    stage = _summarised("stages.Stage")
    day = models.DateField()
    entered = models.IntegerField(default=0)
    exited = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["stage", "day"], name="stage_day_unique"),
        ]


class StageLength(models.Model):
    """Per stage, day (in `StageStayMark.days_zone`) and length bucket (`length_bucket`):
    how many stays in `StageStay` ended that day with a length in that bucket — the
    admin's time in stage over years without sorting every stay
    (`history.time_in_stage`): the counts say which bucket holds a median or 75th
    percentile, and only that bucket's stays are read. Counts the same stays as
    `StageDay` (entry no later than exit), kept in the same statements' transaction.
    """

    stage = _summarised("stages.Stage")
    day = models.DateField()
    bucket = models.IntegerField()
    stays = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["stage", "day", "bucket"], name="stage_length_unique"),
        ]


class StageEntryDay(models.Model):
    """Per pipeline, day (in `StageStayMark.days_zone`), stage and from-stage: the
    entries in `StageEntry` — the admin's funnel and movement over years without reading
    every entry (`history.funnel`, `queries.movement`).

    Each entry counts on the day it was made (`entered`, and `went_on` if it went on),
    and a re-entry (one with `previous_at`) also on the day of that previous entry
    (`reentered`, `reentered_went_on`): the entries of a period that are not a deal's
    first into the stage since the period began are the re-entries whose previous entry
    is in the period too, so for a period running to the mark or later they are the
    re-entries counted on its days. `from_stage` 0: a deal's first change. Kept by
    `reports.dashboard.stays` in the same statements' transaction as every `StageEntry`
    insert, delete and `went_on` update, so it always counts exactly the stored entries.
    """

    pipeline = _summarised("stages.Pipeline")
    day = models.DateField()
    stage = _summarised("stages.Stage")
    from_stage = models.IntegerField()
    entered = models.IntegerField(default=0)
    went_on = models.IntegerField(default=0)
    reentered = models.IntegerField(default=0)
    reentered_went_on = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "day", "stage", "from_stage"], name="stage_entry_day_unique"
            ),
        ]


class CloseMonthStage(models.Model):
    """Each deal's stage at the start of the month of its expected close date (local
    midnight of the 1st, in `StageStayMark.days_zone`): the `to_stage` of its last change
    before then, null if none. The forecast backtest (`reports.dashboard.backtest`) reads
    it instead of looking up every candidate's history.

    Depends on the deal's history before that instant only, so a row is final once the
    instant is before `StageStayMark.covered_until`; `reports.dashboard.stays.refresh`
    adds the rows of those months (and replaces a row whose deal's close month changed)
    in the same transaction as the mark. A deal whose history is rewritten
    (`deals.RewrittenHistory`) loses its row in the catch-up, and the backtest reads no
    row while any deal is still marked. Where no row matches (another month, another time
    zone, a new deal) the backtest looks the stage up in the history itself.
    """

    deal = models.OneToOneField(
        "deals.Deal",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        primary_key=True,
        related_name="+",
    )
    month = models.DateField()
    stage = _summarised("stages.Stage", null=True)


class StageStayMark(models.Model):
    """How far `StageStay` and `StageEntry` are complete: every stay that ended and every
    entry made before `covered_until` is in them. One row (pk 1), written by the refresh in
    the same transaction as its rows. `stages_key`: the stages (order, kinds, pipelines)
    that `StageEntry.went_on` was worked out with (see `stays.stages_key`)."""

    covered_until = models.DateTimeField()
    stages_key = models.CharField(max_length=64, blank=True, default="")
    # The time zone `StageDay` cut days in; another zone's days are not read.
    days_zone = models.CharField(max_length=64, blank=True, default="")
