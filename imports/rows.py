"""From a CSV row to the deal it will become: values read, references resolved, gate judged.

The preview (which saves nothing) and the runner (which saves) both go through
`DealContext.convert` and `DealContext.judge`, so what the preview shows is what the
import does. Problems are per row and column; errors keep a row out, warnings do not.

History from dates. A file holds at most three dates per deal (created, engaged,
closed). The deal's history gets one stage entry per date it holds, oldest first:

- an open deal enters its stage on its engage date (else its created date, else now);
  when it has both, it first enters the pipeline's first open stage on the created date;
- a closed deal enters the first open stage on its created date, the "engaged stage"
  on its engage date (the stage column's stage when a status column says won/lost,
  else the mapping's engaged stage), and Won/Lost on its close date (else now, with a
  warning). Consecutive entries of the same stage collapse; dates out of order are an
  error. Dates become noon in TIME_ZONE, so the day is the same for every viewer.

The gate. A new deal is judged exactly as `create_deal` then `move_deal` would judge it,
step by step along that history, by `stages.gate.evaluate_many` with the stage's
criteria loaded once per import: `ImportFacts` gives the gate the facts such a deal has
(no activities, contact roles or checklist ticks yet; its history so far), and the
"current time" of each step is the step's date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from accounts import policy
from deals.models import Deal
from imports.mapping import (
    Mapping,
    correct_product,
    guess_stage,
    normalise,
    status_kind,
)
from imports.parsing import DMY, MDY, ParseError, parse_amount, parse_date, squash
from imports.source import Row
from stages import gate
from stages.models import EntryCriterion, Pipeline, Stage, StageKind

if TYPE_CHECKING:
    from accounts.models import User

# kind: (label for summaries, is an error)
KINDS: dict[str, tuple[str, bool]] = {
    "missing": ("Missing value", True),
    "unknown_stage": ("Unknown stage", True),
    "unknown_owner": ("Unknown owner", True),
    "owner_out_of_scope": ("Owner outside your teams", True),
    "bad_amount": ("Bad amount", True),
    "bad_date": ("Bad date", True),
    "bad_value": ("Bad value", True),
    "dates_out_of_order": ("Dates out of order", True),
    "duplicate_id": ("Duplicate id in file", True),
    "gate": ("Blocked by entry criteria", True),
    "not_editable": ("Deal you may not change", True),
    "ambiguous_match": ("Ambiguous match", True),
    "unknown_deal": ("Unknown deal", True),
    "gate_overridden": ("Entry criteria overridden", False),
    "product_spelling": ("Product spelling corrected", False),
    "sector_spelling": ("Sector spelling corrected", False),
    "lost_reason_default": ("Lost reason filled in", False),
    "no_organization": ("No organization", False),
    "no_close_date": ("Closed without a close date", False),
    "new_owner": ("Owner to be created", False),
    "not_updated": ("Value not updated", False),
}


@dataclass(frozen=True)
class Problem:
    line: int
    column: str
    kind: str
    message: str

    @property
    def is_error(self) -> bool:
        return KINDS[self.kind][1]

    @property
    def label(self) -> str:
        return KINDS[self.kind][0]


@dataclass(frozen=True)
class Step:
    stage: Stage
    at: datetime


@dataclass
class DealRecord:
    """One row as it will be saved (or why it will not be)."""

    line: int
    external_id: str = ""
    title: str = ""
    owner: User | None = None
    owner_name: str = ""  # an unknown owner the import will create (create_missing)
    organization: str = ""
    person: str = ""
    amount: Decimal | None = None
    currency: str = "USD"
    product: str = ""
    expected_close_date: date | None = None
    lost_reason: str = ""
    next_step: str = ""
    steps: list[Step] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Gate failures per step index, kept to be recorded as overridden when imported.
    overridden: dict[int, list[gate.Failure]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)

    @property
    def stage(self) -> Stage | None:
        return self.steps[-1].stage if self.steps else None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]


@dataclass
class Candidate:
    """What the gate reads of a deal that does not exist yet (attribute for attribute)."""

    amount: Decimal | None
    expected_close_date: date | None
    next_step: str
    lost_reason: str
    # The gate asks only whether these are set; the organization or contact named in the
    # row is created with the deal, so a placeholder stands for it here.
    organization_id: int | None
    person_id: int | None
    stage_id: int | None = None
    stage_entered_at: datetime | None = None
    pk: None = None


@dataclass
class ImportFacts(gate.DealFacts):
    """The gate's facts about a deal being imported: nothing but its history so far."""

    past: list[tuple[int, datetime]] = field(default_factory=list)

    def done_activity_types(self) -> set[str]:
        return set()

    def contact_roles(self) -> set[str]:
        return set()

    def ticked(self) -> set[int]:
        return set()

    def history(self) -> list[tuple[int, datetime]]:
        return self.past


