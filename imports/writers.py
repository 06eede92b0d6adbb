"""Saving a batch of deal rows (and the users and teams they need): a fixed number of
statements per batch, whatever its size.

New deals are written set-based (see `DealWriter.create`): this is the path chosen for
imports, for speed at 100,000 rows, and it keeps `create_deal`/`move_deal`'s rules row by
row: every row's history is walked through the gate first (rows.DealContext.judge),
history rows carry contiguous `seq` from 1 and source=import, `version` equals the number
of history rows as the move protocol keeps it, closed deals get `closed_at` from their
close date, and overrides are written on the stage change with gate telemetry. Deals that
already exist (same external id) are changed through the deal services one by one
(`complete_and_move`, `reassign_deal`, `update_deal`), and only when something changed.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from django.contrib.auth.hashers import make_password
from django.db.models import Min
from django.utils import timezone
from django.utils.text import slugify

from accounts import policy
from accounts.models import Role, Team
from contacts.models import Organization, Person
from deals import events as deal_events
from deals import services
from deals.models import (
    Deal,
    Event,
    EventSource,
    GateEvent,
    GateOutcome,
    MoveSource,
    QuietDeal,
    RewrittenHistory,
    StageChange,
)
from imports import bulk
from imports.mapping import normalise
from imports.organizations import OrganizationCache, PersonCache
from imports.records import DEAL, TEAM, USER, Outcome, Recorder, as_json, outcome_of
from imports.rows import DealContext, DealRecord, Problem
from imports.source import Row
from stages.models import StageKind

if TYPE_CHECKING:
    from accounts.models import User
    from imports.models import ImportJob
    from stages.models import Stage


# -- users and teams (the sample set's sales teams) ---------------------------------------


def _username(name: str, taken: set[str]) -> str:
    base = slugify(name).replace("-", ".")[:140] or "user"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}{n}"
    taken.add(candidate)
    return candidate


class PeopleOfSales:
    """Creates the users and teams an import needs (admins only, when asked to).

    From a team-members file (member, manager, office): members become reps, their
    managers managers, and each office with a manager a team named "Office (Manager)":
    a team has one manager in this CRM, so an office with two managers becomes two teams,
    each manager seeing their own reps. Users who already exist (matched by name, user
    name or e-mail) are left as they are. New users get an unusable password: an admin
    sets one (or sends a reset link) before they log in.
    """

    def __init__(self, *, by: User, recorder: Recorder) -> None:
        from accounts.models import User as UserModel

        self.by = by
        self.recorder = recorder
        self.users = {
            normalise(key): user
            for user in UserModel.objects.all()
            for key in (user.get_full_name(), user.username, user.email)
            if key
        }
        self.taken = set(UserModel.objects.values_list("username", flat=True))
        self.teams = {t.name.lower(): t for t in Team.objects.all()}
        self.created_users = 0
        self.created_teams = 0

    def user(self, name: str, *, role: str, team: Team | None) -> User:
        from accounts.models import User as UserModel

        found = self.users.get(normalise(name))
        if found is not None:
            return found
        first, _, last = name.strip().partition(" ")
        user = UserModel.objects.create(
            username=_username(name, self.taken),
            first_name=first[:150],
            last_name=last[:150],
            role=role,
            team=team,
            password=make_password(None),
        )
        self.users[normalise(name)] = user
        self.recorder.created(USER, user.pk)
        self.created_users += 1
        return user

    def team(self, name: str, manager_name: str) -> Team:
        key = name.lower()
        team = self.teams.get(key)
        if team is None:
            team = Team.objects.create(name=name[:100])
            self.teams[key] = team
            self.recorder.created(TEAM, team.pk)
            self.created_teams += 1
        if manager_name and team.manager_id is None:
            team.manager = self.user(manager_name, role=Role.MANAGER, team=team)
            team.save(update_fields=["manager"])
        return team

    def roster(self, members: list[dict[str, str]]) -> None:
        for member in members:
            office, manager = member.get("team", ""), member.get("manager", "")
            team = None
            if office:
                team = self.team(f"{office} ({manager})" if manager else office, manager)
            elif manager:
                team = self.team(f"Team {manager}", manager)
            if member.get("member"):
                self.user(member["member"], role=Role.REP, team=team)


# -- deals -------------------------------------------------------------------------------

UPDATABLE = ("title", "amount", "currency", "expected_close_date", "product", "next_step")
# What a batch reads of the deals its rows match, to tell changed rows from unchanged ones.
SNAPSHOT = (
    "id",
    "external_id",
    "stage_id",
    "owner_id",
    "organization_id",
    "person_id",
    "version",
    *UPDATABLE,
)
GATE_FIELDS = {"amount", "expected_close_date", "next_step"}


class DealWriter:
    def __init__(self, job: ImportJob, ctx: DealContext) -> None:
        self.job = job
        self.ctx = ctx
        self.by = ctx.by
        self.organizations = OrganizationCache()
        self.people = PersonCache()
        self.new_owners: dict[str, User] = {}
        self.sales: PeopleOfSales | None = None

    def write(self, rows: list[Row], recorder: Recorder) -> list[Outcome]:
        records = [self.ctx.convert(row) for row in rows]
        ids = [r.external_id for r in records if r.ok and r.external_id]
        matches: dict[str, list[SimpleNamespace]] = defaultdict(list)
        if ids:
            # Read without locking: most rows of a re-import are unchanged, and a changed
            # one goes through a deal service, which locks it and refuses it if its
            # version moved since this read (reported as a failed row).
            # Plain values, not model instances: at 100,000 rows the instances cost more
            # than the query; a deal that must change is loaded by the service.
            for values in Deal.objects.filter(external_id__in=ids).values(*SNAPSHOT):
                matches[values["external_id"]].append(SimpleNamespace(pk=values["id"], **values))
        matched = [d.pk for group in matches.values() for d in group]
        editable = set(
            policy.changeable_deals(self.by).filter(pk__in=matched).values_list("pk", flat=True)
            if matched
            else ()
        )
        outcomes: dict[int, Outcome] = {}
        new: list[DealRecord] = []
        updates: list[tuple[DealRecord, SimpleNamespace]] = []
        column = self.ctx.mapping.columns.get("external_id", "")
        for record in records:
            found = matches.get(record.external_id) if record.ok and record.external_id else None
            if found and len(found) > 1:
                record.problems.append(
                    Problem(
                        record.line,
                        column,
                        "ambiguous_match",
                        f"{len(found)} deals have the id “{record.external_id}”",
                    )
                )
            elif found and found[0].pk not in editable:
                record.problems.append(
                    Problem(
                        record.line,
                        column,
                        "not_editable",
                        f"The deal with id “{record.external_id}” is not yours to change",
                    )
                )
            elif found:
                updates.append((record, found[0]))
                continue
            else:
                self.ctx.judge(record)
            if record.ok:
                new.append(record)
            else:
                outcomes[record.line] = outcome_of(
                    record.line, record.external_id, record.problems
                )
        self._resolve_contacts([r for r in new] + [r for r, _d in updates], recorder)
        for record, deal_id in self.create(new, recorder):
            outcomes[record.line] = Outcome(
                record.line, record.external_id, "created", deal_id, record.problems
            )
        for record, deal in updates:
            outcomes[record.line] = self.update(record, deal, recorder)
        return [outcomes[r.line] for r in records]

    def _owner(self, record: DealRecord, recorder: Recorder) -> User:
        if record.owner is not None:
            return record.owner
        user = self.new_owners.get(normalise(record.owner_name))
        if user is None:
            if self.sales is None:
                self.sales = PeopleOfSales(by=self.by, recorder=recorder)
            self.sales.recorder = recorder
            user = self.sales.user(record.owner_name, role=Role.REP, team=None)
            self.new_owners[normalise(record.owner_name)] = user
        record.owner = user
        return user

    def _resolve_contacts(self, records: list[DealRecord], recorder: Recorder) -> None:
        self.organizations.ensure(
            {r.organization.lower(): r.organization for r in records if r.organization},
            by=self.by,
            recorder=recorder,
        )
        self.people.ensure(
            {
                (r.person.lower(), self.organizations.ids.get(r.organization.lower())): r.person
                for r in records
                if r.person
            },
            by=self.by,
            recorder=recorder,
        )

    def _contact_ids(self, record: DealRecord) -> tuple[int | None, int | None]:
        organization_id = self.organizations.ids.get(record.organization.lower())
        person_id = (
            self.people.ids.get((record.person.lower(), organization_id))
            if record.person
            else None
        )
        return organization_id, person_id

    def create(
        self, records: list[DealRecord], recorder: Recorder
    ) -> list[tuple[DealRecord, int]]:
        """Insert new deals with their history: one statement per table for the batch."""
        if not records:
            return []
        stage_ids = {r.stage.pk for r in records if r.stage}
        tops = dict(
            Deal.objects.filter(stage_id__in=stage_ids)
            .values("stage_id")
            .annotate(top=Min("position"))
            .values_list("stage_id", "top")
        )
        now = timezone.now()
        deals: list[dict[str, Any]] = []
        for record in records:
            final = record.steps[-1]
            position = tops.get(final.stage.pk)
            # On top of its column, like create_deal: the newest deal first.
            position = 0 if position is None else position - services.POSITION_GAP
            tops[final.stage.pk] = position
            organization_id, person_id = self._contact_ids(record)
            deals.append(
                {
                    "title": record.title,
                    "organization_id": organization_id,
                    "person_id": person_id,
                    "owner_id": self._owner(record, recorder).pk,
                    "pipeline_id": final.stage.pipeline_id,
                    "stage_id": final.stage.pk,
                    "amount": record.amount,
                    "currency": record.currency,
                    "expected_close_date": record.expected_close_date,
                    "next_step": record.next_step,
                    "lost_reason": record.lost_reason,
                    "product": record.product,
                    "external_id": record.external_id,
                    "stage_entered_at": final.at,
                    "closed_at": None if final.stage.is_open else final.at,
                    "created_at": record.steps[0].at,
                    "updated_at": now,
                    "position": position,
                    "version": len(record.steps),
                }
            )
        deal_ids = bulk.insert(Deal, deals)
        changes: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        reason = self.ctx.override_reason
        for record, deal_id in zip(records, deal_ids, strict=True):
            previous_id = None
            for index, step in enumerate(record.steps):
                failures = record.overridden.get(index, [])
                changes.append(
                    {
                        "deal_id": deal_id,
                        "seq": index + 1,
                        "from_stage_id": previous_id,
                        "to_stage_id": step.stage.pk,
                        "pipeline_id": step.stage.pipeline_id,
                        "at": step.at,
                        "by_id": self.by.pk,
                        "source": MoveSource.IMPORT,
                        "override_reason": reason if failures else "",
                        "overridden": [f.message for f in failures],
                    }
                )
                events.extend(
                    {
                        "deal_id": deal_id,
                        "stage_id": step.stage.pk,
                        "criterion_id": f.criterion_id,
                        "requirement": f.message[:200],
                        "outcome": GateOutcome.OVERRIDDEN,
                        "by_id": self.by.pk,
                        "source": MoveSource.IMPORT,
                        "at": now,
                    }
                    for f in failures
                )
                previous_id = step.stage.pk
            recorder.created(DEAL, deal_id)
        bulk.insert(StageChange, changes, returning=False)
        # History dated before now: the summaries built from history must recompute
        # these deals (they only look at changes newer than their mark by themselves).
        RewrittenHistory.mark(deal_ids)
        # Their stalled flags are announced once, to the importer (see QuietDeal).
        QuietDeal.objects.bulk_create([QuietDeal(deal_id=deal_id) for deal_id in deal_ids])
        bulk.insert(GateEvent, events, returning=False)
        final_stages = [r.steps[-1].stage for r in records]
        deal_events.publish(*_created_events(deals, deal_ids, final_stages, by=self.by))
        return list(zip(records, deal_ids, strict=True))

    def update(self, record: DealRecord, found: SimpleNamespace, recorder: Recorder) -> Outcome:
        """Change an existing deal through the deal services, only where the file differs.

        A stage change is a move (gate, history with source=import); a new owner is a
        reassignment; other fields are an edit. The old values are kept for undo; the
        stage is not reverted by undo (history is append-only: undo a move by moving).
        """
        deal: Any = found
        organization_id, person_id = self._contact_ids(record)
        wanted: dict[str, Any] = {name: getattr(record, name) for name in UPDATABLE}
        if record.organization:
            wanted["organization"] = organization_id
        if record.person:
            wanted["person"] = person_id
        diff = {
            name: value
            for name, value in wanted.items()
            if getattr(deal, f"{name}_id" if name in {"organization", "person"} else name) != value
            and not (value in (None, "") and name not in {"organization", "person"})
        }
        target = record.stage
        move = target is not None and target.pk != deal.stage_id
        owner_changes = record.owner is not None and record.owner.pk != deal.owner_id
        if not diff and not move and not owner_changes:
            return Outcome(record.line, record.external_id, "unchanged", deal.pk, record.problems)
        before: dict[str, Any] = {
            name: as_json(
                getattr(deal, f"{name}_id" if name in {"organization", "person"} else name)
            )
            for name in diff
        }
        if owner_changes:
            before["owner"] = deal.owner_id
        deal = Deal.objects.select_related("stage").get(pk=found.pk)
        deal.version = found.version  # a change since the batch read is a conflict
        try:
            if move:
                # What the gate may need travels with the move, as a rep's inline fixes do.
                organization_name = ""
                if diff.get("organization"):
                    organization_name = Organization.objects.get(pk=diff.pop("organization")).name
                fixes = services.GateFixes(
                    fields={
                        **{n: diff[n] for n in GATE_FIELDS & set(diff)},
                        "lost_reason": record.lost_reason,
                    },
                    organization_name=organization_name,
                )
                deal = services.complete_and_move(
                    deal,
                    target,
                    fixes,
                    by=self.by,
                    expected_version=deal.version,
                    source=MoveSource.IMPORT,
                    override_reason=self.ctx.override_reason,
                ).deal
                for name in GATE_FIELDS & set(diff):
                    diff.pop(name)
                # The move is dated when it was made, but a batch's transaction may
                # commit long after: the summaries recompute the deal, whatever their mark.
                RewrittenHistory.mark([deal.pk])
            if owner_changes:
                deal = services.reassign_deal(
                    deal,
                    new_owner=record.owner,
                    by=self.by,
                    expected_version=deal.version,
                    source=MoveSource.IMPORT,
                )
            if diff:
                relations = Organization.objects.in_bulk(
                    [v for n, v in diff.items() if n == "organization" and v]
                )
                people = Person.objects.in_bulk(
                    [v for n, v in diff.items() if n == "person" and v]
                )
                changes = {
                    name: relations.get(value)
                    if name == "organization"
                    else people.get(value)
                    if name == "person"
                    else value
                    for name, value in diff.items()
                }
                deal = services.update_deal(
                    deal,
                    changes,
                    by=self.by,
                    expected_version=deal.version,
                    source=MoveSource.IMPORT,
                )
        except services.GateBlocked as blocked:
            needs = "; ".join(f.message for f in blocked.failures)
            record.problems.append(
                Problem(
                    record.line,
                    self.ctx.mapping.columns.get("stage", ""),
                    "gate",
                    f"{target.name if target else ''}: {needs}",
                )
            )
            return Outcome(record.line, record.external_id, "failed", deal.pk, record.problems)
        except services.DealError as error:
            record.problems.append(
                Problem(
                    record.line,
                    self.ctx.mapping.columns.get("stage", ""),
                    "bad_value",
                    error.message,
                )
            )
            return Outcome(record.line, record.external_id, "failed", deal.pk, record.problems)
        recorder.updated(DEAL, deal.pk, before)
        return Outcome(record.line, record.external_id, "updated", deal.pk, record.problems)


CLOSING_EVENTS = {StageKind.WON: "deal.won", StageKind.LOST: "deal.lost"}


def _created_events(
    deals: list[dict[str, Any]], deal_ids: list[int], stages: list[Stage], *, by: User
) -> list[Event]:
    """What `create_deal` publishes, for a batch of deals written in bulk: deal.created for
    each (and deal.won or deal.lost for one imported closed), in one INSERT. The runner's
    `events.tagged` adds the job and its automations choice to every payload."""
    made = []
    for row, deal_id, stage in zip(deals, deal_ids, stages, strict=True):
        ids = {"deal_id": deal_id, "owner_id": row["owner_id"], "stage_id": row["stage_id"]}
        made.append(
            deal_events.event(
                "deal.created",
                by=by,
                source=EventSource.IMPORT,
                pipeline_id=row["pipeline_id"],
                **ids,
            )
        )
        if outcome := CLOSING_EVENTS.get(stage.kind):
            made.append(deal_events.event(outcome, by=by, source=EventSource.IMPORT, **ids))
    return made
