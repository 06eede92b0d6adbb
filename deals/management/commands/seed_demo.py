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
from deals.activities import activity_times
from deals.models import (
    Activity,
    ChecklistTick,
    Deal,
    DealContact,
    RewrittenHistory,
    StageChange,
)
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
        """Deals a sales team would recognise: most open deals are moving (recent
        activity, a next step booked, a close date ahead, a normal time in stage), and a
        minority are stuck for one clear reason each, so the stalled share is what a
        healthy team sees (about 10-20 %), not nearly everything."""
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
        deals: list[Deal] = []
        plans: list[_Plan] = []
        for i in range(count):
            roll = rng.random()
            depth = rng.choices(range(len(opened)), weights=[30, 25, 18, 14, 10])[0]
            path = opened[: depth + 1]
            if roll < 0.12:
                path = [*opened[: rng.randint(3, 5)], won]
            elif roll < 0.2:
                path = [*opened[: rng.randint(1, 4)], lost]
            final = path[-1]
            # Days in each stage: a normal pace, and a few deals stuck in their stage.
            stays = [rng.randint(3, 12) for _ in path[:-1]]
            if final.is_open:
                rot = final.rotting_days
                stuck = rng.random() < 0.05
                stays.append(rot + rng.randint(2, rot) if stuck else rng.randint(0, rot - 2))
                closed_ago = 0
            else:
                closed_ago = rng.randint(1, 80)
                stays.append(closed_ago)
            created = _business_hours(now - timedelta(days=sum(stays) + 1), rng)
            product, price = rng.choice(PRODUCTS)
            org_index = rng.randrange(len(orgs))
            has_basics = final is not opened[0] or rng.random() < 0.5
            if not final.is_open:
                expected = None  # a won deal's is the day it closed, set below
            elif has_basics:
                late = rng.random() < 0.03
                ahead = rng.randint(-15, -2) if late else rng.randint(10, 150)
                expected = (now + timedelta(days=ahead)).date()
            else:
                expected = None
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
                    expected_close_date=expected,
                    close_date_pushes=rng.choices([0, 1, 2, 3], weights=[74, 17, 8, 1])[0],
                    lost_reason=rng.choice(LOST_REASONS) if final is lost else "",
                    position=i * 1024,
                    created_at=created,
                )
            )
            plans.append(_Plan(path, stays, created))
        Deal.objects.bulk_create(deals)
        changes, activities, ticks, contacts = [], [], [], []
        for deal, plan in zip(deals, plans, strict=True):
            at = plan.created
            for seq, (stage, stay) in enumerate(zip(plan.path, plan.stays, strict=True), start=1):
                changes.append(
                    StageChange(
                        deal=deal,
                        seq=seq,
                        from_stage=plan.path[seq - 2] if seq > 1 else None,
                        to_stage=stage,
                        pipeline=stage.pipeline,
                        at=at,
                        by=deal.owner,
                        source="create" if seq == 1 else "board",
                    )
                )
                last_at = at
                at = _business_hours(at + timedelta(days=stay), rng)
            deal.stage_entered_at = min(last_at, now)
            deal.closed_at = deal.stage_entered_at if not plan.path[-1].is_open else None
            if plan.path[-1] is won:
                deal.expected_close_date = timezone.localdate(deal.closed_at)
            if len(plan.path) > 2:
                ticks.append(ChecklistTick(deal=deal, criterion=checklist, by=deal.owner))
                contacts.append(
                    DealContact(
                        deal=deal, person=deal.person or people[0], role=ContactRole.DECISION_MAKER
                    )
                )
            if len(plan.path) > 3:
                demo_at = _business_hours(plan.created + timedelta(days=sum(plan.stays[:2])), rng)
                activities.append(
                    Activity(
                        deal=deal,
                        owner=deal.owner,
                        type=ActivityType.DEMO,
                        subject="Product demo",
                        note=rng.choice(DEMO_NOTES),
                        done=True,
                        done_at=demo_at,
                        due_at=demo_at,
                        created_at=demo_at,
                    )
                )
            if deal.closed_at is None:
                activities += self._open_deal_activities(deal, rng, now)
        Deal.objects.bulk_update(
            deals, ["stage_entered_at", "closed_at", "expected_close_date"], batch_size=500
        )
        StageChange.objects.bulk_create(changes, batch_size=1000)
        # Years of history dated before the summaries' mark (set if their refresh already
        # ran on this database): without the marker the refresh would never see it.
        RewrittenHistory.mark(deal.pk for deal in deals)
        Activity.objects.bulk_create(activities, batch_size=1000)
        Deal.objects.update(**activity_times())  # a recount: right for every deal
        ChecklistTick.objects.bulk_create(ticks, batch_size=1000)
        DealContact.objects.bulk_create(contacts, batch_size=1000, ignore_conflicts=True)

    def _open_deal_activities(self, deal: Deal, rng: random.Random, now: Any) -> list[Activity]:
        """The last touch (a few days ago, with notes) and the next step (booked ahead, a few
        overdue); some deals have gone quiet or have nothing booked, which is what the
        stalled rules are there to catch."""
        found: list[Activity] = []
        who = deal.organization or "the lead"
        if rng.random() < 0.93:
            when = _business_hours(now - timedelta(days=rng.randint(1, 9)), rng)
            when = max(when, deal.created_at)
            kind, subject = rng.choice(LAST_TOUCHES)
            found.append(
                Activity(
                    deal=deal,
                    owner=deal.owner,
                    type=kind,
                    subject=subject.format(who=who),
                    note=rng.choice(TOUCH_NOTES),
                    done=True,
                    done_at=when,
                    due_at=when,
                    created_at=when,
                )
            )
        if rng.random() < 0.93:
            ahead = rng.choices([rng.randint(-3, -1), 0, rng.randint(1, 14)], [8, 10, 82])[0]
            kind, subject = rng.choice(NEXT_STEPS)
            found.append(
                Activity(
                    deal=deal,
                    owner=deal.owner,
                    type=kind,
                    subject=subject.format(who=who),
                    due_at=_business_hours(now + timedelta(days=ahead), rng),
                    created_at=max(deal.created_at, now - timedelta(days=rng.randint(1, 6))),
                )
            )
        return found


