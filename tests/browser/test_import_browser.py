"""Issue 16's import flows (11, 12 and 15), walked in real Chromium by a manager.

The view tests (tests/imports/test_import_flows.py) pin the counts and the runner; these
check what the manager sees: an honest confirm button, progress that moves on screen and
ends in the result without a reload, and a preview that names every problem at once.
Small files written here, a handful of rows each.
"""

from __future__ import annotations

import re
import threading

import pytest
from playwright.sync_api import expect

from deals.models import Deal
from imports import runner, services
from imports.models import ImportJob, ImportStatus
from stages.models import CriterionKind
from tests.factories import CriterionFactory
from tests.imports.imports_support import csv_of, import_root  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("import_root"),
]

WAIT = 15_000  # ms: generous, the machine is shared; expect() retries until then
# What each row will become ("3 fail", "2 create"), not the new-organizations count.
ACTION_BADGES = ".badge[class*='action-']"
NOTHING = "Nothing to import: no row would be created or changed"


def good(n: int) -> list[str]:
    """Rows owned by the rep (on the manager's team): each would be created."""
    return [f"R{i},rep,GTX Basic,Acme,Prospecting,2016-10-20,,100" for i in range(n)]


def ownerless(n: int) -> list[str]:
    """Rows whose owner matches no user: each fails until someone is picked for them."""
    return [f"X{i},nobody,GTX Basic,Acme,Prospecting,2016-10-20,,100" for i in range(n)]


@pytest.fixture
def threaded_imports(settings, monkeypatch):
    """The zero-setup runner (no broker: IMPORT_RUNNER "thread"), on PostgreSQL+Redis too;
    the test ends only once every import thread it started has finished."""
    settings.IMPORT_RUNNER = "thread"
    started: list[int] = []
    finished = threading.Semaphore(0)
    dispatch, run_in_thread = services.dispatch, services._run_in_thread

    def tracked_dispatch(job_id: int) -> bool:
        started.append(job_id)
        return dispatch(job_id)

    def tracked_run(job_id: int) -> None:
        try:
            run_in_thread(job_id)
        finally:
            finished.release()

    monkeypatch.setattr(services, "dispatch", tracked_dispatch)
    monkeypatch.setattr(services, "_run_in_thread", tracked_run)
    yield
    for job_id in started:
        assert finished.acquire(timeout=60), f"import {job_id} still running"


@pytest.fixture
def held_batches(threaded_imports, monkeypatch):
    """One row per batch, each batch waiting for the test's release: the progress the
    page shows can then be checked step by step, whatever the machine's speed."""
    monkeypatch.setattr(runner, "BATCH_SIZE", 1)
    gate = threading.Semaphore(0)
    write_batch = runner._write_batch

    def held(*args, **kwargs):
        gate.acquire(timeout=60)
        return write_batch(*args, **kwargs)

    monkeypatch.setattr(runner, "_write_batch", held)
    yield gate
    gate.release(100)  # a failed test leaves no import thread waiting


def upload(page, live_server, text: str, name: str = "deals.csv"):
    """Upload `text` from the import page; the preview it leads to."""
    page.goto(f"{live_server.url}/import/")
    page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": text.encode()}
    )
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("heading", name=f"Deals from {name}", level=1)).to_be_visible(
        timeout=WAIT
    )
    return page


def confirm_button(page):
    return page.locator("form.import-confirm").get_by_role("button")


def import_and_wait(page, live_server, text: str):
    """Upload, confirm and watch the import to its end; its progress block."""
    upload(page, live_server, text)
    confirm_button(page).click()
    page.wait_for_url(re.compile(r"/import/\d+/status/$"), timeout=WAIT)
    progress = page.locator("#import-progress")
    expect(progress.locator(".status")).to_have_text("Done", timeout=WAIT)
    return progress


# -- flow 11: the confirm button counts only rows that will be written ------------------


def test_a_file_whose_every_row_fails_offers_no_import(login, live_server, manager, rep, stages):
    page = upload(login(manager), live_server, csv_of(*ownerless(3)))

    actions = page.locator(".import-actions")
    expect(actions).to_contain_text("All 3 rows were checked", timeout=WAIT)
    expect(actions.locator(ACTION_BADGES)).to_have_text(["3 fail"])
    expect(page.locator("table.problems")).to_contain_text("No user matches owner “nobody”")
    expect(page.get_by_text(NOTHING)).to_be_visible()
    button = confirm_button(page)
    expect(button).to_have_text("Import 0 rows")
    expect(button).to_be_disabled()
    expect(page.get_by_role("button", name=re.compile(r"Import [1-9]"))).to_have_count(0)


