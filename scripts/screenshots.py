#!/usr/bin/env python
"""Regenerate docs/screenshots/: the board, a deal page and the dashboard, on a desktop
(1440x900) and a phone (390x844), against a fresh demo database.

Runs `migrate` and `seed_demo` into a throwaway SQLite file, serves it with `runserver` on
a free local port, and drives Chromium (/usr/bin/chromium, or $CHROMIUM) with Playwright.
Usage: `make screenshots`, or `.venv/bin/python scripts/screenshots.py [--only board]`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SIZES = {"desktop": (1440, 900), "phone": (390, 844)}
# Who is shown where: a rep lives on the board and the deal page, a manager on the dashboard.
SHOTS = [
    ("board", "rep", "/"),
    ("deal", "rep", None),  # the rep's first open deal with the most history
    ("dashboard", "manager", "/reports/dashboard/"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, **kwargs
    )


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server at {url} did not answer")


def busiest_deal(env: dict[str, str]) -> int:
    code = (
        "from django.db.models import Count;"
        "from deals.models import Deal;"
        "d = Deal.objects.filter(owner__username='rep', stage__kind='open')"
        ".annotate(n=Count('activities')).order_by('-n', 'pk').first();"
        "print(d.pk)"
    )
    out = manage(env, "shell", "-c", code, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def shoot(base: str, paths: dict[str, str], only: set[str]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        for size_name, (width, height) in SIZES.items():
            phone = size_name == "phone"
            for user in ("rep", "manager"):
                context = browser.new_context(
                    viewport={"width": width, "height": height},
                    device_scale_factor=2 if phone else 1,
                    has_touch=phone,
                    is_mobile=phone,
                )
                page = context.new_page()
                page.goto(f"{base}/accounts/login/")
                page.get_by_label("Username").fill(user)
                page.get_by_label("Password").fill("demo")
                page.get_by_role("button", name="Log in").click()
                page.wait_for_url(f"{base}/")
                for name, who, _ in SHOTS:
                    if who != user or (only and name not in only):
                        continue
                    page.goto(f"{base}{paths[name]}")
                    page.wait_for_load_state("networkidle")
                    target = OUT / f"{name}-{size_name}.png"
                    page.screenshot(path=str(target))
                    written.append(target)
                context.close()
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="board, deal or dashboard")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/demo.sqlite3",
            "DEBUG": "1",
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
        }
        env.pop("REDIS_URL", None)
        manage(env, "migrate", "--noinput", stdout=subprocess.DEVNULL)
        manage(env, "seed_demo", stdout=subprocess.DEVNULL)
        paths = {name: path for name, _, path in SHOTS if path}
        paths["deal"] = f"/deals/{busiest_deal(env)}/"
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/accounts/login/")
            for path in shoot(base, paths, set(args.only)):
                print(path.relative_to(ROOT))
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
