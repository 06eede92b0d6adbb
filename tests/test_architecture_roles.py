"""Only the access policy (accounts/policy.py) reads a user's role.

Views and templates ask the policy (`policy.can_configure`, `{% if policy.can_import %}`);
so do services, forms, reports and imports. A role test anywhere else would be a second
copy of a rule, free to drift from the matrix.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", "tests", "bench", "migrations", "node_modules", "static", "var", ".git"}

# Reading a role: the User attributes that carry it, compared or filtered on.
ROLE_TEST = re.compile(
    r"\.is_admin\b|\.is_manager\b|\bis_rep\b|\.is_superuser\b|\.is_staff\b"
    r"|\.role\b|\bRole\.(ADMIN|MANAGER|REP)\b|\brole\s*=\s*Role\.|\bget_role_display\b"
)
# Where a role is defined, or given to a user being created (data, not a decision).
ALLOWED = {
    "accounts/policy.py",
    "accounts/models.py",
    "accounts/admin.py",  # the user admin's own form for the role field
    "deals/management/commands/seed_demo.py",  # demo users are created with their roles
    "imports/writers.py",  # an import creates missing owners as reps and managers
}
# Showing who is logged in is not a decision.
TEMPLATE_ALLOWED = {"user.get_role_display"}


def _app_files(suffix: str) -> list[Path]:
    return [
        path
        for path in ROOT.rglob(f"*{suffix}")
        if not SKIP_DIRS & set(path.relative_to(ROOT).parts)
    ]


def _hits(path: Path, allowed: set[str] = frozenset()) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for match in ROLE_TEST.finditer(line):
            start = max(match.start() - 5, 0)
            if any(a in line[start : match.end()] for a in allowed):
                continue
            found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_view_module_tests_roles():
    views = [p for p in _app_files(".py") if p.name == "views.py" or p.parent.name == "views"]
    assert views, "no view modules found: is ROOT right?"
    hits = [hit for path in views for hit in _hits(path)]
    assert not hits, "ask accounts.policy instead:\n" + "\n".join(hits)


def test_no_template_tests_roles():
    templates = _app_files(".html")
    assert templates, "no templates found: is ROOT right?"
    hits = [hit for path in templates for hit in _hits(path, TEMPLATE_ALLOWED)]
    assert not hits, "ask `policy` in the template context instead:\n" + "\n".join(hits)


def test_only_the_policy_reads_roles():
    modules = [p for p in _app_files(".py") if str(p.relative_to(ROOT)) not in ALLOWED]
    hits = [hit for path in modules for hit in _hits(path)]
    assert not hits, "ask accounts.policy instead:\n" + "\n".join(hits)


def test_the_check_sees_a_role_test():
    """The pattern must catch the spellings the code used before the policy existed."""
    samples = [
        "if user.is_admin or user.is_manager:",
        "{% if user.is_manager or user.is_admin %}",
        "users.filter(role=Role.ADMIN)",
        "if request.user.role == 'rep':",
    ]
    assert all(ROLE_TEST.search(sample) for sample in samples)
