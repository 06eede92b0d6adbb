"""Organizations and people: matched by name (or e-mail), created or updated in bulk.

A deals import uses the caches to resolve the organization and contact named on each
row; the writers serve the organizations and people imports (and the organizations file
that comes with a deals import).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from contacts import resolve
from contacts.models import Organization, Person
from imports.mapping import Mapping, correct_sector
from imports.parsing import (
    ParseError,
    parse_amount,
    parse_int,
)
from imports.records import ORGANIZATION, PERSON, Outcome, Recorder, as_json, outcome_of
from imports.rows import Problem
from imports.source import Row

if TYPE_CHECKING:
    from accounts.models import User
    from imports.models import ImportJob


# -- organizations and people (also used by a deals import) --------------------------------


class OrganizationCache:
    """Organization ids by lower-case name, filled from the database a batch at a time."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def load(self, names: set[str], *, by: User) -> None:
        """Match names among the organizations `by` may see (`contacts.resolve`): another
        team's organization is never attached or updated, a new one is made instead."""
        missing = {n for n in names if n and n not in self.ids}
        if not missing:
            return
        for lower, pk in resolve.organization_ids_named(missing, by=by).items():
            self.ids.setdefault(lower, pk)

    def ensure(self, names: dict[str, str], *, by: User, recorder: Recorder) -> None:
        """Create the organizations among `names` (lower → as written) that do not exist."""
        self.load(set(names), by=by)
        new = [
            Organization(name=name, created_by=by)
            for lower, name in names.items()
            if lower and lower not in self.ids
        ]
        Organization.objects.bulk_create(new)
        for organization in new:
            self.ids[organization.name.lower()] = organization.pk
            recorder.created(ORGANIZATION, organization.pk)


