"""B8: automations — the time-based scan over every deal, and event-to-action latency.

Scan: three time-based rules (7 days before the expected close date; 14 days in stage
with an amount condition; an activity overdue), made a week old so the scan looks at
its whole catch-up window (8 due days each). The scan writes the due runs set-based
(`automations.services.scan_time_based`); it is timed three times inside one
transaction that is rolled back: the first pass writes a week's catch-up, the second
(at the same instant) must find none new, the third is the beat's next pass five
minutes later (it reads only what fell due since the last pass: the figure the 2 s
target is about). Runs are not executed (the rollback drops their hand-off), so the
figures are the scan alone.

Latency: a rule "entered stage X → create an activity"; a rep's deals are moved one by
one with `move_deal`, runs executed in-process after each commit (the zero-setup
default; with a worker the broker's pickup adds to it). Latency is the run's finish time
minus its event's time, from the database's own timestamps.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import stats
from bench.datagen import Dataset


class _Rollback(Exception):
    pass


def _rules(admin: Any, data: Dataset) -> list[Any]:
    from automations.models import Rule

    week_ago = timezone.now() - dt.timedelta(days=7)
    notify = [{"kind": "notify", "roles": ["owner"], "users": [], "text": "x", "email": False}]
    specs = [
        ({"kind": "close_date", "days": -7}, {}),
        (
            {"kind": "days_in_stage", "days": 14},
            {"match": "all", "items": [{"kind": "amount", "op": "gte", "value": "1000.00"}]},
        ),
        ({"kind": "activity_overdue"}, {}),
    ]
    return [
        Rule.objects.create(
            name=f"B8 {trigger['kind']}",
            owner=admin,
            pipeline_id=data.pipeline_id,
            trigger=trigger,
            conditions=conditions,
            actions=notify,
            created_at=week_ago,
        )
        for trigger, conditions in specs
    ]


def scan(admin: Any, data: Dataset) -> dict[str, Any]:
    from automations import services

    out: dict[str, Any] = {}
    # Both scans at one instant: at 1M deals some activities fall due between two scans
    # seconds apart, and finding those is the scan's job, not a repeat.
    now = timezone.now()
    try:
        with transaction.atomic():
            _rules(admin, data)
            # First: a week's catch-up (the rules have never been scanned); again: the same
            # instant, nothing new; later: the beat's next pass, five minutes on.
            passes = [("first", now), ("second", now), ("later", now + dt.timedelta(minutes=5))]
            for label, at in passes:
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    created = services.scan_time_based(now=at)
                    out[f"{label}_s"] = round(time.perf_counter() - started, 3)
                out[f"{label}_runs"] = created
                out[f"{label}_statements"] = len(queries)
            raise _Rollback
    except _Rollback:
        pass
    if out["second_runs"]:
        raise AssertionError(f"second scan wrote {out['second_runs']} runs again")
    return out


def latency(rep: Any, data: Dataset, *, runs: int) -> dict[str, Any]:
    from automations.models import Rule, RuleRun
    from deals.models import Deal, Event
    from deals.services import move_deal
    from pipeline_crm.celery import app

    target = data.open_stage_ids[1]
    rule = Rule.objects.create(
        name="B8 latency",
        owner=rep,  # acts as the rep on their own deals
        trigger={"kind": "stage_entered", "stage": target},
        actions=[
            {
                "kind": "create_activity",
                "type": "task",
                "subject": "B8",
                "due_days": 1,
                "assignee": "owner",
                "note": "",
            }
        ],
    )
    deals = list(
        Deal.objects.filter(owner=rep, stage_id=data.open_stage_ids[0]).select_related("stage")[
            :runs
        ]
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    wall = []
    try:
        for deal in deals:
            started = time.perf_counter()
            move_deal(
                deal,
                deal.stage.__class__.objects.get(pk=target),
                by=rep,
                expected_version=deal.version,
                source="board",
            )
            wall.append(time.perf_counter() - started)
    finally:
        app.conf.task_always_eager = eager
    finished = dict(RuleRun.objects.filter(rule=rule).values_list("event_id", "finished_at"))
    at = dict(Event.objects.filter(pk__in=list(finished)).values_list("pk", "at"))
    gaps = [(finished[pk] - at[pk]).total_seconds() for pk in finished if finished[pk]]
    done = RuleRun.objects.filter(rule=rule, status="done").count()
    rule.delete()
    return {
        "moves": len(deals),
        "runs_done": done,
        "event_to_action": stats.summary(gaps) if gaps else {},
        "move_with_automation_wall": stats.summary(wall) if wall else {},
        "mode": "in-process (no broker)",
    }


def measure(admin: Any, rep: Any, data: Dataset, *, runs: int) -> dict[str, Any]:
    return {"scan": scan(admin, data), "latency": latency(rep, data, runs=runs)}
