"""Demo data for a first run: users, two teams, a gated pipeline, a few hundred deals.

Idempotent: users are ensured every time; the pipeline and deals are created once.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import Role, Team, User
from contacts.models import Organization, Person
from deals.models import Activity, ChecklistTick, Deal, DealContact, StageChange
from stages.models import (
    ActivityType,
    ContactRole,
    CriterionKind,
    EntryCriterion,
    ForecastCategory,
    Pipeline,
    Stage,
    StageKind,
)

PASSWORD = "demo"
TEAMS = {
    "East": ("manager", ["rep", "rep2", "rep3"]),
    "West": ("manager2", ["rep4", "rep5", "rep6"]),
}
NAMES = [
    "Ada Park",
    "Ben Okafor",
    "Carla Diaz",
    "Dev Patel",
    "Elena Rossi",
    "Femi Adeyemi",
    "Greta Lind",
    "Hugo Martin",
    "Iris Chen",
    "Jonas Berg",
]
STAGES = [
    # name, probability, forecast category, rotting days, guidance
    (
        "Lead in",
        10,
        ForecastCategory.PIPELINE,
        14,
        "Research the account and reach the first contact.\nDone when: a call is booked.",
    ),
    (
        "Qualified",
        25,
        ForecastCategory.PIPELINE,
        21,
        "Confirm need, budget, authority and timing (BANT).\n"
        "Done when: you know who decides and by when.",
    ),
    (
        "Demo",
        45,
        ForecastCategory.BEST_CASE,
        14,
        "Show the product against their top three pains; bring the decision maker.\n"
        "Done when: the demo is logged and next steps are agreed.",
    ),
    (
        "Proposal",
        65,
        ForecastCategory.BEST_CASE,
        10,
        "Send a priced proposal; walk them through it live.\n"
        "Done when: they have confirmed scope and price are in range.",
    ),
    (
        "Negotiation",
        80,
        ForecastCategory.COMMIT,
        10,
        "Agree terms, legal and start date. Escalate blockers early.\n"
        "Done when: the contract is signed.",
    ),
]
WORDS_A = ["North", "Blue", "Iron", "Bright", "Silver", "Green", "Swift", "Prime", "Atlas", "Nova"]
WORDS_B = ["Logistics", "Health", "Foods", "Systems", "Energy", "Retail", "Labs", "Finance"]
SECTORS = ["technology", "medical", "retail", "software", "marketing", "finance", "energy"]
PRODUCTS = [
    ("GTX Basic", 550),
    ("GTX Pro", 4821),
    ("MG Special", 55),
    ("MG Advanced", 3393),
    ("GTX Plus Pro", 5482),
    ("GTX Plus Basic", 1096),
    ("GTK 500", 26768),
]


class Command(BaseCommand):
    help = "Create demo users (password 'demo'), a gated pipeline and a few hundred deals."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG off.")
        parser.add_argument("--deals", type=int, default=320)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("Refusing to seed demo logins with DEBUG off (use --force).")
        with transaction.atomic():
            users = self._users()
            if Pipeline.objects.filter(name="Sales").exists():
                self.stdout.write("Demo data already present; users ensured.")
                return
            stages = self._pipeline()
            self._deals(users, stages, options["deals"])
        if "run_jobs" in get_commands():
            call_command("run_jobs", stdout=self.stdout)
        self.stdout.write(
            self.style.SUCCESS("Demo data ready. Log in as admin, manager or rep / demo")
        )

    def _user(self, username: str, role: str, team: Team | None, name: str) -> User:
        first, _, last = name.partition(" ")
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "role": role,
                "team": team,
                "first_name": first,
                "last_name": last,
                "email": f"{username}@example.com",
            },
        )
        if created:
            user.set_password(PASSWORD)
            user.save()
        return user

    def _users(self) -> list[User]:
        admin = self._user("admin", Role.ADMIN, None, "Alex Admin")
        if not admin.is_superuser:
            admin.is_staff = admin.is_superuser = True
            admin.save()
        reps: list[User] = []
        names = iter(NAMES)
        for team_name, (manager_name, rep_names) in TEAMS.items():
            team, _ = Team.objects.get_or_create(name=team_name)
            manager = self._user(manager_name, Role.MANAGER, team, next(names))
            if team.manager_id != manager.pk:
                team.manager = manager
                team.save()
            reps += [self._user(r, Role.REP, team, next(names)) for r in rep_names]
        return reps

    def _pipeline(self) -> list[Stage]:
        pipeline = Pipeline.objects.create(name="Sales")
        stages = [
            Stage.objects.create(
                pipeline=pipeline,
                name=name,
                position=i,
                probability=p,
                forecast_category=cat,
                rotting_days=rot,
                guidance=guide,
            )
            for i, (name, p, cat, rot, guide) in enumerate(STAGES)
        ]
        Stage.objects.create(
            pipeline=pipeline,
            name="Won",
            position=90,
            kind=StageKind.WON,
            probability=100,
            forecast_category=ForecastCategory.CLOSED,
        )
        Stage.objects.create(
            pipeline=pipeline,
            name="Lost",
            position=91,
            kind=StageKind.LOST,
            probability=0,
            forecast_category=ForecastCategory.OMITTED,
        )
        _lead, qualified, demo, proposal, negotiation = stages
        criteria = [
            (qualified, CriterionKind.FIELD_REQUIRED, {"field_name": "expected_close_date"}),
            (qualified, CriterionKind.FIELD_REQUIRED, {"field_name": "organization"}),
            (demo, CriterionKind.CHECKLIST, {"label": "Budget confirmed"}),
            (demo, CriterionKind.CONTACT_ROLE, {"contact_role": ContactRole.DECISION_MAKER}),
            (proposal, CriterionKind.ACTIVITY_DONE, {"activity_type": ActivityType.DEMO}),
            (proposal, CriterionKind.AMOUNT_AT_LEAST, {"amount": Decimal("1000")}),
            (proposal, CriterionKind.NO_SKIP, {}),
            (negotiation, CriterionKind.FIELD_REQUIRED, {"field_name": "person"}),
            (negotiation, CriterionKind.MIN_DAYS_IN_PREVIOUS, {"days": 2}),
        ]
        for position, (stage, kind, extra) in enumerate(criteria):
            EntryCriterion.objects.create(stage=stage, kind=kind, position=position, **extra)
        return list(pipeline.stages.all())

    def _deals(self, reps: list[User], stages: list[Stage], count: int) -> None:
        rng = random.Random(42)
        now = timezone.now()
        orgs = Organization.objects.bulk_create(
            Organization(
                name=f"{a} {b}", sector=rng.choice(SECTORS), employees=rng.randint(20, 20000)
            )
            for a in WORDS_A
            for b in WORDS_B[:6]
        )
        people = Person.objects.bulk_create(
            Person(
                name=f"{rng.choice(NAMES).split()[0]} {rng.choice(WORDS_A)}son",
                organization=org,
                email=f"contact{i}@example.com",
            )
            for i, org in enumerate(orgs)
        )
        opened = [s for s in stages if s.kind == StageKind.OPEN]
        won = next(s for s in stages if s.kind == StageKind.WON)
        lost = next(s for s in stages if s.kind == StageKind.LOST)
        checklist = EntryCriterion.objects.get(kind=CriterionKind.CHECKLIST)
        deals, paths = [], []
        for i in range(count):
            roll = rng.random()
            depth = rng.choices(range(len(opened)), weights=[30, 25, 18, 14, 10])[0]
            path = opened[: depth + 1]
            final = path[-1]
            if roll < 0.12:
                final = won
                path = [*opened[: rng.randint(3, 5)], won]
            elif roll < 0.2:
                final = lost
                path = [*opened[: rng.randint(1, 4)], lost]
            product, price = rng.choice(PRODUCTS)
            org_index = rng.randrange(len(orgs))
            created = now - timedelta(days=rng.randint(len(path) * 3, 120))
            has_basics = final is not opened[0] or rng.random() < 0.5
            deals.append(
                Deal(
                    title=f"{product} for {orgs[org_index].name}",
                    organization=orgs[org_index] if has_basics else None,
                    person=people[org_index] if len(path) > 3 else None,
                    owner=rng.choice(reps),
                    pipeline=final.pipeline,
                    stage=final,
                    amount=Decimal(price * rng.randint(1, 12)),
                    product=product,
                    expected_close_date=(now + timedelta(days=rng.randint(-20, 150))).date()
                    if has_basics
                    else None,
                    close_date_pushes=rng.choice([0, 0, 0, 1, 3]),
                    lost_reason="Chose a competitor" if final is lost else "",
                    position=i * 1024,
                    created_at=created,
                )
            )
            paths.append((path, created))
        Deal.objects.bulk_create(deals)
        changes, activities, ticks, contacts = [], [], [], []
        for deal, (path, created) in zip(deals, paths, strict=True):
            span = (now - created) / len(path)
            at = created
            for seq, stage in enumerate(path, start=1):
                changes.append(
                    StageChange(
                        deal=deal,
                        seq=seq,
                        from_stage=path[seq - 2] if seq > 1 else None,
                        to_stage=stage,
                        pipeline=stage.pipeline,
                        at=at,
                        by=deal.owner,
                        source="create" if seq == 1 else "board",
                    )
                )
                last_at = at
                at = at + span * rng.uniform(0.6, 1.0)
            deal.stage_entered_at = last_at
            deal.closed_at = last_at if not path[-1].is_open else None
            if len(path) > 2:
                ticks.append(ChecklistTick(deal=deal, criterion=checklist, by=deal.owner))
                contacts.append(
                    DealContact(
                        deal=deal, person=deal.person or people[0], role=ContactRole.DECISION_MAKER
                    )
                )
            if len(path) > 3:
                activities.append(
                    Activity(
                        deal=deal,
                        owner=deal.owner,
                        type=ActivityType.DEMO,
                        subject="Product demo",
                        done=True,
                        done_at=created + span * 2,
                        due_at=created + span * 2,
                    )
                )
            if deal.closed_at is None and rng.random() < 0.8:
                due = now + timedelta(days=rng.randint(-5, 14), hours=rng.randint(0, 8))
                kind = rng.choice([ActivityType.CALL, ActivityType.MEETING, ActivityType.EMAIL])
                activities.append(
                    Activity(
                        deal=deal,
                        owner=deal.owner,
                        type=kind,
                        subject=f"Follow up with {deal.organization or 'lead'}",
                        due_at=due,
                    )
                )
        Deal.objects.bulk_update(deals, ["stage_entered_at", "closed_at"], batch_size=500)
        StageChange.objects.bulk_create(changes, batch_size=1000)
        Activity.objects.bulk_create(activities, batch_size=1000)
        ChecklistTick.objects.bulk_create(ticks, batch_size=1000)
        DealContact.objects.bulk_create(contacts, batch_size=1000, ignore_conflicts=True)
