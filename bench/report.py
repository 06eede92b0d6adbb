"""Results: machine facts, the Markdown tables, the targets of issue 7, JSON on disk."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
X = "\N{MULTIPLICATION SIGN}"


def machine(raw: Any) -> dict[str, Any]:
    import django
    import gunicorn
    import psycopg

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if commit and changed:
            commit += "+changes"
    except OSError:
        commit = ""
    server = raw.execute("SHOW server_version").fetchone()[0]
    pg_settings = {
        name: raw.execute(f"SHOW {name}").fetchone()[0]
        for name in ("shared_buffers", "work_mem", "effective_cache_size", "max_connections")
    }
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": psycopg.__version__,
        "libpq": psycopg.pq.version(),
        "gunicorn": gunicorn.__version__,
        "postgresql": server,
        "postgresql_settings": pg_settings,
        "commit": commit,
    }


def _get(tree: Any, *path: Any) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _cpu_per_move(b7: dict[str, Any]) -> str:
    """Server CPU per move without and with the streams open, and the fan-out's CPU per
    move as a share of a move's own: the load-independent side of B7's slowdown."""
    cpu = b7.get("server_cpu_ms_per_move")
    if not cpu or "fanout_share_pct" not in b7:
        return "-"
    return f"{cpu[0]} → {cpu[1]} ms (fan-out {b7['fanout_share_pct']} %)"


def _size_label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1000 and size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


def _pick(sizes: dict[str, Any], wanted: int) -> tuple[int | None, dict[str, Any] | None]:
    """The run at `wanted` deals, else the largest one measured (the note says which)."""
    if str(wanted) in sizes:
        return wanted, sizes[str(wanted)]
    if not sizes:
        return None, None
    largest = max(int(s) for s in sizes)
    return largest, sizes[str(largest)]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target (issues 7 and 20): measured value, met or missed, and by how much."""
    sizes = results.get("sizes", {})
    rows: list[dict[str, Any]] = []

    def add(
        name: str,
        at: int,
        path: tuple,
        limit: float,
        *,
        higher: bool = False,
        unit: str = "ms",
        at_size: int | None = None,
        value: Any = None,
    ) -> None:
        size, run = _pick(sizes, at) if at_size is None else (at_size, sizes.get(str(at_size)))
        measured = _get(run, *path) if path else value
        where = f"at {_size_label(size)}" if size else "not run"
        if size and size != at:
            where += f" (target is at {_size_label(at)})"
        if measured is None:
            rows.append(
                {"target": name, "measured": None, "where": where, "status": "not measured"}
            )
            return
        met = measured >= limit if higher else measured <= limit
        if size != at:
            status = f"not judged: the target is at {_size_label(at)}"
        elif met:
            status = "met"
        elif higher:
            status = f"missed by {limit - measured:,.1f} {unit} ({measured / limit:.0%} of target)"
        elif limit:
            status = f"missed by {measured - limit:,.1f} {unit} ({measured / limit:.1f}{X} target)"
        else:
            status = f"missed by {measured:,} {unit}"
        rows.append({"target": name, "measured": measured, "where": where, "status": status})

    add("board p50 ≤ 60 ms (admin, all deals)", 100_000, ("b1", "admin", "p50_ms"), 60)
    add("board p50 ≤ 60 ms (rep, team's deals)", 100_000, ("b1", "rep", "p50_ms"), 60)
    counts = {int(s): _get(run, "b1", "admin", "queries") for s, run in sizes.items()}
    counts = {s: c for s, c in counts.items() if c is not None}
    if counts:
        worst = max(counts.values())
        constant = len(set(counts.values())) == 1
        rows.append(
            {
                "target": "board queries ≤ 10 and constant over sizes",
                "measured": worst,
                "where": ", ".join(f"{_size_label(s)}: {c}" for s, c in sorted(counts.items())),
                "status": "met"
                if worst <= 10 and constant
                else ("missed: " + ("not constant" if not constant else f"{worst - 10} over")),
            }
        )
    add("board HTML ≤ 200 KB", 100_000, ("b1", "admin", "html_bytes"), 200 * 1024, unit="bytes")
    add("move p50 ≤ 10 ms", 100_000, ("b2", "p50_ms"), 10)
    add("move Python CPU p50 ≤ 6 ms", 100_000, ("b2", "python_cpu_p50_ms"), 6)
    add(
        f"move ≤ 2.5{X} the authenticated Django floor",
        100_000,
        ("b2", "ratio_to_django_floor"),
        2.5,
        unit=X,
    )
    add(
        "≥ 150 moves/s (gunicorn, loopback, 16 threads)",
        100_000,
        ("b3", "moves_per_s"),
        150,
        higher=True,
        unit="moves/s",
    )
    add(
        "zero integrity errors after concurrent moves",
        100_000,
        ("b3", "integrity_errors"),
        0,
        unit="errors",
    )
    add(
        "moves ≤ 10 % slower with ≥ 500 live streams open (issue 19)",
        10_000,
        ("b7", "slower_pct"),
        10,
        unit="%",
    )
    for job in ("stalled", "forecast"):
        label = "stalled check" if job == "stalled" else "forecast recompute"
        if job == "stalled":
            add(
                f"{label} first run ≤ 10 s at 1M deals",
                1_000_000,
                ("b4", job, "first_s"),
                10,
                unit="s",
            )
            add(
                f"{label} later runs ≤ 2 s at 1M deals",
                1_000_000,
                ("b4", job, "second_s"),
                2,
                unit="s",
            )
        else:
            add(f"{label} ≤ 2 s at 1M deals", 1_000_000, ("b4", job, "first_s"), 2, unit="s")
        add(
            f"{label} ≥ 100{X} faster per deal than naive",
            1_000_000,
            ("b4", job, "speedup_per_deal"),
            100,
            higher=True,
            unit=X,
        )
        add(
            f"{label} second run changes 0 rows",
            1_000_000,
            ("b4", job, "second_rows_changed"),
            0,
            unit="rows",
        )
    # Issue 18: the time-based automations scan, set-based, over every deal.
    # The beat's pass (five minutes after the last) is what runs every few minutes; the
    # catch-up of a week for never-scanned rules is shown against the same bound.
    add(
        "automations time-based scan (beat's pass) ≤ 2 s at 1M deals",
        1_000_000,
        ("b8", "scan", "later_s"),
        2,
        unit="s",
    )
    add(
        "automations scan catching up a week ≤ 2 s at 1M deals",
        1_000_000,
        ("b8", "scan", "first_s"),
        2,
        unit="s",
    )
    add(
        "automations scan again writes 0 runs",
        1_000_000,
        ("b8", "scan", "second_runs"),
        0,
        unit="runs",
    )
    for who in ("admin", "manager"):
        _size, run = _pick(sizes, 100_000)
        panels = _get(run, "b5", who, "panels") or {}
        slowest = max(panels.items(), key=lambda item: item[1]["p50_ms"], default=None)
        add(
            f"each dashboard panel ≤ 300 ms at 1M history rows ({who}"
            + (f", slowest: {slowest[0]}" if slowest else "")
            + ")",
            100_000,
            (),
            300,
            value=slowest[1]["p50_ms"] if slowest else None,
        )
    return rows