class PersonCache:
    """Person ids by (lower-case name, organization id)."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, int | None], int] = {}

    def ensure(
        self, wanted: dict[tuple[str, int | None], str], *, by: User, recorder: Recorder
    ) -> None:
        missing = {key for key in wanted if key not in self.ids}
        if missing:
            names = {name for name, _org in missing}
            rows = resolve.people_matching(names, by=by).values_list(
                "lower", "organization_id", "id"
            )
            for lower, organization_id, pk in rows:
                self.ids.setdefault((lower, organization_id), pk)
        new = [
            Person(name=wanted[key], organization_id=key[1], created_by=by)
            for key in wanted
            if key not in self.ids
        ]
        Person.objects.bulk_create(new)
        for person in new:
            self.ids[(person.name.lower(), person.organization_id)] = person.pk
            recorder.created(PERSON, person.pk)


ORGANIZATION_DETAILS = ("sector", "employees", "annual_revenue", "website")


class OrganizationWriter:
    """Organizations matched by name (ignoring case): new ones created, others updated.

    Only filled cells change an organization: a blank cell never erases what is known.
    """

    def __init__(self, job: ImportJob, mapping: Mapping, *, by: User) -> None:
        self.job = job
        self.mapping = mapping
        self.by = by
        self.seen: dict[str, int] = {}

    def _get(self, row: Row, name: str) -> str:
        header = self.mapping.columns.get(name)
        return row.values.get(header, "").strip() if header else ""

    def convert(self, row: Row) -> tuple[dict[str, Any], list[Problem]]:
        columns = self.mapping.columns
        problems: list[Problem] = []
        values: dict[str, Any] = {"name": self._get(row, "name")[:200]}
        if not values["name"]:
            problems.append(Problem(row.line, columns.get("name", ""), "missing", "No name"))
            return values, problems
        first = self.seen.setdefault(values["name"].lower(), row.line)
        if first != row.line:
            problems.append(
                Problem(
                    row.line,
                    columns["name"],
                    "duplicate_id",
                    f"“{values['name']}” is also on line {first}; only the first is imported",
                )
            )
            return values, problems
        sector = self._get(row, "sector")
        values["sector"] = correct_sector(sector)[:100]
        if values["sector"] != sector:
            problems.append(
                Problem(
                    row.line,
                    columns["sector"],
                    "sector_spelling",
                    f"Sector “{sector}” read as “{values['sector']}”",
                )
            )
        try:
            values["employees"] = parse_int(self._get(row, "employees"))
        except ParseError as error:
            problems.append(Problem(row.line, columns["employees"], "bad_value", error.message))
        try:
            revenue, _code = parse_amount(self._get(row, "revenue"))
            if revenue is not None:
                revenue = (revenue * self.mapping.revenue_unit).quantize(Decimal("0.01"))
                if revenue >= Decimal("1e14"):
                    raise ParseError(f"Revenue {revenue:,} is too large")
            values["annual_revenue"] = revenue
        except ParseError as error:
            problems.append(Problem(row.line, columns["revenue"], "bad_amount", error.message))
        values["website"] = self._get(row, "website")[:200]
        return values, problems

    def write(
        self, rows: list[Row], recorder: Recorder, cache: OrganizationCache
    ) -> list[Outcome]:
        converted = [(row, *self.convert(row)) for row in rows]
        cache.load({v["name"].lower() for _r, v, p in converted if v["name"]}, by=self.by)
        existing = Organization.objects.in_bulk(
            [
                cache.ids[v["name"].lower()]
                for _r, v, _p in converted
                if v["name"].lower() in cache.ids
            ]
        )
        outcomes: list[Outcome] = []
        new: list[tuple[Row, Organization, list[Problem]]] = []
        changed: list[Organization] = []
        for row, values, problems in converted:
            if any(p.is_error for p in problems):
                outcomes.append(outcome_of(row.line, values["name"], problems))
                continue
            pk = cache.ids.get(values["name"].lower())
            details = {k: values.get(k) for k in ORGANIZATION_DETAILS}
            if pk is None:
                organization = Organization(
                    name=values["name"],
                    created_by=self.by,
                    **{k: v if v is not None else _blank(k) for k, v in details.items()},
                )
                new.append((row, organization, problems))
                continue
            organization = existing[pk]
            before = {
                k: as_json(getattr(organization, k))
                for k, v in details.items()
                if v not in (None, "") and getattr(organization, k) != v
            }
            if before:
                for name in before:
                    setattr(organization, name, details[name])
                changed.append(organization)
                recorder.updated(ORGANIZATION, pk, before)
                outcomes.append(Outcome(row.line, values["name"], "updated", pk, problems))
            else:
                outcomes.append(Outcome(row.line, values["name"], "unchanged", pk, problems))
        Organization.objects.bulk_create([o for _r, o, _p in new])
        for row, organization, problems in new:
            cache.ids[organization.name.lower()] = organization.pk
            recorder.created(ORGANIZATION, organization.pk)
            outcomes.append(
                Outcome(row.line, organization.name, "created", organization.pk, problems)
            )
        if changed:
            Organization.objects.bulk_update(changed, list(ORGANIZATION_DETAILS))
        return sorted(outcomes, key=lambda o: o.line)


def _blank(name: str) -> Any:
    return "" if name in {"sector", "website"} else None


# -- people --------------------------------------------------------------------------------


class PersonWriter:
    """People matched by e-mail (ignoring case), else by name within the organization."""

    def __init__(self, job: ImportJob, mapping: Mapping, *, by: User) -> None:
        self.job = job
        self.mapping = mapping
        self.by = by
        self.organizations = OrganizationCache()
        self.seen: dict[str, int] = {}

    def _get(self, row: Row, name: str) -> str:
        header = self.mapping.columns.get(name)
        return row.values.get(header, "").strip() if header else ""

    def convert(self, row: Row) -> tuple[dict[str, Any], list[Problem]]:
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        columns = self.mapping.columns
        problems: list[Problem] = []
        name = self._get(row, "name") or " ".join(
            p for p in (self._get(row, "first_name"), self._get(row, "last_name")) if p
        )
        values: dict[str, Any] = {
            "name": name[:200],
            "email": self._get(row, "email")[:254],
            "phone": self._get(row, "phone")[:50],
            "job_title": self._get(row, "job_title")[:100],
            "organization": self._get(row, "organization")[:200],
        }
        name_column = columns.get("name") or columns.get("last_name", "")
        if not name:
            problems.append(Problem(row.line, name_column, "missing", "No name"))
            return values, problems
        if values["email"]:
            try:
                validate_email(values["email"])
            except ValidationError:
                problems.append(
                    Problem(
                        row.line,
                        columns["email"],
                        "bad_value",
                        f"“{values['email']}” is not an e-mail address",
                    )
                )
        key = values["email"].lower() or f"{name.lower()}|{values['organization'].lower()}"
        first = self.seen.setdefault(key, row.line)
        if first != row.line:
            problems.append(
                Problem(
                    row.line,
                    name_column,
                    "duplicate_id",
                    f"{name} is also on line {first}; only the first is imported",
                )
            )
        return values, problems

    def write(self, rows: list[Row], recorder: Recorder) -> list[Outcome]:
        converted = [(row, *self.convert(row)) for row in rows]
        good = [(r, v, p) for r, v, p in converted if not any(x.is_error for x in p)]
        self.organizations.ensure(
            {
                v["organization"].lower(): v["organization"]
                for _r, v, _p in good
                if v["organization"]
            },
            by=self.by,
            recorder=recorder,
        )
        emails = {v["email"].lower() for _r, v, _p in good if v["email"]}
        names = {v["name"].lower() for _r, v, _p in good}
        by_email: dict[str, Person] = {}
        by_name: dict[tuple[str, int | None], Person] = {}
        for person in resolve.people_matching(names, by=self.by, emails=emails):
            if person.email:
                by_email.setdefault(person.email.lower(), person)
            by_name.setdefault((person.name.lower(), person.organization_id), person)
        outcomes: list[Outcome] = []
        new: list[tuple[Row, Person, list[Problem]]] = []
        changed: list[Person] = []
        for row, values, problems in converted:
            if any(p.is_error for p in problems):
                outcomes.append(outcome_of(row.line, values["name"], problems))
                continue
            organization_id = self.organizations.ids.get(values["organization"].lower())
            person = (by_email.get(values["email"].lower()) if values["email"] else None) or (
                by_name.get((values["name"].lower(), organization_id))
            )
            wanted = {
                "name": values["name"],
                "email": values["email"],
                "phone": values["phone"],
                "job_title": values["job_title"],
                "organization_id": organization_id,
            }
            if person is None:
                person = Person(created_by=self.by, **wanted)
                new.append((row, person, problems))
                by_email[values["email"].lower()] = person
                by_name[(values["name"].lower(), organization_id)] = person
                continue
            if person.pk is None:
                outcomes.append(Outcome(row.line, values["name"], "unchanged", None, problems))
                continue
            before = {
                k: getattr(person, k)
                for k, v in wanted.items()
                if v not in (None, "") and getattr(person, k) != v
            }
            if before:
                for k in before:
                    setattr(person, k, wanted[k])
                changed.append(person)
                recorder.updated(PERSON, person.pk, before)
                outcomes.append(Outcome(row.line, values["name"], "updated", person.pk, problems))
            else:
                outcomes.append(
                    Outcome(row.line, values["name"], "unchanged", person.pk, problems)
                )
        Person.objects.bulk_create([p for _r, p, _x in new])
        for row, person, problems in new:
            recorder.created(PERSON, person.pk)
            outcomes.append(Outcome(row.line, person.name, "created", person.pk, problems))
        if changed:
            Person.objects.bulk_update(
                changed, ["name", "email", "phone", "job_title", "organization_id"]
            )
        return sorted(outcomes, key=lambda o: o.line)
