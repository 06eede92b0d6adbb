"""The floor plan, checked on the source (DESIGN.md, "Apps and what each owns").

Imports are read with `ast` from every Python file of the project, including imports
inside functions (a lazy import is a dependency all the same) and `import_module("…")`
calls with a literal name.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Folders that are not part of the running product.
NOT_PROJECT = {"tests", "bench", "scripts", "docs", "static", "templates", "var"}

# DESIGN.md's app table, down the page: the project apps each app may import. Dependencies
# point one way. `common/` is the library under every app (SQL helpers, the CSV export
# rule, rate limiting, the outbox, middleware) and imports no app. `pipeline_crm/` is the
# wiring above everything: it may import every app, and no app imports it.
BELOW_REPORTS = {
    "common": set(),
    "accounts": {"common"},
    "contacts": {"common", "accounts"},
    "stages": {"common", "accounts"},
    "deals": {"common", "accounts", "contacts", "stages"},
    "imports": {"common", "accounts", "contacts", "stages", "deals"},
    "webhooks": {"common", "accounts", "deals"},
    "automations": {"common", "accounts", "contacts", "stages", "deals", "webhooks"},
}
MAY_IMPORT: dict[str, set[str]] = {
    **BELOW_REPORTS,
    "reports": set(BELOW_REPORTS),
    "api": {*BELOW_REPORTS, "reports"},
    "pipeline_crm": {*BELOW_REPORTS, "reports", "api"},
}

# Settings, URLs, Celery and WSGI/ASGI wiring; env.py holds the settings' typed readers,
# context_processors.py the base template's navigation across apps (DESIGN.md), health.py
# and healthcheck.py the deployment's probes (load balancer, containers).
PIPELINE_CRM_MODULES = {
    "__init__.py",
    "settings.py",
    "env.py",
    "urls.py",
    "celery.py",
    "wsgi.py",
    "asgi.py",
    "context_processors.py",
    "health.py",
    "healthcheck.py",
}

# Who may import `reports` (reports read everything; nothing reads reports): besides
# reports itself, the API, the root URLs, and tools that are not the product.
MAY_IMPORT_REPORTS = ("reports/", "api/", "tests/", "bench/", "pipeline_crm/urls.py")


def python_files() -> Iterator[Path]:
    for folder, subfolders, files in os.walk(ROOT):
        # Hidden folders (.venv, .git) and data folders hold no project code.
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and name not in {"node_modules", "var", "__pycache__"}
        )
        for name in sorted(files):
            if name.endswith(".py"):
                yield (Path(folder) / name).relative_to(ROOT)


def project_apps() -> set[str]:
    return {
        path.parts[0]
        for path in python_files()
        if len(path.parts) > 1 and path.parts[0] not in NOT_PROJECT
    }


def is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports_in(source: str, package: list[str]) -> set[str]:
    """Every module `source` imports at run time; `package` resolves relative imports.

    Imports under `if TYPE_CHECKING:` are left out: they name types for the checker and
    never run (accounts/policy.py names the deal models it filters that way).
    """
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(source)]
    while pending:
        node = pending.pop()
        if is_type_checking(node):
            pending.extend(node.orelse)  # type: ignore[attr-defined]
            continue
        pending.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


@cache
def imported_modules(relative: Path) -> frozenset[str]:
    source = (ROOT / relative).read_text(encoding="utf-8")
    return frozenset(imports_in(source, list(relative.parent.parts)))


def imported_apps(relative: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(relative)} & (
        project_apps() | set(MAY_IMPORT)
    )


def test_the_source_is_found():
    """Guards the checks below against passing because they read nothing."""
    files = {str(path) for path in python_files()}
    assert {"deals/services.py", "reports/forecasts.py", "pipeline_crm/settings.py"} <= files
    assert {"accounts", "stages"} <= imported_apps(Path("deals/models.py"))


def test_every_app_is_in_the_design_table():
    unknown = project_apps() - set(MAY_IMPORT)
    assert not unknown, (
        f"{sorted(unknown)}: add each app to DESIGN.md's app table and to MAY_IMPORT here"
    )


def test_nothing_outside_reports_imports_reports():
    offenders = [
        str(path)
        for path in python_files()
        if not str(path).startswith(MAY_IMPORT_REPORTS)
        and "reports" in {name.split(".")[0] for name in imported_modules(path)}
    ]
    assert offenders == [], (
        "reports read everything and nothing reads reports: derived rows follow their "
        "deal by cascade, and follow-up work is named by its task (outbox)"
    )


def test_pipeline_crm_holds_only_wiring():
    present = {
        path.name if len(path.parts) == 2 else "/".join(path.parts[1:])
        for path in python_files()
        if path.parts[0] == "pipeline_crm"
    }
    assert present - PIPELINE_CRM_MODULES == set(), (
        "pipeline_crm/ keeps settings, URLs, Celery and WSGI/ASGI wiring; shared code goes "
        "to common/, an app's code to its app"
    )


@pytest.mark.parametrize("app", sorted(MAY_IMPORT))
def test_each_app_imports_only_the_apps_below_it(app):
    """Historical migrations are left out: they name callables wherever the models kept
    them when they were written (deals 0002 names the import storage, now in imports)."""
    wrong = {
        str(path): sorted(imported_apps(path) - MAY_IMPORT[app] - {app})
        for path in python_files()
        if path.parts[0] == app and "migrations" not in path.parts
    }
    assert {path: apps for path, apps in wrong.items() if apps} == {}


def test_the_checks_see_lazy_relative_and_dynamic_imports():
    """The parser catches what a hurried fix would hide in a function body."""
    source = (
        "from . import queries\n"
        "if TYPE_CHECKING:\n"
        "    from contacts.models import Person\n"
        "def f():\n"
        "    from reports import forecasts\n"
        "    return __import__('reports.tasks'), import_module('api.views'), forecasts\n"
    )
    # Only the checker's import is left out: it never runs.
    assert imports_in(source, ["deals", "views"]) == {
        "deals.views",
        "reports",
        "reports.tasks",
        "api.views",
    }
