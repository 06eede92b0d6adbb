"""Streaming a CSV file row by row: memory stays flat whatever the file's size.

Spreadsheet exports vary: a byte-order mark (Excel), Windows-1252 instead of UTF-8,
semicolons (European Excel) or tabs instead of commas. `sniff` settles encoding and
delimiter from the first 64 KB once, at upload; `rows` then reads with them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
# csv refuses fields over 128 KB by default; a note column can be long, not endless.
csv.field_size_limit(1024 * 1024)


@dataclass(frozen=True)
class Dialect:
    encoding: str
    delimiter: str


class SourceError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sniff(head: bytes) -> Dialect:
    """Encoding and delimiter from the start of a file."""
    encoding = "utf-8-sig"
    try:
        text = head.decode(encoding)
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 4:
            # The sample cut a multi-byte character in two: still UTF-8.
            text = head[: error.start].decode(encoding)
        else:
            encoding = "cp1252"
            text = head.decode(encoding, errors="replace")
    first_line = text.split("\n", 1)[0]
    delimiter = max(DELIMITERS, key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    return Dialect(encoding, delimiter)


@dataclass(frozen=True)
class Row:
    line: int  # the file's line number where the row starts (the header is line 1)
    values: dict[str, str]


class Reader:
    """Headers and rows of an open binary file; blank lines are skipped."""

    def __init__(self, binary: IO[bytes], dialect: Dialect) -> None:
        self._text = io.TextIOWrapper(
            binary, encoding=dialect.encoding, errors="replace", newline=""
        )
        self._csv = csv.reader(self._text, delimiter=dialect.delimiter)
        try:
            header = next(self._csv)
        except StopIteration:
            raise SourceError("The file is empty.") from None
        except csv.Error as error:
            raise SourceError(f"The file is not readable as CSV: {error}") from None
        self.headers = [h.strip() for h in header]
        if not any(self.headers):
            raise SourceError("The first line must name the columns.")
        seen: set[str] = set()
        for index, name in enumerate(self.headers):
            # Two columns of the same name would shadow each other: number the later one.
            if name in seen or not name:
                self.headers[index] = f"{name or 'column'} ({index + 1})"
            seen.add(self.headers[index])

    def __iter__(self) -> Iterator[Row]:
        width = len(self.headers)
        start = self._csv.line_num + 1
        try:
            for cells in self._csv:
                if not any(cell.strip() for cell in cells):
                    start = self._csv.line_num + 1
                    continue
                if len(cells) < width:
                    cells = [*cells, *([""] * (width - len(cells)))]
                yield Row(start, dict(zip(self.headers, cells, strict=False)))
                start = self._csv.line_num + 1
        except csv.Error as error:
            raise SourceError(f"Line {self._csv.line_num}: {error}") from None

    def close(self) -> None:
        self._text.detach()


def read_small(binary: IO[bytes], *, limit: int) -> tuple[list[str], list[Row]]:
    """A companion file, read whole: refused when it has more than `limit` rows."""
    dialect = sniff(binary.read(SNIFF_BYTES))
    binary.seek(0)
    reader = Reader(binary, dialect)
    found: list[Row] = []
    for row in reader:
        if len(found) == limit:
            raise SourceError(f"More than {limit:,} rows: import it on its own instead.")
        found.append(row)
    reader.close()
    return reader.headers, found
