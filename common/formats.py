"""The one way the app writes money and dates, for templates (`{% load formats %}`), CSV
labels and messages alike.

Numbers group digits by the active locale (Django's `number_format`); money carries its
currency's symbol when it has a well-known one ($, €, £, ¥), its ISO code otherwise. Dates
are "Dec 4, 2026", moments "Dec 4, 2026, 14:30" in the user's time zone, with month names
in the active language.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils import dateformat, timezone
from django.utils.formats import number_format

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CNY": "¥"}
DAY = "M j, Y"
SHORT_DAY = "M j"  # where space is tight (a board card): the same format without the year
MOMENT = "M j, Y, H:i"


def money(amount: Decimal | int | float | str | None, currency: str = "", places: int = 0) -> str:
    """`$16,965` (or `$16,965.00` with places=2); "—" when there is no amount."""
    if amount is None or amount == "":
        return "—"
    try:
        # Half up, as people round money (number_format alone rounds half to even).
        value = Decimal(str(amount)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    except InvalidOperation:
        return str(amount)
    number = number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)
    code = (currency or "").upper()
    sign = "-" if number.startswith("-") else ""
    number = number.lstrip("-")
    if code in SYMBOLS:
        return f"{sign}{SYMBOLS[code]}{number}"
    return f"{sign}{code} {number}".strip()


def day(value: date | datetime | str | None) -> str:
    """A calendar day: "Dec 4, 2026"; "—" when there is none."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return dateformat.format(value, DAY)


def short_day(value: date | datetime) -> str:
    """A calendar day on a card: "Dec 4"."""
    if isinstance(value, datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    return dateformat.format(value, SHORT_DAY)


def moment(value: datetime | None) -> str:
    """A point in time in the user's time zone: "Dec 4, 2026, 14:30"."""
    if value is None:
        return "—"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return dateformat.format(value, MOMENT)


def count(value: int | None) -> str:
    """A plain number of things, grouped: "8,800"."""
    if value is None:
        return "—"
    return number_format(value, use_l10n=True, force_grouping=True)
