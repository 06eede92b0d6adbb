"""Stalled deals: the five rules of DESIGN.md, computed set-based, and snoozing.

Each rule is a queryset of the open, unsnoozed deals for which it fires. The job joins
the five with UNION ALL into one set of (deal, rule) rows and compares it with the stored
flags in one pass: flags whose cause went away (activity logged, stage changed, close
date moved, deal closed or snoozed) are deleted, new ones inserted and announced. On
PostgreSQL that is a single statement; elsewhere a DELETE, an INSERT and the notices.
Nothing loops over deals in Python, and a second run finds nothing to add or delete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import connection, transaction
from django.db.models import Case, CharField, F, Func, Q, QuerySet, Value, When
from django.utils import timezone

from accounts import policy
from common.errors import NotVisible, RuleFailed
from common.sql import DaysBefore, hold_job_lock
from deals import events
from deals.models import (
    Deal,
    EventSource,
    FieldChange,
    Notification,
    QuietDeal,
    StalledFlag,
    StalledRule,
)
from stages.models import StageKind

if TYPE_CHECKING:
    from accounts.models import User

JOB_LOCK = "deals.stalled"
MAX_SNOOZE_DAYS = 90


class SnoozeError(RuleFailed):
    """A snooze request that breaks a rule (422); the message is fit to show the user."""


def candidates(today: date) -> QuerySet[Deal]:
    """Deals the rules look at: open, and not snoozed (a snooze lasts through its date)."""
    return Deal.objects.filter(stage__kind=StageKind.OPEN).exclude(snoozed_until__gte=today)


def applies(rule: str, now: datetime) -> Q:
    """When `rule` fires at `now` for a deal the rules look at (`candidates`): a condition
    on the deal's row and its stage. The activity rules read the activity times kept on
    the deal (`Deal.last_activity_at`, `Deal.next_activity`), not the activities."""
    today = timezone.localdate(now)
    match rule:
        case StalledRule.IN_STAGE_TOO_LONG:
            # `Deal.days_in_stage` counts whole days, so "more than R days" starts at R + 1.
            entered_before = DaysBefore(Value(now), F("stage__rotting_days") + 1)
            return Q(stage__rotting_days__gt=0, stage_entered_at__lte=entered_before)
        case StalledRule.NO_RECENT_ACTIVITY:
            cutoff = now - timedelta(days=settings.STALLED_NO_ACTIVITY_DAYS)
            # A deal younger than the window has not gone quiet yet.
            return Q(created_at__lte=cutoff) & (
                Q(last_activity_at__isnull=True) | Q(last_activity_at__lte=cutoff)
            )
        case StalledRule.NO_NEXT_STEP:
            # Any open activity is a next step, overdue or not: it is what the card shows
            # as "Next", and being late is the overdue mark's and the reminder's job.
            # Counting only future ones flagged "no next step" beside "Next: … Dec 4".
            # A deal created today has the rest of the day to get one.
            start_of_today = timezone.make_aware(datetime.combine(today, time.min))
            return Q(created_at__lt=start_of_today, next_activity__isnull=True)
        case StalledRule.CLOSE_DATE_PASSED:
            return Q(expected_close_date__lt=today)
        case StalledRule.CLOSE_DATE_SLIPPING:
            return Q(close_date_pushes__gte=settings.STALLED_SLIPPING_PUSHES)
    raise ValueError(f"unknown stalled rule {rule!r}")


def firing(rule: str, now: datetime) -> QuerySet[Deal]:
    """The deals for which `rule` fires at `now`, as one queryset (no rows are loaded)."""
    return candidates(timezone.localdate(now)).filter(applies(rule, now))


@dataclass
class RefreshResult:
    """What one run changed: flags added and cleared per rule, notifications created."""

    added: dict[str, int] = field(default_factory=dict)
    cleared: dict[str, int] = field(default_factory=dict)
    notified: int = 0

    @classmethod
    def nothing(cls) -> RefreshResult:
        """A result with every rule at zero, for a run to count into."""
        return cls(dict.fromkeys(StalledRule.values, 0), dict.fromkeys(StalledRule.values, 0))

    @property
    def changed(self) -> int:
        return sum(self.added.values()) + sum(self.cleared.values()) + self.notified


def _firing_rows(now: datetime, deal_ids: Collection[int] | None) -> tuple[str, tuple[Any, ...]]:
    """SQL for one row (f_deal, f_owner, f_title, f_rule) per rule that fires for a deal.

    PostgreSQL reads each candidate deal once: the names of the rules that fire for it
    as an array, unnested into rows. Elsewhere the five rule querysets joined with
    UNION ALL (five scans of the deals, fine at the sizes SQLite serves).
    """
    if connection.vendor != "postgresql":
        parts = [_scoped(firing(rule, now), deal_ids) for rule in StalledRule.values]
        return _union(
            deal.values(**_FIRING_ROW, f_rule=Value(rule, output_field=CharField()))
            for deal, rule in zip(parts, StalledRule.values, strict=True)
        )
    names = [Case(When(applies(rule, now), then=Value(rule))) for rule in StalledRule.values]
    deals = _scoped(candidates(timezone.localdate(now)), deal_ids)
    per_deal, params = (
        deals.order_by().values(**_FIRING_ROW, f_rules=_Holding(*names)).query.sql_with_params()
    )
    return (
        "SELECT d.f_deal, d.f_owner, d.f_title, r.f_rule "
        f"FROM ({per_deal}) d CROSS JOIN LATERAL unnest(d.f_rules) AS r(f_rule)",
        params,
    )


_FIRING_ROW = {"f_deal": F("pk"), "f_owner": F("owner_id"), "f_title": F("title")}


class _Holding(Func):
    """PostgreSQL: an array of the values given that are not NULL (here, the names of the
    rules whose condition holds)."""

    template = "array_remove(ARRAY[%(expressions)s]::text[], NULL)"
    output_field = ArrayField(CharField())


def _scoped(deals: QuerySet[Deal], deal_ids: Collection[int] | None) -> QuerySet[Deal]:
    return deals if deal_ids is None else deals.filter(pk__in=deal_ids)


def _union(parts: Iterable[QuerySet[Any]]) -> tuple[str, tuple[Any, ...]]:
    first, *rest = (part.order_by() for part in parts)
    return first.union(*rest, all=True).order_by().query.sql_with_params()


def refresh_flags(
    *, now: datetime | None = None, deal_ids: Collection[int] | None = None
) -> RefreshResult:
    """Bring the stored flags in line with the rules, then notify owners of new flags.

    The rules are evaluated once, as one set of (deal, rule) rows, and compared with the
    stored flags in one pass: flags whose cause went away are deleted, new ones inserted,
    and each new flag (or one left unannounced) gets one notice for the deal's owner. A
    fixed number of statements whatever the number of deals; `deal_ids` narrows the same
    statements to a few deals (after a move or an unsnooze). Runs in one transaction under
    a job lock, so concurrent runs queue instead of racing, and a second run changes
    nothing.
    """
    now = now or timezone.now()
    if deal_ids is not None and not deal_ids:
        return RefreshResult.nothing()
    with transaction.atomic():
        hold_job_lock(JOB_LOCK)
        if connection.vendor == "postgresql":
            return _sync_in_one_statement(now, deal_ids)
        return _sync_step_by_step(now, deal_ids)


def _sync_in_one_statement(now: datetime, deal_ids: Collection[int] | None) -> RefreshResult:
    """PostgreSQL: the whole refresh as one statement with data-modifying CTEs.

    `diff` is a full join of the firing rows with the stored flags, keeping only what must
    change: firing without a flag (insert, notify), a flag no longer firing (delete), a
    flag still firing but never announced (notify, mark). Notices are made from those rows
    directly, so nothing re-reads the flags just written, and new flags are written
    already marked notified. A full join can only be a hash or merge join: the planner
    cannot pick a nested loop that re-reads the flags for every firing row (quadratic,
    and tempting when the flags table was just emptied and its statistics say "no rows").
    New flags are inserted without ON CONFLICT: only this job writes flags, under its lock,
    so `diff` (read after the lock was taken) knows every flag that exists, and a plain
    insert skips a probe of the unique index per flag.
    """
    from deals.notifications import notices_sql

    firing_sql, firing_params = _firing_rows(now, deal_ids)
    flags = connection.ops.quote_name(StalledFlag._meta.db_table)
    notices = connection.ops.quote_name(Notification._meta.db_table)
    quiet = connection.ops.quote_name(QuietDeal._meta.db_table)
    deals = connection.ops.quote_name(Deal._meta.db_table)
    scope, scope_params = ("", [])
    if deal_ids is not None:
        scope, scope_params = "WHERE deal_id = ANY(%s)", [list(deal_ids)]
    notices_select, notice_params = notices_sql(
        f"SELECT deal_id, rule, flagged_at, title, owner_id AS owner FROM diff WHERE fires "
        f"AND NOT EXISTS (SELECT 1 FROM {quiet} q WHERE q.deal_id = diff.deal_id)",
        [],
        now=now,
    )
    statement = f"""
        WITH firing AS ({firing_sql}),
        diff AS MATERIALIZED (
            SELECT f.id AS flag_id,
                   coalesce(n.f_deal, f.deal_id) AS deal_id,
                   coalesce(n.f_rule, f.rule) AS rule,
                   n.f_owner AS owner_id,
                   n.f_title AS title,
                   n.f_deal IS NOT NULL AS fires,
                   coalesce(f.flagged_at, %s) AS flagged_at
            FROM firing n
            FULL JOIN (SELECT * FROM {flags} {scope}) f
                ON f.deal_id = n.f_deal AND f.rule = n.f_rule
            WHERE n.f_deal IS NULL OR f.id IS NULL OR f.notified_at IS NULL
        ),
        cleared AS (
            DELETE FROM {flags} WHERE id IN (SELECT flag_id FROM diff WHERE NOT fires)
            RETURNING rule
        ),
        added AS (
            INSERT INTO {flags} (deal_id, rule, flagged_at, notified_at)
            SELECT deal_id, rule, flagged_at, %s FROM diff WHERE flag_id IS NULL
            RETURNING rule
        ),
        marked AS (
            UPDATE {flags} SET notified_at = %s
            WHERE id IN (SELECT flag_id FROM diff WHERE fires AND flag_id IS NOT NULL)
        ),
        notified AS (
            INSERT INTO {notices} (user_id, deal_id, kind, text, dedupe_key, created_at)
            {notices_select}
            ON CONFLICT DO NOTHING
            RETURNING 1
        ),
        stalled_events AS ({events.insert_sql(STALLED_EVENT_ROWS_PG)}),
        unstalled_events AS ({events.insert_sql(UNSTALLED_EVENT_ROWS_PG.format(deals=deals))}),
        -- Every CTE reads the snapshot taken before this statement: the notices above
        -- still see the rows deleted here.
        heard AS (DELETE FROM {quiet} {scope})
        SELECT 'added', rule, count(*) FROM added GROUP BY rule
        UNION ALL SELECT 'cleared', rule, count(*) FROM cleared GROUP BY rule
        UNION ALL SELECT 'notified', '', count(*) FROM notified
        UNION ALL SELECT %s, id::text, deal_id FROM stalled_events
        UNION ALL SELECT %s, id::text, deal_id FROM unstalled_events
    """
    params = [
        *firing_params,
        now,
        *scope_params,
        now,
        now,
        *notice_params,
        *(STALLED, now, EventSource.JOB),
        *(UNSTALLED, now, EventSource.JOB),
        *scope_params,
        STALLED,
        UNSTALLED,
    ]
    result = RefreshResult.nothing()
    published: dict[str, list[tuple[Any, int]]] = {STALLED: [], UNSTALLED: []}
    with connection.cursor() as cursor:
        # Room for the hash join of every stored flag with every firing row (~100 MB a
        # million flags) without spilling to disk; it lasts until the transaction ends.
        cursor.execute("SET LOCAL work_mem = '128MB'")
        cursor.execute(statement, params)
        for change, rule, count in cursor.fetchall():
            if change in published:
                published[change].append((rule, count))  # an event's id and its deal
            elif change == "notified":
                result.notified = count
            else:
                getattr(result, change)[rule] = count
    for name, rows in published.items():
        events.published(name, rows)
    return result


STALLED = "deal.stalled"
UNSTALLED = "deal.unstalled"


def _rule_names(column: str) -> str:
    """SQL: the rule names of a group's rows as a JSON array in name order. One
    conditional aggregate per rule, as an ordered jsonb_agg would sort every group (the
    first run makes most deals a group)."""
    picks = ", ".join(
        f"max(CASE WHEN {column} = '{rule}' THEN {column} END)"
        for rule in sorted(StalledRule.values)
    )
    return f"to_jsonb(array_remove(ARRAY[{picks}]::text[], NULL))"


# One event per deal and kind, with the rule keys that started (stopped) firing: rows of
# the refresh's `diff` (PostgreSQL) with columns deal_id and payload, for events.insert_sql.
STALLED_EVENT_ROWS_PG = f"""
    SELECT deal_id, jsonb_build_object(
        'deal_id', deal_id, 'owner_id', max(owner_id), 'rules', {_rule_names("rule")}
    ) AS payload
    FROM diff WHERE flag_id IS NULL GROUP BY deal_id
