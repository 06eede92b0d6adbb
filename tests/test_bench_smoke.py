"""The benchmark's own code works: data generation, integrity checks, one measurement.

A tiny size, no timing assertions (speed is reported by `make bench`, never asserted).
The generator speaks PostgreSQL (generate_series, setseed), so these run there only.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from accounts.models import User
from bench import b0_floors, b1_board, b2_move, b6_api, b8_automations, datagen, integrity
from deals.activities import activity_times
from deals.models import Deal, StageChange
from stages.models import StageKind

pytestmark = pytest.mark.postgres

SIZE = 150


@pytest.fixture
def data(db) -> datagen.Dataset:
    if connection.vendor != "postgresql":
        pytest.skip(
            f"the bench generator needs PostgreSQL, not {connection.vendor}; "
            "run with DATABASE_URL=postgres://..."
        )
    return datagen.generate(SIZE, history=4)


def test_generator_fills_every_stage_with_consistent_history(data):
    assert Deal.objects.count() == SIZE
    kinds = set(Deal.objects.values_list("stage__kind", flat=True))
    assert kinds == {StageKind.OPEN, StageKind.WON, StageKind.LOST}
    assert StageChange.objects.count() == data.rows["deals_stagechange"]
    assert integrity.global_errors() == dict.fromkeys(integrity.GLOBAL_CHECKS, 0)


def test_generator_writes_each_deal_with_its_activity_times(data):
    """As the activity services keep them: recounting changes nothing."""
    fields = ("pk", "last_activity_at", "next_activity_id")
    written = list(Deal.objects.order_by("pk").values_list(*fields))
    Deal.objects.update(**activity_times())
    assert list(Deal.objects.order_by("pk").values_list(*fields)) == written
    assert all(last for _pk, last, _next in written)
    assert any(upcoming for _pk, _last, upcoming in written)


def test_generator_is_repeatable_with_the_same_seed(data):
    first = list(Deal.objects.order_by("id").values_list("stage_id", "version", "amount"))
    datagen.generate(SIZE, history=4)
    again = list(Deal.objects.order_by("id").values_list("stage_id", "version", "amount"))
    # Ids restart, so the second run must produce the very same rows.
    assert first == again


def test_integrity_check_reports_a_lost_history_row(data):
    deal = Deal.objects.filter(version__gte=2).first()
    StageChange.objects.filter(deal=deal, seq=1).delete()

    errors = integrity.global_errors()

    assert errors["version_not_history_count"] == 1
    assert errors["seq_not_contiguous"] == 1


def test_board_measurement_counts_queries_and_replays_them(data):
    admin = User.objects.get(pk=data.admin_id)

    result = b1_board.measure(admin, connection.connection, runs=2)

    assert result["queries"] > 0
    assert result["html_bytes"] > 0
    assert result["sql_floor_p50_ms"] > 0


def test_moves_driven_by_the_bench_pass_the_integrity_check(data):
    first_open = Deal.objects.filter(stage_id__in=data.open_stage_ids).order_by("id").first()
    rep = first_open.owner
    client = Client()
    client.force_login(rep)
    driver = b2_move.MoveDriver(client, data, b2_move.rep_open_deals(rep.pk, data)[:3])
    before = integrity.snapshot()

    statuses = [driver.move() for _ in range(3)]
    after = integrity.snapshot()

    assert statuses == [200, 200, 200]
    assert set(integrity.moves_errors(before, after, driver.moves).values()) == {0}
    assert set(integrity.global_errors().values()) == {0}


def test_authenticated_floor_locks_and_updates_one_deal_and_nothing_else(data, settings):
    settings.ROOT_URLCONF = "bench.urls"
    deal = Deal.objects.filter(stage_id__in=data.open_stage_ids).order_by("id").first()
    client = Client()
    client.force_login(deal.owner)
    before = integrity.snapshot()

    result = b0_floors.authenticated_floor(client, deal.pk, runs=2)

    touched = Deal.objects.get(pk=deal.pk)
    assert result["n"] == 2 and result["python_cpu_p50_ms"] > 0 and result["python_calls"] > 0
    assert touched.updated_at > deal.updated_at
    assert (touched.stage_id, touched.version) == (deal.stage_id, deal.version)
    assert integrity.snapshot() == before
    assert set(integrity.global_errors().values()) == {0}


def test_authenticated_floor_needs_a_logged_in_session(data, settings):
    settings.ROOT_URLCONF = "bench.urls"
    deal = Deal.objects.order_by("id").first()

    assert Client().post(f"/bench/touch/{deal.pk}/").status_code == 302


def test_api_measurement_lists_and_moves(data, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (1_000_000, 60)}
    rep = Deal.objects.filter(stage_id__in=data.open_stage_ids).order_by("id").first().owner
    result = b6_api.measure(rep, data, runs=3)
    assert result["move"]["not_200"] == 0
    assert result["list_100"]["statements"] > 0 and result["move"]["statements"] > 0


def test_automation_measurement_scans_twice_and_times_each_run(data):
    admin = User.objects.get(pk=data.admin_id)
    rep = User.objects.get(pk=data.rep_ids[0])
    result = b8_automations.measure(admin, rep, data, runs=3)
    assert result["scan"]["second_runs"] == 0
    assert result["scan"]["first_statements"] >= 1
    assert result["latency"]["runs_done"] == result["latency"]["moves"]
