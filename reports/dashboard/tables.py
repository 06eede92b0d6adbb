"""A panel's figures as one table: what the page shows, and the same cells for CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from django.utils.safestring import SafeString

Cell = int | float | Decimal | str | None  # a Percent is a float


class Percent(float):
    """A percentage kept exact: the page shows one decimal, the CSV two (a spreadsheet
    re-deriving a win rate from the counts must find the same figure)."""


def display(value: Cell) -> str:
    """A cell as the page shows it."""
    if value is None:
        return "—"
    if isinstance(value, Percent):
        return f"{value:,.1f}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def raw(value: Cell) -> str:
    """The same cell for a spreadsheet: no thousands separators, blank for none."""
    if value is None:
        return ""
    if isinstance(value, Decimal | Percent):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def days(value: float | None) -> float | None:
    """Days to one decimal, the precision every panel shows and exports."""
    return None if value is None else round(value, 1)


def percent(part: int, whole: int) -> Percent | None:
    return None if whole == 0 else Percent(100 * part / whole)


@dataclass
class Panel:
    slug: str
    title: str
    help: str
    header: list[str]
    rows: list[list[Cell]]
    chart: SafeString = field(default_factory=lambda: SafeString(""))
    extra: dict[str, Any] = field(default_factory=dict)
    # What the page's table shows when it is a sample of `rows` (a long period's flow);
    # the CSV always carries every row.
    page_rows: list[list[Cell]] | None = None
    # Built now, not left for a request of its own (see `panels.Deferred`).
    deferred: ClassVar[bool] = False

    @property
    def lead(self) -> str:
        """The panel's plain-language sentence (reports/dashboard/wording.py)."""
        from reports.dashboard.wording import lead

        return lead(self.slug)

    @property
    def display_rows(self) -> list[list[str]]:
        rows = self.rows if self.page_rows is None else self.page_rows
        return [[display(cell) for cell in row] for row in rows]

    @property
    def csv_rows(self) -> list[list[str]]:
        return [[raw(cell) for cell in row] for row in self.rows]