class _Plan:
    """A demo deal's stages, the days it spent in each, and when it was created."""

    def __init__(self, path: list[Stage], stays: list[int], created: Any) -> None:
        self.path, self.stays, self.created = path, stays, created


def _business_hours(moment: Any, rng: random.Random) -> Any:
    """The same day at a working hour (9:00-17:30 local time, on the half hour), moved off
    the weekend, as real calls and meetings are."""
    local = timezone.localtime(moment)
    while local.weekday() >= 5:
        local += timedelta(days=1 if local.weekday() == 6 else 2)
    slot = rng.randint(18, 35)  # half hours from 9:00 to 17:30
    return local.replace(hour=slot // 2, minute=30 * (slot % 2), second=0, microsecond=0)


LOST_REASONS = ["Chose a competitor", "No budget this year", "Went quiet", "Built it in-house"]
LAST_TOUCHES = [
    (ActivityType.CALL, "Call with {who}"),
    (ActivityType.EMAIL, "Sent follow-up to {who}"),
    (ActivityType.MEETING, "Meeting with {who}"),
]
NEXT_STEPS = [
    (ActivityType.CALL, "Follow-up call with {who}"),
    (ActivityType.MEETING, "Review meeting with {who}"),
    (ActivityType.EMAIL, "Send proposal to {who}"),
    (ActivityType.TASK, "Prepare pricing for {who}"),
]
TOUCH_NOTES = [
    "Interested; wants numbers for 50 seats before the next call.",
    "Budget owner is the CFO; she joins the next meeting.",
    "Asked for references in their sector.",
    "Timeline: decision expected this quarter.",
    "Happy with the trial so far; two open questions on SSO.",
    "",
]
DEMO_NOTES = [
    "Demo went well; they liked the reporting. Legal review next.",
    "Showed the integrations; IT wants a security questionnaire.",
    "Decision maker attended; asked about volume pricing.",
]
