"""The container health checks compose runs: web's readiness request, beat's heartbeat."""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

from celery import Celery

from pipeline_crm import healthcheck
from pipeline_crm.celery import HeartbeatScheduler


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_beat_scheduler_touches_the_heartbeat_on_every_tick(settings, tmp_path):
    settings.BEAT_HEARTBEAT_FILE = tmp_path / "beat-heartbeat"
    app = Celery("heartbeat-test", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = {}
    scheduler = HeartbeatScheduler(app, schedule_filename=str(tmp_path / "schedule"))

    scheduler.tick()

    assert time.time() - settings.BEAT_HEARTBEAT_FILE.stat().st_mtime < 5


def test_beat_is_healthy_with_a_fresh_heartbeat(settings, tmp_path):
    settings.BEAT_HEARTBEAT_FILE = tmp_path / "beat-heartbeat"
    settings.BEAT_HEARTBEAT_FILE.touch()

    assert healthcheck.check_beat() is None


def test_beat_is_unhealthy_after_three_missed_ticks(settings, tmp_path):
    settings.BEAT_HEARTBEAT_FILE = tmp_path / "beat-heartbeat"
    settings.BEAT_HEARTBEAT_FILE.touch()
    stale = time.time() - 3 * settings.CELERY_BEAT_MAX_LOOP_INTERVAL - 5
    os.utime(settings.BEAT_HEARTBEAT_FILE, (stale, stale))

    assert "last heartbeat" in healthcheck.check_beat()


def test_beat_is_unhealthy_before_its_first_tick(settings, tmp_path):
    settings.BEAT_HEARTBEAT_FILE = tmp_path / "beat-heartbeat"

    assert "no heartbeat yet" in healthcheck.check_beat()


def test_web_is_healthy_when_readiness_answers_200(live_server, monkeypatch, settings):
    settings.REDIS_URL = ""
    monkeypatch.setenv("PORT", str(urlsplit(live_server.url).port))
    monkeypatch.setenv("ALLOWED_HOSTS", "localhost,127.0.0.1")

    assert healthcheck.check_web() is None


def test_web_is_unhealthy_when_nothing_listens(monkeypatch):
    monkeypatch.setenv("PORT", str(free_port()))

    assert "unreachable" in healthcheck.check_web()


def test_unknown_check_is_a_usage_error(capsys):
    assert healthcheck.main(["database"]) == 2
    assert "usage" in capsys.readouterr().err
