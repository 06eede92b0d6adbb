"""Automations under a killed worker: a run interrupted half-way is rolled back whole,
redelivered to the restarted worker and done once (one activity, one finished run).

Needs PostgreSQL and Redis like tests/security/test_faults.py, whose fixtures it uses:
a private redis-server, workers started and stopped by this test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from automations.models import Rule, RuleRun
from deals.models import Activity
from deals.services import move_deal
from tests.factories import DealFactory
from tests.security.processes import Worker, wait_for
from tests.security.test_faults import (  # noqa: F401 (fixtures)
    publish_to,
    raw_connection,
    real_services,
    redis,
    unsettled,
    workers,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def locks() -> Iterator[psycopg.Connection]:
    held = raw_connection()
    yield held
    held.close()  # even when the test fails: an open lock would block the database flush


def runs_waiting_for_the_rule() -> int:
    """Backends of the test database waiting for a row lock while locking a rule."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            ["%automations_rule%FOR NO KEY UPDATE%"],
        )
        return cursor.fetchone()[0]


def test_worker_killed_mid_run_redelivers_after_restart_and_acts_once(
    redis,  # noqa: F811
    publish_to,  # noqa: F811
    workers,  # noqa: F811
    locks,
    admin_user,
    rep,
    stages,
):
    rule = Rule.objects.create(
        name="Prepare",
        owner=admin_user,
        trigger={"kind": "stage_entered", "stage": stages["qualified"].pk},
        actions=[
            {
                "kind": "create_activity",
                "type": "task",
                "subject": "Prepare",
                "due_days": 1,
                "assignee": "owner",
                "note": "",
            }
        ],
    )
    first = Worker(redis.url)
    workers.append(first)
    first.start()
    publish_to(redis.url)
    deal = DealFactory(owner=rep, stage=stages["lead"])

    # Hold the rule's row: the run claims itself, then waits here for the rule's lock,
    # with its transaction open (NO KEY UPDATE, as the run takes it: new runs of the rule
    # are still written).
    locks.execute("BEGIN")
    locks.execute("SELECT id FROM automations_rule WHERE id = %s FOR NO KEY UPDATE", [rule.pk])
    move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    assert wait_for(lambda: runs_waiting_for_the_rule() == 1, seconds=60)

    first.stop(kill=True)  # kill -9 mid-run: no acknowledgement, transaction undone
    killed = time.monotonic()
    locks.execute("ROLLBACK")
    assert wait_for(lambda: runs_waiting_for_the_rule() == 0)
    run = RuleRun.objects.get(rule=rule)
    assert run.status == "pending"
    assert not Activity.objects.filter(deal=deal).exists()

    second = Worker(redis.url)
    workers.append(second)
    second.start()
    assert wait_for(lambda: RuleRun.objects.get(rule=rule).status == "done", seconds=60)
    assert wait_for(lambda: unsettled(redis) == 0, seconds=30)
    assert Activity.objects.filter(deal=deal, subject="Prepare").count() == 1
    assert RuleRun.objects.filter(rule=rule).count() == 1
    print(
        f"\nautomation run redelivered after a kill, done {time.monotonic() - killed:.1f} s later"
    )
