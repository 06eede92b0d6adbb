"""CSV responses that spreadsheets cannot turn into formulas.

A cell starting with = + - @ (or a tab or carriage return, which some spreadsheets skip
before reading one of those) is a formula to Excel, LibreOffice and Google Sheets: a deal
titled "=HYPERLINK(...)" would run in the reader's spreadsheet (CSV injection, OWASP).
Such cells get a leading apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

from django.http import HttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Neutralise a cell a spreadsheet would run as a formula (OWASP: prefix a quote)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(cells: Iterable[Any]) -> list[Any]:
    return [safe_cell(cell) for cell in cells]


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow(safe_row(row))
    return response
