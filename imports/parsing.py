"""Reading values the way spreadsheets and CRM exports write them.

Forgiving about formats, strict about data: a value either parses to exactly one
meaning or raises ParseError with a message a user can act on. Nothing is guessed
silently: a day/month order that the file does not settle is reported by
`DateOrderEvidence`, and the preview says which order it will use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

DMY = "dmy"
MDY = "mdy"
DATE_ORDERS = {DMY: "day/month/year", MDY: "month/day/year"}

MAX_AMOUNT = Decimal("999999999999.99")

# Currency symbols a value may carry; the code they stand for.
SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW", "CHF": "CHF"}
CODE = re.compile(r"^[A-Z]{3}$")


class ParseError(ValueError):
    """A value that cannot be read; `message` is fit to show in the preview."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?$")
YMD_SLASH = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$")
NUMERIC = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})(?:[ T].*)?$")
# "1 Mar 2017", "01-Mar-2017", "Mar 1, 2017", "March 1 2017"
NAMED_FORMATS = ("%d %b %Y", "%d-%b-%Y", "%b %d %Y", "%d %B %Y", "%B %d %Y", "%d-%b-%y")


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        # Two-digit years: a CRM export's dates are recent, so 00-69 means 20xx.
        year += 2000 if year < 70 else 1900
    return year


def _date(year: int, month: int, day: int, text: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ParseError(f"“{text}” is not a valid date") from None


def parse_date(text: str, order: str = MDY) -> date | None:
    """A date from ISO (2017-03-01, with or without a time) or day/month orders.

    `order` (DMY or MDY) decides numeric dates like 03/04/2017; a value that only
    fits the other order (13/04/2017 read as month/day) is an error, not a swap.
    Blank is None.
    """
    value = text.strip()
    if not value:
        return None
    if match := ISO.match(value) or YMD_SLASH.match(value):
        year, month, day = (int(g) for g in match.groups()[:3])
        return _date(year, month, day, value)
    if match := NUMERIC.match(value):
        first, second, year = match.groups()
        day, month = (first, second) if order == DMY else (second, first)
        if int(month) > 12:
            expected = DATE_ORDERS[order]
            raise ParseError(f"“{value}” does not fit the date order {expected}")
        return _date(_year(year), int(month), int(day), value)
    cleaned = value.replace(",", " ").replace(".", " ")
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    for fmt in NAMED_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).date()
        except ValueError:
            continue
    raise ParseError(f"“{value}” is not a date (use 2017-03-01, 01/03/2017 or 1 Mar 2017)")


@dataclass
class DateOrderEvidence:
    """What a file's numeric dates say about their day/month order.

    A first number above 12 proves day/month, a second above 12 proves month/day;
    dates like 03/04/2017 prove nothing. `verdict` is "iso" (no numeric dates),
    "dmy", "mdy", "ambiguous" (only unprovable ones) or "conflict" (proof of both).
    """

    dmy: int = 0
    mdy: int = 0
    unprovable: int = 0
    example: str = ""

    def observe(self, text: str) -> None:
        match = NUMERIC.match(text.strip())
        if not match:
            return
        first, second = int(match.group(1)), int(match.group(2))
        if first > 12 >= second:
            self.dmy += 1
        elif second > 12 >= first:
            self.mdy += 1
        elif first != second:
            self.unprovable += 1
            self.example = self.example or text.strip()

    @property
    def verdict(self) -> str:
        if self.dmy and self.mdy:
            return "conflict"
        if self.dmy:
            return DMY
        if self.mdy:
            return MDY
        return "ambiguous" if self.unprovable else "iso"


def _strip_currency(value: str) -> tuple[str, str]:
    """Remove a currency symbol or ISO code at either end; return (rest, code)."""
    code = ""
    for symbol, symbol_code in SYMBOLS.items():
        if value.startswith(symbol) or value.endswith(symbol):
            value = value.removeprefix(symbol).removesuffix(symbol).strip()
            code = symbol_code
            break
    parts = value.split()
    if len(parts) > 1 and CODE.match(parts[0]):
        code, value = parts[0], " ".join(parts[1:])
    elif len(parts) > 1 and CODE.match(parts[-1]):
        value, code = " ".join(parts[:-1]), parts[-1]
    return value, code


def parse_amount(text: str) -> tuple[Decimal | None, str]:
    """An amount and the currency code it was written with ("" when none).

    Accepts currency symbols and codes ($1,200.50, 1.200,50 €, EUR 1 200), thousands
    separators (comma, dot, space, apostrophe) and a decimal comma. Rules: with both a
    comma and a dot, the last one is the decimal separator; a lone comma followed by
    exactly three digits (1,200) separates thousands, otherwise it is decimal (12,5);
    repeated separators are thousands. Negative amounts are refused (DESIGN: amount ≥ 0).
    Blank is None.
    """
    value = text.strip().replace("\u00a0", " ").replace("\u202f", " ")
    if not value:
        return None, ""
    original = value
    if (value.startswith("(") and value.endswith(")")) or value.startswith("-"):
        raise ParseError(f"“{original}” is negative; amounts cannot be")
    value, code = _strip_currency(value)
    if value.startswith("-"):
        raise ParseError(f"“{original}” is negative; amounts cannot be")
    value = value.replace(" ", "").replace("'", "")
    if "," in value and "." in value:
        decimal_mark = "," if value.rfind(",") > value.rfind(".") else "."
    elif value.count(",") == 1:
        decimal_mark = "." if re.fullmatch(r"\d{1,3},\d{3}", value) else ","
    elif value.count(".") > 1:
        decimal_mark = ","  # 1.234.567: dots separate thousands
    else:
        decimal_mark = "."
    thousands = "," if decimal_mark == "." else "."
    value = value.replace(thousands, "").replace(decimal_mark, ".")
    if not re.fullmatch(r"\d+(\.\d+)?", value):
        raise ParseError(f"“{original}” is not an amount")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ParseError(f"“{original}” is not an amount") from None
    if amount > MAX_AMOUNT:
        raise ParseError(f"“{original}” is larger than the largest amount allowed")
    return amount.quantize(Decimal("0.01")), code


def parse_int(text: str) -> int | None:
    """A whole number written with or without thousands separators ("2,822")."""
    value = text.strip().replace(",", "").replace(" ", "").replace("'", "")
    if not value:
        return None
    if not value.isdigit():
        raise ParseError(f"“{text.strip()}” is not a whole number")
    return int(value)


TRUE_WORDS = {"1", "true", "yes", "y", "done", "x", "completed", "complete"}
FALSE_WORDS = {
    *("0", "false", "no", "n", "", "not done", "open", "pending"),
    *("not started", "in progress", "waiting", "deferred", "scheduled"),
}


def parse_bool(text: str) -> bool:
    value = text.strip().lower().replace("_", " ")
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ParseError(f"“{text.strip()}” is not yes or no")


def squash(text: str) -> str:
    """Letters and digits only, lower case: "GTXPro", "GTX Pro" and "gtx-pro" agree."""
    return re.sub(r"[^0-9a-z]", "", text.lower())
