"""CSV responses that spreadsheets cannot turn into formulas.

A cell starting with = + - @ (or a tab or carriage return, which some spreadsheets skip
before reading one of those) is a formula to Excel, LibreOffice and Google Sheets: a deal
titled "=HYPERLINK(...)" would run in the reader's spreadsheet (CSV injection, OWASP).
Such cells get a leading apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

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


STREAM_BATCH_LINES = 2000


def _take(lines: Iterator[str], count: int) -> str:
    return "".join(itertools.islice(lines, count))


async def _in_batches(lines: Iterator[str]) -> AsyncIterator[str]:
    """`lines`, read in batches on the request's own sync thread (its database
    connection and server-side cursor live there), handed out as they come."""
    take = sync_to_async(_take, thread_sensitive=True)
    while batch := await take(lines, STREAM_BATCH_LINES):
        yield batch


def streaming_csv(
    request: HttpRequest, lines: Iterator[str], filename: str
) -> StreamingHttpResponse:
    """A CSV download of any size, sent as it is produced, never held whole.

    Under WSGI the generator streams as it is. Under ASGI (the compose web server) Django
    would consume a synchronous generator whole before the first byte, holding a large
    export in memory until a proxy's timeout cut it: there it is handed out through an
    asynchronous iterator instead, batch by batch.
    """
    content = _in_batches(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
