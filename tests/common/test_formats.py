"""The app's one money and date format (common/formats.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from common import formats


def test_money_uses_the_currency_symbol_and_groups_digits():
    assert formats.money(Decimal("1500"), "USD") == "$1,500"
    assert formats.money(Decimal("1500"), "CHF") == "CHF 1,500"
    assert formats.money(None, "USD") == "—"


def test_money_rounds_half_up_as_people_do():
    assert formats.money(Decimal("12345.50"), "USD") == "$12,346"
    assert formats.money(Decimal("0.125"), "EUR", places=2) == "€0.13"


def test_day_is_month_day_year():
    assert formats.day(date(2026, 12, 4)) == "Dec 4, 2026"
