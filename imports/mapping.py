"""Which column holds which field: guesses from the headers of common CRM exports.

Headers are compared after normalisation (lower case, anything but letters and digits
becomes one space), so "Deal - Title", "deal_title" and "Deal Title" are the same. The
aliases cover Pipedrive's exports ("Deal - Value"), HubSpot's ("Deal Stage", "Create
Date"), Salesforce's opportunity reports ("Opportunity Owner", "Account Name") and the
Maven Analytics sample set in ../shared/data/crm-sales-opportunities ("sales_agent",
"deal_stage", "close_value"). A guess is only a starting point: the preview shows it
and every field can be re-pointed, and a mapping can be saved under a name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from imports.models import ImportKind
from imports.parsing import squash


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    help: str = ""


def normalise(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", header.lower()).strip()


DEAL_FIELDS = (
    Field(
        "external_id",
        "External id",
        (
            "opportunity_id",
            "opportunity id",
            "deal id",
            "deal - id",
            "record id",
            "external id",
            "id",
        ),
        help="Re-importing a file updates the deals with the same id instead of duplicating.",
    ),
    Field(
        "title",
        "Title",
        ("title", "deal name", "deal - title", "opportunity name", "deal title", "name"),
        help="Without it: “product for organization”.",
    ),
    Field(
        "stage",
        "Stage",
        ("deal_stage", "stage", "deal - stage", "stage name", "pipeline stage"),
        required=True,
    ),
    Field(
        "status",
        "Status (open, won, lost)",
        ("status", "deal - status", "deal status"),
        help="Pipedrive keeps won and lost deals in their last stage and says so here.",
    ),
    Field(
        "owner",
        "Owner",
        (
            "sales_agent",
            "owner",
            "deal owner",
            "deal - owner",
            "opportunity owner",
            "owner name",
            "assigned to",
            "sales rep",
            "salesperson",
        ),
        help="A name, user name or e-mail address.",
    ),
    Field(
        "organization",
        "Organization",
        (
            "account",
            "organization",
            "deal - organization",
            "account name",
            "company",
            "company name",
            "associated company",
            "organization name",
        ),
        help="Matched by name, ignoring case; created when missing.",
    ),
    Field(
        "person",
        "Contact person",
        (
            "contact person",
            "deal - contact person",
            "primary contact",
            "contact",
            "contact name",
            "associated contact",
        ),
    ),
    Field(
        "amount",
        "Amount",
        (
            "close_value",
            "amount",
            "value",
            "deal - value",
            "deal value",
            "deal amount",
            "opportunity amount",
        ),
    ),
    Field(
        "currency",
        "Currency",
        (
            "currency",
            "deal - currency",
            "deal - currency of value",
            "currency of value",
            "deal currency",
            "opportunity currency",
        ),
    ),
    Field("product", "Product", ("product", "product name", "products", "deal - product")),
    Field(
        "created_date",
        "Created on",
        (
            "created date",
            "create date",
            "created",
            "deal - deal created",
            "deal created",
            "created at",
            "creation date",
            "add time",
        ),
    ),
    Field(
        "engage_date",
        "Engaged on",
        ("engage_date", "engage date", "engaged date", "engaged on"),
        help="The day the deal entered the “engaged” stage.",
    ),
    Field(
        "close_date",
        "Closed on",
        (
            "close_date",
            "close date",
            "closed date",
            "closed on",
            "deal - close time",
            "close time",
            "deal - won time",
            "won time",
        ),
        help="Closed deals: the day they closed. Open deals: the expected close date.",
    ),
    Field(
        "expected_close_date",
        "Expected close date",
        ("expected close date", "deal - expected close date", "expected close"),
    ),
    Field(
        "lost_reason",
        "Lost reason",
        ("lost reason", "deal - lost reason", "closed lost reason", "loss reason", "reason lost"),
    ),
    Field("next_step", "Next step", ("next step", "deal - next step")),
)

ORGANIZATION_FIELDS = (
    Field(
        "name",
        "Name",
        (
            "account",
            "account name",
            "organization",
            "organization - name",
            "organization name",
            "company",
            "company name",
            "name",
        ),
        required=True,
        help="Matched by name, ignoring case: existing organizations are updated.",
    ),
    Field("sector", "Sector", ("sector", "industry", "organization - industry")),
    Field(
        "employees",
        "Employees",
        (
            "employees",
            "number of employees",
            "employee count",
            "organization - number of employees",
        ),
    ),
    Field(
        "revenue",
        "Annual revenue",
        ("revenue", "annual revenue", "organization - annual revenue"),
    ),
    Field(
        "website",
        "Website",
        ("website", "website url", "company domain name", "domain", "organization - website"),
    ),
)

PERSON_FIELDS = (
    Field("name", "Full name", ("name", "full name", "contact name", "person - name")),
    Field("first_name", "First name", ("first name", "first_name", "person - first name")),
    Field("last_name", "Last name", ("last name", "last_name", "person - last name")),
    Field("email", "E-mail", ("email", "e mail", "email address", "person - email")),
    Field("phone", "Phone", ("phone", "phone number", "mobile", "person - phone")),
    Field("job_title", "Job title", ("job title", "title", "person - job title")),
    Field(
        "organization",
        "Organization",
        (
            "organization",
            "person - organization",
            "company",
            "company name",
            "account name",
            "associated company",
            "account",
        ),
    ),
)

ACTIVITY_FIELDS = (
    Field(
        "deal",
        "Deal (external id)",
        (
            "deal id",
            "deal - id",
            "activity - deal id",
            "opportunity id",
            "opportunity_id",
            "associated deal",
            "related to id",
        ),
        required=True,
        help="The external id of a deal imported before.",
    ),
    Field("type", "Type", ("type", "activity type", "activity - type", "task type")),
    Field(
        "subject",
        "Subject",
        ("subject", "activity - subject", "task subject", "title"),
        required=True,
    ),
    Field("due", "Due", ("due date", "due", "activity - due date", "activity date", "date")),
    Field("done", "Done", ("done", "completed", "activity - done", "status")),
    Field(
        "done_at",
        "Done on",
        ("done time", "completed date", "completed at", "activity - marked as done time"),
    ),
    Field(
        "owner",
        "Owner",
        ("owner", "assigned to", "activity - assigned to user", "activity owner"),
    ),
    Field("note", "Note", ("note", "notes", "activity - note", "description", "body")),
)

FIELDS: dict[str, tuple[Field, ...]] = {
    ImportKind.DEALS: DEAL_FIELDS,
    ImportKind.ORGANIZATIONS: ORGANIZATION_FIELDS,
    ImportKind.PEOPLE: PERSON_FIELDS,
    ImportKind.ACTIVITIES: ACTIVITY_FIELDS,
}

# Companion files: small tables read alongside a deals file.
TEAM_MEMBER_FIELDS = (
    Field("member", "Member", ("sales_agent", "sales agent", "agent", "rep", "member", "user")),
    Field("manager", "Manager", ("manager", "sales manager", "team manager")),
    Field("team", "Team", ("regional_office", "regional office", "team", "office", "region")),
)
PRODUCT_FIELDS = (
    Field("name", "Product", ("product", "product name", "name")),
    Field("price", "Price", ("sales_price", "sales price", "price", "list price", "unit price")),
)


def guess_columns(headers: Iterable[str], fields: Iterable[Field]) -> dict[str, str]:
    """{field name: header} for every field one of whose aliases is a header.

    Aliases are tried in the order listed, so the most specific one wins; a header
    feeds at most one field.
    """
    by_normal: dict[str, str] = {}
    for header in headers:
        by_normal.setdefault(normalise(header), header)
    taken: set[str] = set()
    guessed: dict[str, str] = {}
    for item in fields:
        for alias in item.aliases:
            header = by_normal.get(normalise(alias))
            if header is not None and header not in taken:
                guessed[item.name] = header
                taken.add(header)
                break
    return guessed


def looks_like(headers: Iterable[str], fields: Iterable[Field], needed: Iterable[str]) -> bool:
    guessed = guess_columns(headers, fields)
    return all(name in guessed for name in needed)


SAMPLE_HEADERS = {"opportunity id", "sales agent", "deal stage", "close value"}


def is_sample_data(headers: Iterable[str]) -> bool:
    """The Maven Analytics "CRM Sales Opportunities" pipeline file (the worked example)."""
    return {normalise(h) for h in headers} >= SAMPLE_HEADERS


# File stage values that mean a kind or a place in the pipeline rather than a name.
WON_VALUES = {"won", "closedwon", "closed won", "win", "deal won"}
LOST_VALUES = {"lost", "closedlost", "closed lost", "deal lost"}
FIRST_OPEN_VALUES = {"prospecting", "prospect", "lead", "new", "leadin", "appointmentscheduled"}
SECOND_OPEN_VALUES = {"engaging", "engaged", "qualified", "qualification", "qualifiedtobuy"}


@dataclass(frozen=True)
class StageChoice:
    pk: int
    name: str
    kind: str
    position: int


def guess_stage(value: str, stages: list[StageChoice]) -> int | None:
    """The stage a file's stage value most likely means, or None to ask the user.

    A stage of the same name wins; otherwise won/lost words go to the pipeline's won/
    lost stage, and the sample set's Prospecting/Engaging to its first/second open stage.
    """
    key = squash(value)
    for stage in stages:
        if squash(stage.name) == key:
            return stage.pk
    opened = [s for s in stages if s.kind == "open"]
    if key in {squash(v) for v in WON_VALUES}:
        return next((s.pk for s in stages if s.kind == "won"), None)
    if key in {squash(v) for v in LOST_VALUES}:
        return next((s.pk for s in stages if s.kind == "lost"), None)
    if key in FIRST_OPEN_VALUES and opened:
        return opened[0].pk
    if key in SECOND_OPEN_VALUES and len(opened) > 1:
        return opened[1].pk
    return None


STATUS_WON = {"won", "closedwon", "win"}
STATUS_LOST = {"lost", "closedlost"}


def status_kind(value: str) -> str:
    """ "won", "lost" or "open" for a Pipedrive-style status cell."""
    key = squash(value)
    if key in STATUS_WON:
        return "won"
    if key in STATUS_LOST:
        return "lost"
    return "open"


# Industry names a sector may be a misspelling of ("technolgy" → "technology").
SECTORS = (
    "agriculture",
    "automotive",
    "construction",
    "consulting",
    "education",
    "employment",
    "energy",
    "entertainment",
    "finance",
    "government",
    "healthcare",
    "hospitality",
    "insurance",
    "legal",
    "logistics",
    "manufacturing",
    "marketing",
    "media",
    "medical",
    "real estate",
    "retail",
    "services",
    "software",
    "technology",
    "telecommunications",
    "transportation",
)


def correct_sector(value: str, known: Iterable[str] = ()) -> str:
    """The sector as written, or the known sector it is an obvious misspelling of."""
    text = value.strip()
    candidates = {s.lower(): s for s in (*SECTORS, *known) if s}
    if not text or text.lower() in candidates:
        return text
    close = difflib.get_close_matches(text.lower(), list(candidates), n=1, cutoff=0.85)
    return candidates[close[0]] if close else text


def correct_product(value: str, known: dict[str, str]) -> str:
    """The product's known spelling when it differs only in spaces, case or punctuation.

    `known` maps squash(name) → name (from a products file and existing deals).
    """
    text = value.strip()
    return known.get(squash(text), text) if text else text


@dataclass
class Mapping:
    """A job's mapping, as stored in ImportJob.mapping (JSON)."""

    columns: dict[str, str] = field(default_factory=dict)
    stages: dict[str, int | None] = field(default_factory=dict)
    owners: dict[str, int | None] = field(default_factory=dict)
    date_order: str = "auto"
    detected_date_order: str = ""
    default_lost_reason: str = ""
    engaged_stage: int | None = None
    default_currency: str = "USD"
    revenue_unit: int = 1
    create_missing: bool = False
    encoding: str = "utf-8-sig"
    delimiter: str = ","

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Mapping:
        data = data or {}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        mapping = cls(**known)
        mapping.stages = {str(k): _int_or_none(v) for k, v in mapping.stages.items()}
        mapping.owners = {str(k): _int_or_none(v) for k, v in mapping.owners.items()}
        mapping.engaged_stage = _int_or_none(mapping.engaged_stage)
        return mapping

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def column(self, name: str) -> str:
        return self.columns.get(name, "")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def sample_defaults(mapping: Mapping) -> Mapping:
    """The worked example's choices: what its Lost rows lack, and how its revenue is given.

    The sample's lost deals carry no reason, and a lost deal needs one (DESIGN); they get
    "Lost (imported)" and every such row is reported as a warning. Its accounts file
    gives revenue in millions.
    """
    mapping.default_lost_reason = mapping.default_lost_reason or "Lost (imported)"
    mapping.revenue_unit = 1_000_000
    return mapping
