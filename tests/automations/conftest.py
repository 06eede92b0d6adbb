"""Automations run as in the zero-setup default: events and tasks in-process, after commit."""

from __future__ import annotations

import pytest

from automations.models import Rule
from pipeline_crm.celery import app


@pytest.fixture(autouse=True)
def eager():
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed():` runs what the block schedules after commit, chains included."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def make_rule(admin_user):
    def make(trigger, actions, *, conditions=None, owner=None, pipeline=None, name="Rule"):
        return Rule.objects.create(
            name=name,
            owner=owner or admin_user,
            pipeline=pipeline,
            trigger=trigger,
            conditions=conditions or {},
            actions=actions,
        )

    return make
