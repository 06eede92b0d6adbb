"""Architecture: views parse, call one action and render; actions own the transactions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ["accounts", "common", "contacts", "deals", "imports", "pipeline_crm", "reports", "stages"]


def view_modules() -> list[Path]:
    found = []
    for app in APPS:
        base = ROOT / app
        found += base.glob("views*.py")
        found += (base / "views").glob("*.py")
    return sorted(found)


def transaction_uses(path: Path) -> list[str]:
    """Where a module opens a transaction or locks rows (code only, not docstrings)."""
    uses = []
    label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in {"atomic", "select_for_update"}:
            uses.append(f"{label}:{node.lineno} .{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "django.db":
            names = {alias.name for alias in node.names}
            if names & {"transaction"}:
                uses.append(f"{label}:{node.lineno} imports transaction")
    return uses


def test_the_view_modules_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in view_modules()}
    assert {"deals/views/board.py", "deals/views/deal.py", "stages/views.py"} <= names


@pytest.mark.parametrize("path", view_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_view_module_opens_a_transaction(path):
    assert transaction_uses(path) == []


def test_the_check_sees_a_transaction(tmp_path):
    module = tmp_path / "views.py"
    module.write_text(
        "from django.db import transaction\n"
        "def v(request):\n"
        "    with transaction.atomic():\n"
        "        Deal.objects.select_for_update().get()\n"
    )
    assert len(transaction_uses(module)) == 3
