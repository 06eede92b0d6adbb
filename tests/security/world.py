"""The people and records the permission matrix is checked against, built once per module.

Two teams, North (rep, teammate, manager) and South (outsider, other manager), an admin
and a deactivated North rep. Three deals, one per object scope, each with its own
organization, person and activity, and a stalled-deal notification for its owner. Words
that appear nowhere else (Alder, Birch, Cedar) let a test tell the three apart in any
page, search result, export or notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import Role, User
from automations.models import Rule
from contacts.models import Organization, Person
from deals import stalled
from deals.models import Activity, Deal
from stages.models import CriterionKind, Pipeline, Stage, StageKind
from tests.factories import (
    ActivityFactory,
    CriterionFactory,
    DealFactory,
    OrganizationFactory,
    PersonFactory,
    PipelineFactory,
    StageFactory,
    TeamFactory,
    UserFactory,
)

ROLES = (
    "rep",
    "teammate",
    "outsider",
    "manager",
    "other_manager",
    "admin",
    "deactivated",
    "anonymous",
)
SCOPES = ("rep", "teammate", "other_team")
WORDS = {"rep": "Alder", "teammate": "Birch", "other_team": "Cedar"}
# Distinct decimal digits, so a dashboard total tells exactly which deals it counts.
AMOUNTS = {"rep": Decimal("1000"), "teammate": Decimal("10000"), "other_team": Decimal("100000")}


@dataclass
class World:
    users: dict[str, User | None]
    pipeline: Pipeline
    stages: dict[str, Stage]
    deals: dict[str, Deal]
    organizations: dict[str, Organization]
    people: dict[str, Person]
    activities: dict[str, Activity]
    # role -> session cookie of a login made while the user was still active.
    sessions: dict[str, str] = field(default_factory=dict)

    def user(self, role: str) -> User | None:
        return self.users[role]

    def client(self, role: str) -> Client:
        """A browser already logged in as `role` (anonymous: not logged in)."""
        client = Client()
        if role in self.sessions:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.sessions[role]
        return client


def build_world() -> World:
    north, south = TeamFactory(name="North"), TeamFactory(name="South")
    manager = UserFactory(username="m_manager", role=Role.MANAGER, team=north)
    other_manager = UserFactory(username="m_other_manager", role=Role.MANAGER, team=south)
    north.manager, south.manager = manager, other_manager
    north.save()
    south.save()
    users: dict[str, User | None] = {
        "rep": UserFactory(username="m_rep", team=north),
        "teammate": UserFactory(username="m_teammate", team=north),
        "outsider": UserFactory(username="m_outsider", team=south),
        "manager": manager,
        "other_manager": other_manager,
        "admin": UserFactory(
            username="m_admin", role=Role.ADMIN, is_staff=True, is_superuser=True
        ),
        "deactivated": UserFactory(username="m_gone", team=north),
        "anonymous": None,
    }
    pipeline = PipelineFactory(name="Matrix")
    stages = {
        "lead": StageFactory(pipeline=pipeline, name="Lead", position=0, probability=10),
        "qualified": StageFactory(pipeline=pipeline, name="Qualified", position=1),
        "demo": StageFactory(pipeline=pipeline, name="Demo", position=2),
        "won": StageFactory(pipeline=pipeline, name="Won", position=10, kind=StageKind.WON),
        "lost": StageFactory(pipeline=pipeline, name="Lost", position=11, kind=StageKind.LOST),
    }
    # Demo is gated by a confirmation no deal has: only an override gets a deal in.
    CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label="Budget signed")
    owners = {"rep": users["rep"], "teammate": users["teammate"], "other_team": users["outsider"]}
    deals, organizations, people, activities = {}, {}, {}, {}
    yesterday = timezone.localdate() - timedelta(days=1)
    for scope, owner in owners.items():
        word = WORDS[scope]
        organizations[scope] = OrganizationFactory(name=f"{word} Holdings", created_by=owner)
        people[scope] = PersonFactory(
            name=f"Pat {word}", organization=organizations[scope], created_by=owner
        )
        deals[scope] = DealFactory(
            title=f"{word} renewal",
            owner=owner,
            stage=stages["lead"],
            amount=AMOUNTS[scope],
            organization=organizations[scope],
            person=people[scope],
            expected_close_date=yesterday,
        )
        activities[scope] = ActivityFactory(
            deal=deals[scope], owner=owner, subject=f"{word} discovery call"
        )
    # The close dates passed: the stalled job flags each deal and notifies its owner.
    stalled.refresh_flags()
    # Settings > Automations: one rule, the manager's (it acts on their teams' deals).
    Rule.objects.create(
        name="Matrix rule",
        owner=manager,
        trigger={"kind": "deal_won"},
        actions=[
            {"kind": "notify", "roles": ["owner"], "users": [], "text": "Won", "email": False}
        ],
    )
    world = World(
        users=users,
        pipeline=pipeline,
        stages=stages,
        deals=deals,
        organizations=organizations,
        people=people,
        activities=activities,
    )
    deactivated = users["deactivated"]
    deactivated.is_active = True  # logged in first, deactivated afterwards
    for role, user in users.items():
        if user is not None:
            client = Client()
            client.force_login(user)
            world.sessions[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
    User.objects.filter(pk=deactivated.pk).update(is_active=False)
    deactivated.is_active = False
    return world
