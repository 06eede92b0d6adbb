"""Typed names to customer records: the one resolver every form and import uses.

A name is matched only among the records the user may see (`accounts.policy`): a name
that matches only records hidden from the user creates a new record in the user's own
scope, never attaches the hidden one (which would also reveal it, with its e-mail and
phone, on the person's page).

Two visible records may share a name (two organizations called "Acme"). The resolver then
picks deterministically, the oldest (lowest id), rather than asking: it is what the
user most likely meant (the record the team has used longest), the answer is the same on
every try, and the deal page shows which record was attached, with a link to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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


def find_organization(name: str, *, by: User) -> Organization | None:
    """The visible organization called `name` (case-insensitive), the oldest if several."""
    name = name.strip()
    if not name:
        return None
    return policy.organizations(by).filter(name__iexact=name).order_by("pk").first()


def find_person(name: str, *, by: User, organization: Organization | None) -> Person | None:
    """The visible person called `name`; at `organization` when one is given."""
    name = name.strip()
    if not name:
        return None
    people = policy.people(by).filter(name__iexact=name)
    if organization is not None:
        people = people.filter(organization=organization)
    return people.order_by("pk").first()


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
