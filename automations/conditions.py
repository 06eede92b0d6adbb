"""A rule's conditions as SQL over deals: one expression per condition.

The same expressions decide a run (each condition's result is read in one query, for the
log), a dry run over many deals (one query for all of them) and the time-based scan
(the whole rule as one filter of a set-based INSERT).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q
from django.utils import timezone

from automations import spec
from deals.models import Activity, Deal, DealContact

LOOKUPS = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte", "eq": "exact"}


def condition_q(item: dict[str, Any]) -> Q:
    """The deals that meet one condition."""
    kind = item["kind"]
    if kind in spec.ID_CONDITIONS:
        column = {
            "pipeline": "pipeline_id",
            "stage": "stage_id",
            "owner": "owner_id",
            "team": "owner__team_id",
        }
        q = Q(**{f"{column[kind]}__in": item["ids"]})
        return ~q if item["op"] == "not_in" else q
    if kind == "amount":
        q = Q(**{f"amount__{LOOKUPS[item['op']]}": Decimal(item["value"])})
        return q & Q(currency=item["currency"]) if item.get("currency") else q
    if kind == "currency":
        q = Q(currency__in=item["values"])
        return ~q if item["op"] == "not_in" else q
    if kind == "organization":
        name = f"organization__{item['field']}"
        numeric = spec.ORGANIZATION_FIELDS[item["field"]] == "number"
        empty = Q(organization__isnull=True) | Q(**{f"{name}__isnull": True})
        if not numeric:
            empty |= Q(**{name: ""})
        if item["op"] == "empty":
            return empty
        if item["op"] == "not_empty":
            return ~empty & Q(organization__isnull=False)
        if numeric:
            return Q(**{f"{name}__{LOOKUPS[item['op']]}": Decimal(item["value"])})
        lookup = "icontains" if item["op"] == "contains" else "iexact"
        return Q(**{f"{name}__{lookup}": item["value"]})
    if kind == "contact_role":
        has = Exists(DealContact.objects.filter(deal=OuterRef("pk"), role=item["role"]))
        return Q(has) if item["op"] == "has" else ~Q(has)
    if kind == "open_activity":
        has = Exists(Activity.objects.filter(deal=OuterRef("pk"), done=False))
        return Q(has) if item["op"] == "has" else ~Q(has)
    if kind == "days_in_stage":
        edge = timezone.now() - timedelta(days=item["days"])
        if item["op"] == "gte":
            return Q(stage_entered_at__lte=edge)
        return Q(stage_entered_at__gt=edge)
    raise ValueError(kind)


def rule_q(conditions: dict[str, Any]) -> Q:
    """The deals that meet a rule's conditions (all, or any, of them; none: every deal)."""
    items = conditions.get("items") or []
    if not items:
        return Q()
    combined = condition_q(items[0])
    for item in items[1:]:
        if conditions.get("match") == "any":
            combined |= condition_q(item)
        else:
            combined &= condition_q(item)
    return combined


def evaluate(conditions: dict[str, Any], deal_ids: list[int]) -> dict[int, list[bool]]:
    """Each condition's result for each deal, in one query: {deal id: [passed, …]}."""
    items = conditions.get("items") or []
    if not deal_ids:
        return {}
    rows = Deal.objects.filter(pk__in=deal_ids).order_by()
    if not items:
        return {pk: [] for pk in rows.values_list("pk", flat=True)}
    names = [f"c{n}" for n in range(len(items))]
    rows = rows.annotate(
        **{
            name: ExpressionWrapper(condition_q(item), output_field=BooleanField())
            for name, item in zip(names, items, strict=True)
        }
    )
    return {row[0]: [bool(v) for v in row[1:]] for row in rows.values_list("pk", *names)}


def passes(conditions: dict[str, Any], results: list[bool]) -> bool:
    if not results:
        return True
    return any(results) if conditions.get("match") == "any" else all(results)
