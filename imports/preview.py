"""What an import will do, before it does it: a scan of the file and a dry run of its rows.

`scan` reads the whole file once, cheaply (no conversion): rows, the distinct values of
the stage, status and owner columns (so every unknown stage or owner can be mapped in
one step) and what the dates say about day/month order. `build` converts the first
PREVIEW_SCAN rows exactly as the import will (rows.DealContext) without saving anything,
and keeps the first PREVIEW_ROWS for the table. Its queries are fixed in number: users,
stages, criteria, products, and one lookup of existing ids and organization names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from django.db.models.functions import Lower

from contacts.models import Organization
from deals.models import Deal
from imports.mapping import FIELDS, Field, Mapping
from imports.models import ImportJob, ImportKind
from imports.parsing import DMY, MDY, DateOrderEvidence
from imports.rows import KINDS, DealContext, DealRecord, OwnerIndex, Problem
from imports.source import Dialect, Reader
from imports.writers import SNAPSHOT, UPDATABLE

if TYPE_CHECKING:
    from accounts.models import User

PREVIEW_ROWS = 20
PREVIEW_SCAN = 20_000
MAX_DISTINCT = 300
DATE_FIELDS = (
    "created_date",
    "engage_date",
    "close_date",
    "expected_close_date",
    "due",
    "done_at",
)
SCANNED_FIELDS = ("stage", "status", "owner")


@dataclass
class Scan:
    rows: int = 0
    values: dict[str, dict[str, int]] = field(default_factory=dict)
    date_verdict: str = "iso"
    date_example: str = ""
    columns: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "values": self.values,
            "date_verdict": self.date_verdict,
            "date_example": self.date_example,
            "columns": self.columns,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Scan | None:
        return cls(**data) if data else None


def scanned_columns(mapping: Mapping) -> dict[str, str]:
    return {name: mapping.column(name) for name in (*SCANNED_FIELDS, *DATE_FIELDS)}


def scan(job: ImportJob, mapping: Mapping) -> Scan:
    """One streamed pass over the whole file: cheap enough for 100,000 rows in a request."""
    result = Scan(columns=scanned_columns(mapping))
    counters = {name: Counter[str]() for name in SCANNED_FIELDS if mapping.column(name)}
    dates = [mapping.column(n) for n in DATE_FIELDS if mapping.column(n)]
    evidence = DateOrderEvidence()
    with job.file.open("rb") as binary:
        reader = Reader(binary, Dialect(mapping.encoding, mapping.delimiter))
        for row in reader:
            result.rows += 1
            for name, counter in counters.items():
                value = row.values.get(mapping.column(name), "").strip()
                if value and (value in counter or len(counter) < MAX_DISTINCT):
                    counter[value] += 1
            for header in dates:
                evidence.observe(row.values.get(header, ""))
        reader.close()
    result.values = {name: dict(counter.most_common()) for name, counter in counters.items()}
    result.date_verdict = evidence.verdict
    result.date_example = evidence.example
    return result


@dataclass
class PreviewRow:
    line: int
    action: str  # create, update, fail, skip
    cells: list[tuple[str, str]]  # (label, value) as it will be saved
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


@dataclass
class Preview:
    job: ImportJob
    mapping: Mapping
    headers: list[str]
    fields: tuple[Field, ...]
    scan: Scan
    rows: list[PreviewRow] = field(default_factory=list)
    scanned: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    problems: list[dict[str, Any]] = field(default_factory=list)
    unknown_owners: list[tuple[str, int]] = field(default_factory=list)
    stage_values: list[tuple[str, int, int | None]] = field(default_factory=list)
    new_organizations: int = 0
    ignored_headers: list[str] = field(default_factory=list)
    missing_required: list[Field] = field(default_factory=list)

    @property
    def date_orders(self) -> dict[str, str]:
        from imports.parsing import DATE_ORDERS

        return DATE_ORDERS

    @property
    def effective_date_order(self) -> str:
        if self.mapping.date_order in (DMY, MDY):
            return self.mapping.date_order
        return self.scan.date_verdict if self.scan.date_verdict in (DMY, MDY) else MDY

    @property
    def action_counts(self) -> list[tuple[str, int]]:
        # A list: templates look `items` up as a key first, and a Counter answers 0.
        return sorted(self.actions.items())

    @property
    def writes(self) -> int:
        """Rows the import will write, as far as the preview can tell: the checked rows that
        would be created or changed, plus every row beyond the checked ones."""
        unwritten = sum(self.actions[a] for a in ("fail", "skip", "unchanged"))
        return self.job.total_rows - unwritten

    @property
    def ready(self) -> bool:
        return not self.missing_required and (
            self.job.kind != ImportKind.DEALS or self.job.pipeline_id is not None
        )


def _tally(problems: list[Problem]) -> list[dict[str, Any]]:
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for problem in problems:
        entry = entries.setdefault(
            (problem.kind, problem.column),
            {
                "kind": problem.kind,
                "label": KINDS[problem.kind][0],
                "error": KINDS[problem.kind][1],
                "column": problem.column,
                "count": 0,
                "examples": [],
            },
        )
        entry["count"] += 1
        if len(entry["examples"]) < 3:
            entry["examples"].append(f"line {problem.line}: {problem.message}")
    return sorted(entries.values(), key=lambda e: (not e["error"], -e["count"]))


def _deal_cells(record: DealRecord) -> list[tuple[str, str]]:
    history = " → ".join(f"{s.stage.name} {s.at:%Y-%m-%d}" for s in record.steps)
    owner = record.owner.display_name if record.owner else record.owner_name
    amount = "" if record.amount is None else f"{record.currency} {record.amount:,.2f}"
    return [
        ("Id", record.external_id),
        ("Title", record.title),
        ("Organization", record.organization),
        ("Owner", owner),
        ("Stage history", history),
        ("Amount", amount),
        ("Product", record.product),
        (
            "Expected close",
            record.expected_close_date.isoformat() if record.expected_close_date else "",
        ),
        ("Lost reason", record.lost_reason),
    ]


def build(job: ImportJob, *, by: User, scan_result: Scan) -> Preview:
    mapping = Mapping.from_json(job.mapping)
    mapping.detected_date_order = scan_result.date_verdict
    fields = FIELDS[job.kind]
    with job.file.open("rb") as binary:
        reader = Reader(binary, Dialect(mapping.encoding, mapping.delimiter))
        headers = reader.headers
        rows = list(islice(iter(reader), PREVIEW_SCAN))
        reader.close()
    preview = Preview(job=job, mapping=mapping, headers=headers, fields=fields, scan=scan_result)
    used = set(mapping.columns.values())
    preview.ignored_headers = [h for h in headers if h not in used]
    preview.missing_required = [f for f in fields if f.required and not mapping.column(f.name)]
    preview.scanned = len(rows)
    if preview.missing_required:
        return preview
    if job.kind == ImportKind.DEALS:
        if job.pipeline is None:
            return preview
        _build_deals(preview, rows, by=by)
    else:
        _build_other(preview, rows, by=by)
    return preview


def _build_deals(preview: Preview, rows: list, *, by: User) -> None:
    job, mapping = preview.job, preview.mapping
    ctx = DealContext(
        by=by,
        mapping=mapping,
        pipeline=job.pipeline,
        reference=job.reference,
        override_reason=job.override_reason,
    )
    records = [ctx.convert(row) for row in rows]
    ids = [r.external_id for r in records if r.external_id]
    existing = {
        values["external_id"]: values
        for values in (
            Deal.objects.filter(external_id__in=ids).values(
                *SNAPSHOT,
                organization_name=Lower("organization__name"),
                person_name=Lower("person__name"),
            )
            if ids
            else ()
        )
    }
    problems: list[Problem] = []
    for record in records:
        found = existing.get(record.external_id)
        if found is not None and record.ok:
            action = "unchanged" if _unchanged(record, found) else "update"
        else:
            # Every problem at once: the gate is checked even while, say, the owner is
            # still unknown, so fixing one thing does not reveal the next.
            ctx.judge(record)
            action = "create" if record.ok else "fail"
        if any(p.kind == "duplicate_id" for p in record.problems):
            action = "skip"
        preview.actions[action] += 1
        problems.extend(record.problems)
        if len(preview.rows) < PREVIEW_ROWS:
            preview.rows.append(
                PreviewRow(record.line, action, _deal_cells(record), record.problems)
            )
    stage_counts = preview.scan.values.get("stage", {})
    preview.stage_values = [
        (value, count, mapping.stages.get(value)) for value, count in stage_counts.items()
    ]
    preview.unknown_owners = owners_to_assign(ctx.owners, preview.scan, mapping)
    names = {r.organization.lower() for r in records if r.organization}
    reference = {
        row["values"]
        .get(job.reference["organizations"]["mapping"]["columns"].get("name"), "")
        .strip()
        .lower()
        for row in job.reference.get("organizations", {}).get("rows", [])
    }
    known = set(
        Organization.objects.annotate(lower=Lower("name"))
        .filter(lower__in=names)
        .values_list("lower", flat=True)
        if names
        else ()
    )
    preview.new_organizations = len(names - known - reference)
    preview.problems = _tally(problems + _companion_problems(job, by))


def _unchanged(record: DealRecord, found: dict[str, Any]) -> bool:
    """Whether importing `record` over the deal `found` would change nothing, judged as
    `DealWriter.update` judges it (an empty cell leaves a field alone)."""
    for name in UPDATABLE:
        value = getattr(record, name)
        if value not in (None, "") and value != found[name]:
            return False
    if record.organization and record.organization.lower() != found["organization_name"]:
        return False
    if record.person and record.person.lower() != found["person_name"]:
        return False
    if record.stage is not None and record.stage.pk != found["stage_id"]:
        return False
    return record.owner is None or record.owner.pk == found["owner_id"]


def _companion_problems(job: ImportJob, by: User) -> list[Problem]:
    """What the organizations file will report (read, not saved)."""
    from imports.organizations import OrganizationWriter
    from imports.runner import companion_problem
    from imports.source import Row

    organizations = job.reference.get("organizations")
    if not organizations:
        return []
    writer = OrganizationWriter(job, Mapping.from_json(organizations["mapping"]), by=by)
    found: list[Problem] = []
    for row in organizations["rows"]:
        _values, problems = writer.convert(Row(row["line"], row["values"]))
        found.extend(companion_problem(p) for p in problems)
    return found


def owners_to_assign(owners: OwnerIndex, found: Scan, mapping: Mapping) -> list[tuple[str, int]]:
    """Owner values no user matches (or not one the importer may assign), and those the
    user has assigned by hand, so an assignment can be changed again."""
    listed = []
    for value, count in found.values.get("owner", {}).items():
        user = owners.find(value)
        if value in mapping.owners or user is None or not owners.may_own(user):
            listed.append((value, count))
    return listed


def _build_other(preview: Preview, rows: list, *, by: User) -> None:
    from imports.activities import ActivityWriter
    from imports.organizations import OrganizationWriter, PersonWriter

    job, mapping = preview.job, preview.mapping
    if job.kind == ImportKind.ORGANIZATIONS:
        writer: Any = OrganizationWriter(job, mapping, by=by)
    elif job.kind == ImportKind.PEOPLE:
        writer = PersonWriter(job, mapping, by=by)
    else:
        writer = ActivityWriter(job, mapping, by=by, date_order=preview.effective_date_order)
        preview.unknown_owners = owners_to_assign(writer.owners, preview.scan, mapping)
    problems: list[Problem] = []
    labels = {f.name: f.label for f in preview.fields}
    for row in rows:
        values, found = writer.convert(row)
        action = "fail" if any(p.is_error for p in found) else "import"
        if any(p.kind == "duplicate_id" for p in found):
            action = "skip"
        preview.actions[action] += 1
        problems.extend(found)
        if len(preview.rows) < PREVIEW_ROWS:
            cells = [
                (labels.get(name, name.replace("_", " ").capitalize()), _text(value))
                for name, value in values.items()
            ]
            preview.rows.append(PreviewRow(row.line, action, cells, found))
    preview.problems = _tally(problems)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "display_name"):
        return value.display_name
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