def noon(day: date) -> datetime:
    """Noon of `day` in TIME_ZONE (the settings' zone, whoever runs the import)."""
    return _noon(day, timezone.get_default_timezone())


@lru_cache(maxsize=4096)
def _noon(day: date, zone: tzinfo) -> datetime:
    # Cached: a file's dates repeat, and making a datetime aware is not free.
    return timezone.make_aware(datetime.combine(day, time(12)), zone)


class OwnerIndex:
    """Owners by e-mail, user name or full name (case-insensitive), and who may own.

    One query for the users; a manager may only import deals owned by themselves or by
    members of teams they manage (the permission matrix), an admin for anyone.
    """

    def __init__(self, by: User, mapped: dict[str, int | None]) -> None:
        from accounts.models import User as UserModel

        users = list(UserModel.objects.filter(is_active=True).select_related("team"))
        self.users = {u.pk: u for u in users}
        self.by_key: dict[str, User] = {}
        for user in users:
            for key in (user.email, user.username, user.get_full_name()):
                if key:
                    self.by_key.setdefault(normalise(key), user)
        self.mapped = mapped
        self.by = by

    def find(self, value: str) -> User | None:
        if value in self.mapped:
            return self.users.get(self.mapped[value] or 0)
        return self.by_key.get(normalise(value))

    def may_own(self, user: User) -> bool:
        return policy.can_assign_to(self.by, user)


PLACEHOLDER_ID = -1


