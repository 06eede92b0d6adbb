"""Writes on the customer side: organizations and people.

Anyone who may see a customer record may create and edit it: organizations and people are
shared by the team that sells to them (as in Pipedrive's default visibility group). Deletion
is left to the Django admin, because deals protect the records they point at.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import policy
from common.errors import BadInput, NotVisible
from contacts.models import Organization, Person

if TYPE_CHECKING:
    from accounts.models import User

ORGANIZATION_FIELDS = ("name", "sector", "employees", "annual_revenue", "website")
PERSON_FIELDS = ("name", "email", "phone", "job_title", "organization")


class ContactError(BadInput):
    """A refused write (unknown field, a value the record cannot hold): 400 through the one
    mapping (common.errors.describe)."""


class ContactNotFound(NotVisible):
    """The record (or the organization named) does not exist or `by` may not see it."""


def _clean(instance: Organization | Person) -> None:
    """Enforce the model's rules (name required and ≤ 200, e-mail valid, counts ≥ 0) for
    callers that did not come through a form: imports, the API, the shell, the pickers."""
    instance.name = (instance.name or "").strip()
    # Foreign keys are checked against visibility (`_check_organization`), not mere existence.
    try:
        instance.full_clean(exclude=["created_by", "organization"])
    except ValidationError as error:
        raise ContactError(" ".join(error.messages)) from None


def _locked(model: type[Organization] | type[Person], pk: int, by: User) -> Any:
    """The row, locked, if `by` may see it; the caller's copy may be stale or foreign."""
    row = policy.customer_records(by, model).select_for_update().filter(pk=pk).first()
    if row is None:
        raise ContactNotFound(f"That {model._meta.verbose_name} does not exist.")
    return row


def create_organization(
    *,
    by: User,
    name: str,
    sector: str = "",
    employees: int | None = None,
    annual_revenue: Decimal | None = None,
    website: str = "",
) -> Organization:
    """Create an organization owned by nobody and shared by all who see its deals.

    `by` is recorded as its creator, which keeps it visible to them before any deal exists.
    """
    organization = Organization(
        name=name,
        sector=sector,
        employees=employees,
        annual_revenue=annual_revenue,
        website=website,
        created_by=by,
    )
    _clean(organization)
    organization.save()
    return organization


def update_organization(organization: Organization, *, by: User, **changes: Any) -> Organization:
    """Change an organization's fields. Only someone who may see it may change it."""
    unknown = set(changes) - set(ORGANIZATION_FIELDS)
    if unknown:
        raise ContactError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        row = _locked(Organization, organization.pk, by)
        for field, value in changes.items():
            setattr(row, field, value)
        _clean(row)
        row.save(update_fields=list(changes))
    return row


def create_person(
    *,
    by: User,
    name: str,
    email: str = "",
    phone: str = "",
    job_title: str = "",
    organization: Organization | None = None,
) -> Person:
    """Create a person, optionally at an organization `by` may see.

    `by` is recorded as its creator, which keeps the person visible to them.
    """
    _check_organization(organization, by)
    person = Person(
        name=name,
        email=email,
        phone=phone,
        job_title=job_title,
        organization=organization,
        created_by=by,
    )
    _clean(person)
    person.save()
    return person


def update_person(person: Person, *, by: User, **changes: Any) -> Person:
    """Change a person's fields. Only someone who may see the person may change them, and
    only to an organization they may see."""
    unknown = set(changes) - set(PERSON_FIELDS)
    if unknown:
        raise ContactError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        row = _locked(Person, person.pk, by)
        moved_to = changes.get("organization")
        if moved_to is not None and moved_to.pk != row.organization_id:
            _check_organization(moved_to, by)
        for field, value in changes.items():
            setattr(row, field, value)
        _clean(row)
        row.save(update_fields=list(changes))
    return row


def _check_organization(organization: Organization | None, by: User) -> None:
    if organization is None:
        return
    if not policy.organizations(by).filter(pk=organization.pk).exists():
        raise ContactNotFound("That organization does not exist.")
