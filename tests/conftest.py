"""Named actors shared by every test: two teams, their reps and managers, an admin."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Role
from stages.models import StageKind
from tests.factories import PipelineFactory, StageFactory, TeamFactory, UserFactory


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs ~0.5 s per user on this machine; tests are not about hashing strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def imports_run_through_celery(settings):
    """Confirmed imports go to Celery (in-process and eager without a broker), so a test
    sees the finished import; the browser tests that watch progress ask for the thread."""
    settings.IMPORT_RUNNER = "celery"


@pytest.fixture
def team(db):
    return TeamFactory(name="East")


@pytest.fixture
def other_team(db):
    return TeamFactory(name="West")


@pytest.fixture
def manager(team):
    user = UserFactory(username="manager", role=Role.MANAGER, team=team)
    team.manager = user
    team.save()
    return user


@pytest.fixture
def other_manager(other_team):
    user = UserFactory(username="other_manager", role=Role.MANAGER, team=other_team)
    other_team.manager = user
    other_team.save()
    return user


@pytest.fixture
def rep(team, manager):
    return UserFactory(username="rep", team=team)


@pytest.fixture
def teammate(team, manager):
    return UserFactory(username="teammate", team=team)


@pytest.fixture
def outsider(other_team, other_manager):
    """A rep of another team."""
    return UserFactory(username="outsider", team=other_team)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", role=Role.ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def pipeline(db):
    return PipelineFactory(name="Sales")


@pytest.fixture
def stages(pipeline):
    """Lead in → Qualified → Demo → Proposal, plus Won and Lost."""
    names = ["Lead in", "Qualified", "Demo", "Proposal"]
    opened = [
        StageFactory(pipeline=pipeline, name=name, position=i, probability=10 * (i + 1))
        for i, name in enumerate(names)
    ]
    won = StageFactory(
        pipeline=pipeline, name="Won", position=10, kind=StageKind.WON, probability=100
    )
    lost = StageFactory(
        pipeline=pipeline, name="Lost", position=11, kind=StageKind.LOST, probability=0
    )
    return {
        "lead": opened[0],
        "qualified": opened[1],
        "demo": opened[2],
        "proposal": opened[3],
        "won": won,
        "lost": lost,
    }


@pytest.fixture
def eager():
    """No broker: tasks and event consumers run in-process after commit (the zero-setup
    default), whatever REDIS_URL says."""
    from pipeline_crm.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def client_for():
    """`client_for(user)`: a test client logged in as `user`."""

    def login(user):
        client = Client()
        client.force_login(user)
        return client

    return login
