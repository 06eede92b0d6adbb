"""The app's one money and date format (common/formats.py)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.conf import settings

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


def test_short_day_is_the_day_without_its_year():
    assert formats.short_day(date(2026, 12, 4)) == "Dec 4"


# Machine formats, for `datetime=`, `value=` and `min=` attributes and comparisons.
MACHINE_DATE_FORMATS = {"c", "Y-m-d", "Y-m-d\\TH:i"}


def test_templates_print_dates_and_money_only_through_the_formats_filters():
    """One date and one money format across the app: a template that formats a date by
    hand (`|date:"Y-m-d H:i"`) or prints a currency code before an amount fails here."""
    root = Path(settings.BASE_DIR) / "templates"
    found = []
    for path in root.rglob("*.html"):
        text = path.read_text()
        for fmt in re.findall(r"\|date:[\"']([^\"']*)[\"']", text):
            if fmt not in MACHINE_DATE_FORMATS:
                found.append(f"{path.relative_to(root)}: date:{fmt}")
        if re.search(r"\.currency \}\} ?\{\{", text):
            found.append(f"{path.relative_to(root)}: a currency code before an amount")
    assert found == []
