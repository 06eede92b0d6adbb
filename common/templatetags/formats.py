"""Template filters for the app's one money and date format (see common/formats.py)."""

from __future__ import annotations

from django import template

from common import formats

register = template.Library()


@register.filter
def money(amount: object, currency: str = "") -> str:
    """`{{ deal.amount|money:deal.currency }}` → "$16,965"."""
    return formats.money(amount, currency)  # type: ignore[arg-type]


@register.filter
def money_exact(amount: object, currency: str = "") -> str:
    """With cents: "$16,965.00" (a deal's own amount)."""
    return formats.money(amount, currency, places=2)  # type: ignore[arg-type]


@register.filter
def day(value: object) -> str:
    return formats.day(value)  # type: ignore[arg-type]


@register.filter
def short_day(value: object) -> str:
    return formats.short_day(value)  # type: ignore[arg-type]


@register.filter
def moment(value: object) -> str:
    return formats.moment(value)  # type: ignore[arg-type]


@register.filter
def count(value: object) -> str:
    return formats.count(value)  # type: ignore[arg-type]
