"""Automations run as in the zero-setup default: events and tasks in-process, after commit."""

from __future__ import annotations

import pytest

from automations.models import Rule


@pytest.fixture(autouse=True)
def in_process(eager):
    """Every automation test runs as the zero-setup default does (tests/conftest.py)."""


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