def test_the_confirm_button_counts_the_rows_written_and_follows_the_mapping(
    login, live_server, manager, rep, stages
):
    page = upload(login(manager), live_server, csv_of(*good(2), *ownerless(2)))

    actions = page.locator(".import-actions")
    expect(actions.locator(ACTION_BADGES)).to_have_text(["2 create", "2 fail"], timeout=WAIT)
    button = confirm_button(page)
    expect(button).to_have_text("Import 2 rows")
    expect(button).to_be_enabled()

    # Give the unknown owner's rows to the rep: the preview and the button follow.
    page.get_by_label("nobody", exact=True).select_option(str(rep.pk))
    page.get_by_role("button", name="Apply").click()
    expect(actions.locator(ACTION_BADGES)).to_have_text(["4 create"], timeout=WAIT)
    expect(confirm_button(page)).to_have_text("Import 4 rows")
    expect(confirm_button(page)).to_be_enabled()
    assert Deal.objects.count() == 0  # nothing is saved before the confirm


# -- flow 12: progress on screen, then the result, without a reload --------------------


def test_confirming_shows_the_progress_and_then_the_result_without_a_reload(
    login, live_server, manager, rep, stages, held_batches
):
    page = upload(login(manager), live_server, csv_of(*good(3)))
    expect(confirm_button(page)).to_have_text("Import 3 rows", timeout=WAIT)

    confirm_button(page).click()
    page.wait_for_url(re.compile(r"/import/\d+/status/$"), timeout=WAIT)
    page.evaluate("window.samePage = true")
    progress = page.locator("#import-progress")
    # The confirm answered before the import ran: the page shows it under way.
    expect(progress.locator(".status")).to_have_text("Importing", timeout=WAIT)
    expect(progress).to_contain_text("0 of 3 rows (0%)")

    held_batches.release()  # one row
    expect(progress).to_contain_text("1 of 3 rows (33%)", timeout=WAIT)
    expect(progress.locator("progress")).to_have_attribute("value", "1")
    expect(progress.locator(".status")).to_have_text("Importing")

    held_batches.release(2)  # the rest
    expect(progress.locator(".status")).to_have_text("Done", timeout=WAIT)
    expect(progress).to_contain_text("3 of 3 rows (100%)")
    expect(progress.locator(".import-counts div").filter(has_text="Created")).to_have_text(
        re.compile(r"Created\s*3")
    )
    expect(progress.get_by_role("link", name=re.compile("Download the summary"))).to_be_visible()
    expect(progress.get_by_role("link", name="Open the board")).to_be_visible()
    expect(progress).not_to_have_attribute("hx-trigger", re.compile("every"))  # polling ends
    assert page.evaluate("window.samePage") is True  # no reload
    assert Deal.objects.filter(owner=rep).count() == 3
    job = ImportJob.objects.get()
    assert (job.status, job.created_count) == (ImportStatus.DONE, 3)


# -- flow 15: every problem at once, and an honest re-import preview --------------------


def test_the_preview_shows_the_gate_problem_while_owners_are_unresolved(
    login, live_server, manager, rep, stages
):
    CriterionFactory(stage=stages["lead"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    text = csv_of("G1,nobody,GTX Basic,Acme,Lead in,2016-10-20,,100")
    page = upload(login(manager), live_server, text)

    problems = page.locator("table.problems")
    expect(problems).to_contain_text("No user matches owner “nobody”", timeout=WAIT)
    gate = problems.locator("tr", has_text="Blocked by entry criteria")
    expect(gate).to_have_count(1)
    expect(gate).to_contain_text("Budget ok")
    expect(gate).to_contain_text("Error")
    expect(page.locator(".preview-rows tbody tr").first).to_contain_text("Budget ok")
    expect(confirm_button(page)).to_be_disabled()


def test_a_re_import_of_the_same_file_previews_as_unchanged(
    login, live_server, manager, rep, stages, threaded_imports
):
    text = csv_of(*good(4))
    page = login(manager)
    first = import_and_wait(page, live_server, text)
    expect(first.locator(".import-counts div").filter(has_text="Created")).to_have_text(
        re.compile(r"Created\s*4")
    )

    upload(page, live_server, text)
    actions = page.locator(".import-actions")
    expect(actions.locator(ACTION_BADGES)).to_have_text(["4 unchanged"], timeout=WAIT)
    expect(actions).not_to_contain_text("update")
    expect(page.get_by_text(NOTHING)).to_be_visible()
    expect(confirm_button(page)).to_be_disabled()
    expect(page.get_by_role("button", name=re.compile(r"Import [1-9]"))).to_have_count(0)
    assert Deal.objects.count() == 4