def _commits(run: dict[str, Any]) -> str:
    """The commit a size was measured at, or which steps ran at which commit."""
    steps = run.get("step_commits") or {}
    if len(set(steps.values())) <= 1:
        return run.get("commit", "?")
    by_commit: dict[str, list[str]] = {}
    for step, commit in sorted(steps.items()):
        by_commit.setdefault(commit, []).append(step)
    return ", ".join(f"{commit} ({' '.join(steps)})" for commit, steps in by_commit.items())


def _ratio(value: Any) -> str:
    return "—" if value is None else f"{value}{X}"


def _ms(value: Any) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _count(value: Any) -> str:
    return "—" if value is None else f"{value:,}"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# Benchmark results ({results['mode']})",
        "",
        f"{results['started_at']} · {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB · "
        f"PostgreSQL {m['postgresql']} · Python {m['python']} · Django {m['django']} · "
        f"psycopg {m['psycopg']} · gunicorn {m['gunicorn']} · commit {m['commit']} · "
        f"tasks: {results['tasks']}",
        "",
        "Times are medians (p50) of several runs after a warm-up, in milliseconds unless "
        "marked; each floor is measured in the same run. See docs/performance.md.",
        "",
    ]
    sizes = sorted(results["sizes"].items(), key=lambda item: int(item[0]))

    def table(title: str, header: list[str], body: list[list[Any]]) -> None:
        lines.extend(
            [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        )
        lines.extend("| " + " | ".join(str(c) for c in row) + " |" for row in body)
        lines.append("")

    body = []
    for size, run in sizes:
        d = run.get("data", {})
        rows = d.get("rows", {})
        body.append(
            [
                _size_label(int(size)),
                f"{d.get('open_deals', 0):,}",
                f"{rows.get('deals_stagechange', 0):,}",
                f"{rows.get('deals_activity', 0):,}",
                f"{d.get('generate_s', 0):.0f} s",
                f"{d.get('vacuum_s', 0):.0f} s",
                f"{run.get('load_average_at_start', '?')} → {run.get('load_average_at_end', '?')}",
                _commits(run),
            ]
        )
    table(
        "Data",
        [
            "deals",
            "open",
            "history rows",
            "activities",
            "generated in",
            "vacuum analyze",
            "load average (start → end)",
            "commit",
        ],
        body,
    )

    body = []
    for size, run in sizes:
        b0 = run.get("b0", {})
        body.append(
            [
                _size_label(int(size)),
                _ms(_get(b0, "select1", "p50_ms")),
                _ms(_get(b0, "bare_move", "p50_ms")),
                _ms(_get(b0, "hello_in_process", "p50_ms")),
                _ms(_get(b0, "hello_http", "p50_ms")),
                _ms(_get(b0, "authenticated", "p50_ms")),
                _ms(_get(b0, "authenticated", "python_cpu_p50_ms")),
                _count(_get(b0, "authenticated", "python_calls")),
            ]
        )
    table(
        "B0 floors",
        [
            "deals",
            "psycopg SELECT 1",
            "bare-SQL move txn",
            "Django hello (in-process)",
            "Django hello (gunicorn, HTTP)",
            "authenticated Django floor (lock + update one deal)",
            "its Python CPU p50",
            "its Python calls",
        ],
        body,
    )

    body = []
    for size, run in sizes:
        for who in ("admin", "rep"):
            b = _get(run, "b1", who)
            if not b:
                continue
            body.append(
                [
                    _size_label(int(size)),
                    who,
                    _ms(b["p50_ms"]),
                    _ms(b["p95_ms"]),
                    _ms(b.get("python_cpu_p50_ms")),
                    b["queries"],
                    f"{b['html_bytes'] / 1024:,.0f} KB",
                    _ms(b["sql_floor_p50_ms"]),
                    f"{b['ratio_to_sql']}{X}",
                ]
            )
    table(
        "B1 board page (GET /, server time)",
        [
            "deals",
            "user",
            "p50",
            "p95",
            "Python CPU p50",
            "queries",
            "HTML",
            "its SQL replayed (p50)",
            "ratio",
        ],
        body,
    )

    body = []
    for size, run in sizes:
        b = run.get("b2")
        if b:
            body.append(
                [
                    _size_label(int(size)),
                    _ms(b["p50_ms"]),
                    _ms(b["p99_ms"]),
                    _ms(b.get("python_cpu_p50_ms")),
                    b["statements"],
                    _ms(_get(run, "b0", "bare_move", "p50_ms")),
                    f"{b['ratio_to_bare_sql']}{X}",
                    _ms(_get(run, "b0", "authenticated", "p50_ms")),
                    _ratio(b.get("ratio_to_django_floor")),
                    _ratio(b.get("cpu_to_django_floor")),
                    _count(b.get("python_calls")),
                    _ratio(b.get("calls_to_django_floor")),
                    b["not_200"],
                ]
            )
    table(
        "B2 one move (htmx POST, server time)",
        [
            "deals",
            "p50",
            "p99",
            "Python CPU p50",
            "SQL statements",
            "bare-SQL floor p50",
            "ratio",
            "authenticated Django floor p50",
            "ratio",
            "CPU ratio",
            "Python calls",
            "calls ratio",
            "not 200",
        ],
        body,
    )

    body = []
    for size, run in sizes:
        b = run.get("b3")
        if b:
            body.append(
                [
                    _size_label(int(size)),
                    f"{b['threads']} / {b['workers']}",
                    b["requests"],
                    f"{b['moves_per_s']:,.0f}",
                    _ms(b["p50_ms"]),
                    _ms(b["p99_ms"]),
                    b["conflicts_409"],
                    json.dumps(b["statuses"]),
                    b["integrity_errors"],
                ]
            )
    table(
        "B3 concurrent moves (gunicorn on loopback)",
        [
            "deals",
            "threads / workers",
            "requests",
            "moves/s",
            "p50",
            "p99",
            "409s",
            "statuses",
            "integrity errors",
        ],
        body,
    )

    body = []
    for size, run in sizes:
        for job in ("stalled", "forecast"):
            b = _get(run, "b4", job)
            if not b:
                continue
            body.append(
                [
                    _size_label(int(size)),
                    job,
                    f"{b['first_s']:.2f} s",
                    b["first_statements"],
                    f"{b['second_s']:.2f} s",
                    b["second_rows_changed"],
                    _ms(b["naive_ms_per_deal"]),
                    f"{b['set_us_per_deal']:.2f} µs",
                    f"{b['speedup_per_deal']:,.0f}{X}",
                ]
            )
    table(
        "B4 jobs",
        [
            "deals",
            "job",
            "first run",
            "statements",
            "second run",
            "rows changed by 2nd run",
            "naive ms/deal",
            "set-based per deal",
            "speedup per deal",
        ],
        body,
    )

    body = []
    for size, run in sizes:
        for who in ("admin", "manager", "admin 5 years", "manager 5 years"):
            b = _get(run, "b5", who)
            if not b:
                continue
            cells = [f"{p['p50_ms']:,.0f} ({p['queries']})" for p in b["panels"].values()]
            body.append(
                [
                    _size_label(int(size)),
                    who,
                    f"{b['deals_in_scope']:,}",
                    *cells,
                    f"{b['page_p50_ms']:,.0f} ({b['page_queries']})"
                    if "page_p50_ms" in b
                    else "not run",
                ]
            )
            header = list(b["panels"])
    if body:
        table(
            "B5 dashboard, ms (queries) per panel",
            ["deals", "user", "deals in scope", *header, "whole page"],
            body,
        )

    body = []
    for size, run in sizes:
        b = run.get("b7")
        if b and "streams" in b:
            body.append(
                [
                    _size_label(int(size)),
                    b["streams"],
                    f"{b['kb_per_stream']:,.0f} KB",
                    _ms(b["delivery_p50_ms"]),
                    _ms(b["delivery_p95_ms"]),
                    _ms(b["all_streams_p50_ms"]),
                    b["missed"],
                    f"{b['moves_per_s_without_streams']:,.1f}",
                    f"{b['moves_per_s_with_streams']:,.1f}",
                    f"{b['slower_pct']} %",
                    _cpu_per_move(b),
                ]
            )
    table(
        "B7 live streams (one uvicorn process)",
        [
            "deals",
            "streams",
            "memory per stream",
            "delivery p50",
            "p95",
            "all streams (p50 of moves)",
            "missed",
            "moves/s without",
            "with streams",
            "slower",
            "server CPU per move (fan-out's share)",
        ],
        body,
    )

    lines.extend(
        [
            "## Targets (issues 7 and 20)",
            "",
            "| target | measured | where | status |",
            "|---|---|---|---|",
        ]
    )
    for row in results.get("targets", []):
        lines.append(f"| {row['target']} | {row['measured']} | {row['where']} | {row['status']} |")
    lines.append("")
    failures = [
        f"- {_size_label(int(size))} {step}: {text.splitlines()[-1] if text else ''}"
        for size, run in sizes
        for step, text in run.get("errors", {}).items()
    ]
    if failures:
        lines.extend(["## Steps that failed", "", *failures, ""])
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path, stem: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    json_path = out / f"{stem}.json"
    md_path = out / f"{stem}.md"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    tmp.replace(json_path)
    md_path.write_text(markdown(results))
    return json_path, md_path