"""
UNSTALLED_EVENT_ROWS_PG = f"""
    SELECT diff.deal_id, jsonb_build_object(
        'deal_id', diff.deal_id, 'owner_id', d.owner_id, 'rules', {_rule_names("diff.rule")}
    ) AS payload
    FROM diff JOIN {{deals}} d ON d.id = diff.deal_id
    WHERE NOT diff.fires GROUP BY diff.deal_id, d.owner_id
"""


def _sync_step_by_step(now: datetime, deal_ids: Collection[int] | None) -> RefreshResult:
    """Other databases (SQLite): the same comparison as a DELETE and an INSERT, then the
    notices of every flag not yet announced (`deals.notifications.notify_new_flags`)."""
    from deals.notifications import notify_new_flags

    firing_sql, firing_params = _firing_rows(now, deal_ids)
    flags = connection.ops.quote_name(StalledFlag._meta.db_table)
    scope, scope_params = "", []
    if deal_ids is not None:
        scope = f"AND deal_id IN ({', '.join(['%s'] * len(deal_ids))})"
        scope_params = list(deal_ids)
    deals = connection.ops.quote_name(Deal._meta.db_table)
    result = RefreshResult.nothing()
    with connection.cursor() as cursor:
        # deal.unstalled for the flags about to go, deal.stalled for those about to come:
        # one INSERT … SELECT each, before the flags change.
        cursor.execute(
            f"WITH firing AS ({firing_sql}) "
            + events.insert_sql(
                _event_rows_sqlite(
                    f"SELECT deal_id, rule FROM {flags} "
                    f"WHERE (deal_id, rule) NOT IN (SELECT f_deal, f_rule FROM firing) {scope}",
                    deals,
                )
            ),
            [*firing_params, UNSTALLED, now, EventSource.JOB, *scope_params],
        )
        events.published(UNSTALLED, cursor.fetchall())
        cursor.execute(
            f"WITH firing AS ({firing_sql}) "
            + events.insert_sql(
                _event_rows_sqlite(
                    f"SELECT f_deal AS deal_id, f_rule AS rule FROM firing "
                    f"WHERE (f_deal, f_rule) NOT IN (SELECT deal_id, rule FROM {flags})",
                    deals,
                )
            ),
            [*firing_params, STALLED, now, EventSource.JOB],
        )
        events.published(STALLED, cursor.fetchall())
        cursor.execute(
            f"WITH firing AS ({firing_sql}) DELETE FROM {flags} "
            f"WHERE (deal_id, rule) NOT IN (SELECT f_deal, f_rule FROM firing) {scope} "
            "RETURNING rule",
            [*firing_params, *scope_params],
        )
        result.cleared.update(Counter(rule for (rule,) in cursor.fetchall()))
        cursor.execute(
            f"WITH firing AS ({firing_sql}) INSERT INTO {flags} (deal_id, rule, flagged_at) "
            f"SELECT f_deal, f_rule, %s FROM firing "
            f"WHERE (f_deal, f_rule) NOT IN (SELECT deal_id, rule FROM {flags}) "
            "RETURNING rule",
            [*firing_params, now],
        )
        result.added.update(Counter(rule for (rule,) in cursor.fetchall()))
    result.notified = notify_new_flags(now=now, deal_ids=deal_ids)
    QuietDeal.objects.filter(**({} if deal_ids is None else {"deal_id__in": deal_ids})).delete()
    return result


def _event_rows_sqlite(changes_sql: str, deals: str) -> str:
    """Rows (deal_id, payload) of one event per deal of `changes_sql` (deal_id, rule)."""
    return f"""
        SELECT c.deal_id, json_object(
            'deal_id', c.deal_id, 'owner_id', d.owner_id, 'rules', json_group_array(c.rule)
        ) AS payload
        FROM (SELECT * FROM ({changes_sql}) ORDER BY deal_id, rule) c
        JOIN {deals} d ON d.id = c.deal_id
        GROUP BY c.deal_id, d.owner_id
    """


class SnoozeNotAllowed(NotVisible):
    """The deal does not exist or `by` may not edit it (answered as 404)."""


def _editable(deal_id: int, by: User) -> Deal:
    # Lock only the deal row: the permission joins may reach the nullable side of a join.
    lock = {"of": ("self",)} if connection.features.has_select_for_update_of else {}
    try:
        return policy.changeable_deals(by).select_for_update(**lock).get(pk=deal_id)
    except Deal.DoesNotExist:
        raise SnoozeNotAllowed("Deal not found.") from None


def snooze_deal(deal: Deal, *, by: User, until: date, reason: str) -> Deal:
    """Silence a deal's stalled flags through `until` (inclusive), with a written reason.

    Only someone who may edit the deal may snooze it. The date must be after today and
    at most MAX_SNOOZE_DAYS ahead; the reason is required. The deal's flags go at once
    (a snoozed deal is not flagged) and the snooze is recorded on the deal's timeline.
    The version is left alone: a snooze is not an edit of the deal's content, and cards
    already on screen must stay movable.
    """
    reason = reason.strip()
    today = timezone.localdate()
    if not reason:
        raise SnoozeError("Say why the deal is snoozed.")
    if until <= today:
        raise SnoozeError("Snooze until a date after today.")
    if until > today + timedelta(days=MAX_SNOOZE_DAYS):
        raise SnoozeError(f"Snooze for at most {MAX_SNOOZE_DAYS} days.")
    with transaction.atomic():
        locked = _editable(deal.pk, by)
        old = f"{locked.snoozed_until or ''} {locked.snooze_reason}".strip()
        locked.snoozed_until = until
        locked.snooze_reason = reason[:200]
        locked.save(update_fields=["snoozed_until", "snooze_reason", "updated_at"])
        StalledFlag.objects.filter(deal=locked).delete()
        FieldChange.objects.create(
            deal=locked,
            field="snoozed_until",
            old_value=old[:500],
            new_value=f"{until.isoformat()} ({locked.snooze_reason})"[:500],
            by=by,
        )
        events.publish(
            events.event("deal.snoozed", by=by, source=EventSource.FORM, deal=locked, until=until)
        )
    return locked


def unsnooze_deal(deal: Deal, *, by: User) -> Deal:
    """End a snooze early. The rules run again for the deal right after commit."""
    with transaction.atomic():
        locked = _editable(deal.pk, by)
        if locked.snoozed_until is None:
            return locked
        old = f"{locked.snoozed_until} {locked.snooze_reason}".strip()
        locked.snoozed_until = None
        locked.snooze_reason = ""
        locked.save(update_fields=["snoozed_until", "snooze_reason", "updated_at"])
        FieldChange.objects.create(
            deal=locked, field="snoozed_until", old_value=old[:500], new_value="", by=by
        )
        events.publish(events.event("deal.unsnoozed", by=by, source=EventSource.FORM, deal=locked))
    return locked
