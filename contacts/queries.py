"""Reads for the customer-side pages: a fixed number of queries whatever the data size.

Deals and activities come from the access policy (`accounts.policy.deals`, `.activities`),
which names them by label: contacts sits below deals and does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from accounts import policy
from contacts.models import Organization, Person

if TYPE_CHECKING:
    from accounts.models import User

PAGE_SIZE = 25
DETAIL_ROWS = 50
PICK_ROWS = 8


def best_first(rows: QuerySet, q: str) -> QuerySet:
    """Names that start with what was typed come before names that merely contain it."""
    if not q:
        return rows.order_by("name", "pk")
    starts = Case(When(name__istartswith=q, then=Value(0)), default=Value(1))
    return rows.annotate(starts_with_q=starts).order_by("starts_with_q", "name", "pk")


def organization_list(user: User, q: str) -> QuerySet[Organization]:
    """Visible organizations matching `q`, each with its number of visible deals."""
    deals = (
        policy.deals(user)
        .filter(organization=OuterRef("pk"))
        .order_by()
        .values("organization")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rows = policy.organizations(user).matching(q)
    return best_first(rows, q).annotate(
        deal_count=Coalesce(Subquery(deals, output_field=IntegerField()), 0)
    )


def with_organization_visibility(people: QuerySet[Person], user: User) -> QuerySet[Person]:
    """Mark whether each person's organization may be opened by `user`.

    A person's employer is part of the person's record and is always named; it is linked
    only when the organization itself is visible, so the link never leads to a 404.
    """
    visible = policy.organizations(user).values("pk")
    return people.select_related("organization").annotate(
        organization_visible=ExpressionWrapper(
            Q(organization__in=visible), output_field=BooleanField()
        )
    )


def person_list(user: User, q: str) -> QuerySet[Person]:
    rows = best_first(policy.people(user).matching(q), q)
    return with_organization_visibility(rows, user)


def pick_organizations(user: User, q: str) -> list[Organization]:
    return list(best_first(policy.organizations(user).matching(q), q)[:PICK_ROWS])


def pick_people(user: User, q: str) -> list[Person]:
    rows = best_first(policy.people(user).matching(q), q)
    return list(rows.select_related("organization")[:PICK_ROWS])


def _recent_activities(activities: QuerySet) -> list:
    latest = Coalesce("done_at", "due_at", "created_at")
    rows = activities.select_related("deal", "owner").order_by(latest.desc(), F("pk").desc())
    return list(rows[:DETAIL_ROWS])


def organization_deals(organization: Organization, user: User) -> list:
    """The organization's deals `user` may see, newest first."""
    deals = policy.deals(user).filter(organization=organization)
    deals = deals.select_related("stage", "owner", "person")
    return list(deals.order_by("-created_at", "-pk")[:DETAIL_ROWS])


def organization_people(organization: Organization, user: User) -> list[Person]:
    people = policy.people(user).filter(organization=organization)
    return list(people.order_by("name", "pk")[:DETAIL_ROWS])


def organization_activities(organization: Organization, user: User) -> list:
    """Activities on the organization's deals that `user` may see."""
    return _recent_activities(policy.activities(user).filter(deal__organization=organization))


def _person_deals(person: Person, user: User) -> QuerySet:
    """Visible deals where the person is the primary contact or holds a contact role."""
    deals = policy.deals(user)
    roles = deals.model._meta.get_field("contact_roles").related_model.objects
    return deals.filter(Q(person=person) | Q(pk__in=roles.filter(person=person).values("deal_id")))


def person_deals(person: Person, user: User) -> list:
    deals = _person_deals(person, user).select_related("stage", "owner", "organization")
    return list(deals.order_by("-created_at", "-pk")[:DETAIL_ROWS])


def person_activities(person: Person, user: User) -> list:
    """Activities with the person, or on their deals, that `user` may see."""
    activities = policy.activities(user).filter(Q(person=person) | Q(deal__person=person))
    return _recent_activities(activities)
