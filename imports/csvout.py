"""CSV rows for spreadsheets: cells a spreadsheet would run as formulas are defused.

The rule itself lives in `common.exports.safe_cell`, shared by every export.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from common.exports import safe_cell


def safe_row(cells: Iterable[Any]) -> list[Any]:
    return [safe_cell(cell) for cell in cells]
