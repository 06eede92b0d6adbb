"""CSV written for spreadsheets: cells that a spreadsheet would run as formulas are defused.

A cell starting with = + - @ (or a tab or carriage return, which some spreadsheets skip
before reading one of those) is a formula to Excel, LibreOffice and Google Sheets: a
deal titled "=HYPERLINK(...)" would run in the reader's spreadsheet (CSV injection,
OWASP). Such cells get a leading apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value, with text that a spreadsheet would read as a formula made inert.

    Numbers are left alone: they are written by us and cannot carry a formula.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return f"'{value}"
    return value


def safe_row(cells: Iterable[Any]) -> list[Any]:
    return [safe_cell(cell) for cell in cells]