class DealContext:
    """Everything a deals import looks up, loaded once: a fixed number of queries."""

    def __init__(
        self,
        *,
        by: User,
        mapping: Mapping,
        pipeline: Pipeline,
        reference: dict[str, Any] | None = None,
        override_reason: str = "",
    ) -> None:
        self.by = by
        self.mapping = mapping
        self.pipeline = pipeline
        self.override_reason = override_reason if policy.can_override_gate(by) else ""
        reference = reference or {}
        active = list(Stage.objects.filter(pipeline=pipeline, is_archived=False))
        self.stages = {s.pk: s for s in active}
        opened = sorted((s for s in active if s.is_open), key=lambda s: (s.position, s.pk))
        self.entry_stage = opened[0] if opened else None
        self.won = next((s for s in active if s.kind == StageKind.WON), None)
        self.lost = next((s for s in active if s.kind == StageKind.LOST), None)
        self.stage_for = {
            value: self.stages[pk] for value, pk in mapping.stages.items() if pk in self.stages
        }
        engaged = self.stages.get(mapping.engaged_stage or 0)
        if engaged is None:
            engaged = next(
                (s for v, s in self.stage_for.items() if squash(v) == "engaging" and s.is_open),
                opened[1] if len(opened) > 1 else None,
            )
        self.engaged_stage = engaged
        self.criteria: dict[int, list[EntryCriterion]] = {pk: [] for pk in self.stages}
        for criterion in EntryCriterion.objects.filter(stage__in=active):
            self.criteria[criterion.stage_id].append(criterion)
        self.owners = OwnerIndex(by, mapping.owners)
        known_products = {
            squash(name): name
            for name in Deal.objects.exclude(product="")
            .order_by()
            .values_list("product", flat=True)
            .distinct()
        }
        known_products.update({squash(n): n for n in reference.get("products", [])})
        self.products = known_products
        order = mapping.date_order
        if order not in (DMY, MDY):
            order = (
                mapping.detected_date_order if mapping.detected_date_order in (DMY, MDY) else MDY
            )
        self.date_order = order
        self.seen: dict[str, int] = {}
        self.now = timezone.now()

    # -- reading one row -------------------------------------------------------------

    def _get(self, row: Row, name: str) -> str:
        header = self.mapping.columns.get(name)
        return row.values.get(header, "").strip() if header else ""

    def _date(self, row: Row, name: str, record: DealRecord) -> date | None:
        try:
            return parse_date(self._get(row, name), self.date_order)
        except ParseError as error:
            record.problems.append(
                Problem(row.line, self.mapping.columns[name], "bad_date", error.message)
            )
            return None

    def convert(self, row: Row) -> DealRecord:
        record = DealRecord(line=row.line, currency=self.mapping.default_currency)
        columns = self.mapping.columns
        add = record.problems.append

        record.external_id = self._get(row, "external_id")[:100]
        if record.external_id:
            first = self.seen.setdefault(record.external_id, row.line)
            if first != row.line:
                add(
                    Problem(
                        row.line,
                        columns["external_id"],
                        "duplicate_id",
                        f"Id “{record.external_id}” is also on line {first}; "
                        "only the first is imported",
                    )
                )
                return record

        try:
            record.amount, symbol_code = parse_amount(self._get(row, "amount"))
        except ParseError as error:
            add(Problem(row.line, columns["amount"], "bad_amount", error.message))
            symbol_code = ""
        currency = self._get(row, "currency").upper()
        if currency and (len(currency) != 3 or not currency.isalpha()):
            add(
                Problem(
                    row.line,
                    columns["currency"],
                    "bad_value",
                    f"“{currency}” is not a currency code (USD, EUR, …)",
                )
            )
        record.currency = currency or symbol_code or self.mapping.default_currency

        record.organization = self._get(row, "organization")[:200]
        if "organization" in columns and not record.organization:
            add(Problem(row.line, columns["organization"], "no_organization", "No organization"))
        record.person = self._get(row, "person")[:200]
        record.next_step = self._get(row, "next_step")[:200]
        product = self._get(row, "product")
        record.product = correct_product(product, self.products)[:100]
        if record.product != product:
            add(
                Problem(
                    row.line,
                    columns["product"],
                    "product_spelling",
                    f"Product “{product}” read as “{record.product}”",
                )
            )
        self._owner(row, record)
        self._stages(row, record)
        record.title = (self._get(row, "title") or self._title(record))[:200]
        return record

    def _title(self, record: DealRecord) -> str:
        if record.product and record.organization:
            return f"{record.product} for {record.organization}"
        named = record.product or record.organization
        if named and record.external_id:
            return f"{named} ({record.external_id})"
        return named or record.external_id or f"Imported deal (line {record.line})"

    def _owner(self, row: Row, record: DealRecord) -> None:
        value = self._get(row, "owner")
        if not value:
            record.owner = self.by
            return
        column = self.mapping.columns["owner"]
        user = self.owners.find(value)
        if user is None:
            if self.mapping.create_missing and policy.can_create_users_on_import(self.by):
                record.owner_name = value
                record.problems.append(
                    Problem(row.line, column, "new_owner", f"“{value}” will be created as a rep")
                )
            else:
                record.problems.append(
                    Problem(row.line, column, "unknown_owner", f"No user matches owner “{value}”")
                )
        elif not self.owners.may_own(user):
            record.problems.append(
                Problem(
                    row.line,
                    column,
                    "owner_out_of_scope",
                    f"{user.display_name} is not in a team you manage",
                )
            )
        else:
            record.owner = user

    def _stages(self, row: Row, record: DealRecord) -> None:
        columns = self.mapping.columns
        value = self._get(row, "stage")
        stage = self.stage_for.get(value) if value else None
        if not value:
            record.problems.append(
                Problem(row.line, columns.get("stage", ""), "missing", "No stage")
            )
        elif stage is None:
            record.problems.append(
                Problem(
                    row.line,
                    columns["stage"],
                    "unknown_stage",
                    f"Stage “{value}” is not mapped to a stage of {self.pipeline.name}",
                )
            )
        created = self._date(row, "created_date", record)
        engaged = self._date(row, "engage_date", record)
        closed = self._date(row, "close_date", record)
        expected = self._date(row, "expected_close_date", record)
        if stage is None:
            return
        final, before = stage, None
        status = status_kind(self._get(row, "status")) if "status" in columns else "open"
        if status in ("won", "lost"):
            final = self.won if status == "won" else self.lost
            before = stage if stage.is_open else None
            if final is None:
                record.problems.append(
                    Problem(
                        row.line,
                        columns["status"],
                        "unknown_stage",
                        f"{self.pipeline.name} has no {status} stage",
                    )
                )
                return
        lost_reason = self._get(row, "lost_reason")[:200]
        if final.is_lost and not lost_reason and self.mapping.default_lost_reason:
            lost_reason = self.mapping.default_lost_reason
            record.problems.append(
                Problem(
                    row.line,
                    columns.get("lost_reason", columns["stage"]),
                    "lost_reason_default",
                    f"No lost reason: “{lost_reason}”",
                )
            )
        record.lost_reason = lost_reason if final.is_lost else ""
        record.expected_close_date = expected or closed
        plan: list[tuple[Stage | None, date | None]]
        if final.is_open:
            if created and engaged:
                plan = [(self.entry_stage, created), (final, engaged)]
            else:
                plan = [(final, engaged or created)]
        else:
            plan = []
            if created:
                plan.append((self.entry_stage, created))
            if engaged:
                plan.append((before or self.engaged_stage, engaged))
            if closed is None:
                record.problems.append(
                    Problem(
                        row.line,
                        columns.get("close_date", columns["stage"]),
                        "no_close_date",
                        f"{final.name} without a close date: closed on the import day",
                    )
                )
            plan.append((final, closed))
        steps: list[Step] = []
        previous: date | None = None
        for step_stage, day in plan:
            if day is not None and previous is not None and day < previous:
                record.problems.append(
                    Problem(
                        row.line,
                        columns.get("close_date") or columns["stage"],
                        "dates_out_of_order",
                        f"{day.isoformat()} is before {previous.isoformat()}",
                    )
                )
                return
            previous = day or previous
            if step_stage is None or (steps and steps[-1].stage.pk == step_stage.pk):
                continue
            steps.append(Step(step_stage, noon(day) if day else self.now))
        record.steps = steps

    # -- the gate ----------------------------------------------------------------------

    def judge(self, record: DealRecord) -> None:
        """Walk the record's history through the gate, as create_deal then move_deal would.

        Failures become "gate" errors, or, when the importer gave an override reason,
        are kept on the record to be written on the stage change (and reported as
        warnings).
        """
        if not record.steps:
            return
        candidate = Candidate(
            amount=record.amount,
            expected_close_date=record.expected_close_date,
            next_step=record.next_step,
            lost_reason=record.lost_reason,
            organization_id=PLACEHOLDER_ID if record.organization else None,
            person_id=PLACEHOLDER_ID if record.person else None,
        )
        past: list[tuple[int, datetime]] = []
        column = self.mapping.columns.get("stage", "")
        for index, step in enumerate(record.steps):
            if index == 0:
                candidate.stage_id, candidate.stage_entered_at = step.stage.pk, step.at
            facts = ImportFacts(candidate, now=step.at, past=list(past))
            failures = gate.evaluate_many(
                candidate, [step.stage], criteria=self.criteria[step.stage.pk], facts=facts
            )[step.stage.pk]
            if failures:
                needs = "; ".join(f.message for f in failures)
                if self.override_reason:
                    record.overridden[index] = failures
                    record.problems.append(
                        Problem(
                            record.line,
                            column,
                            "gate_overridden",
                            f"{step.stage.name}: {needs} (overridden)",
                        )
                    )
                else:
                    record.problems.append(
                        Problem(record.line, column, "gate", f"{step.stage.name}: {needs}")
                    )
            past.append((step.stage.pk, step.at))
            candidate.stage_id, candidate.stage_entered_at = step.stage.pk, step.at


def guess_stages(values: list[str], pipeline: Pipeline) -> dict[str, int | None]:
    from imports.mapping import StageChoice

    choices = [
        StageChoice(s.pk, s.name, s.kind, s.position)
        for s in Stage.objects.filter(pipeline=pipeline, is_archived=False).order_by(
            "position", "id"
        )
    ]
    return {value: guess_stage(value, choices) for value in values}
