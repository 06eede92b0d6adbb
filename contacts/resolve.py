"""Typed names to customer records: the one resolver every form and import uses.

A name is matched only among the records the user may see (`accounts.policy`): a name
that matches only records hidden from the user creates a new record in the user's own
scope, never attaches the hidden one (which would also reveal it, with its e-mail and
phone, on the person's page).

Imports match many names at once, set-based, with `organization_ids_named` and
`people_matching`: the same rule (visible, case-insensitive, oldest first), in one query.

Two visible records may share a name (two organizations called "Acme"). The resolver then
picks deterministically, the oldest (lowest id), rather than asking: it is what the
user most likely meant (the record the team has used longest), the answer is the same on
every try, and the deal page shows which record was attached, with a link to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from accounts import policy
from contacts import services
from contacts.models import Organization, Person

if TYPE_CHECKING:
    from accounts.models import User


@dataclass(frozen=True)
class Resolved:
    organization: Organization | None
    person: Person | None

    def as_fields(self) -> dict[str, Organization | Person | None]:
        return {"organization": self.organization, "person": self.person}


def _named(rows: QuerySet, names: set[str]) -> QuerySet:
    """Rows whose name, ignoring case, is one of `names` (lower-case), oldest first."""
    return rows.annotate(lower=Lower("name")).filter(lower__in=names).order_by("pk")


def organization_ids_named(names: set[str], *, by: User) -> dict[str, int]:
    """Lower-case name -> id of the oldest visible organization of that name."""
    found: dict[str, int] = {}
    for lower, pk in _named(policy.organizations(by), names).values_list("lower", "pk"):
        found.setdefault(lower, pk)
    return found


def people_matching(names: set[str], *, by: User, emails: set[str] = frozenset()) -> QuerySet:
    """Visible people whose lower-case name is in `names` or e-mail in `emails`, oldest
    first, annotated with `lower` (name) and `lower_email`."""
    rows = policy.people(by).annotate(lower=Lower("name"), lower_email=Lower("email"))
    return rows.filter(Q(lower__in=names) | Q(lower_email__in=emails)).order_by("pk")


def find_organization(name: str, *, by: User) -> Organization | None:
    """The visible organization called `name` (case-insensitive), the oldest if several."""
    name = name.strip()
    if not name:
        return None
    return _named(policy.organizations(by), {name.lower()}).first()


def find_person(name: str, *, by: User, organization: Organization | None) -> Person | None:
    """The visible person called `name`; at `organization` when one is given."""
    name = name.strip()
    if not name:
        return None
    people = _named(policy.people(by), {name.lower()})
    if organization is not None:
        people = people.filter(organization=organization)
    return people.first()


def resolve_organization(name: str, *, by: User) -> Organization | None:
    """The visible organization called `name`, or a new one created by `by`; None if blank."""
    name = name.strip()
    if not name:
        return None
    return find_organization(name, by=by) or services.create_organization(by=by, name=name)


def resolve_person(name: str, *, by: User, organization: Organization | None) -> Person | None:
    """The visible person called `name` (at `organization` if given), or a new one there."""
    name = name.strip()
    if not name:
        return None
    found = find_person(name, by=by, organization=organization)
    if found is not None:
        return found
    return services.create_person(by=by, name=name, organization=organization)


def resolve_names(*, organization_name: str, person_name: str, by: User) -> Resolved:
    """Typed organization and person names to records `by` may see, created when new."""
    organization = resolve_organization(organization_name, by=by)
    person = resolve_person(person_name, by=by, organization=organization)
    return Resolved(organization, person)
