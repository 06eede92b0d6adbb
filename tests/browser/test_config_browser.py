"""An admin configures stages in a real browser: drag, keyboard, in-place criterion form."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from stages.models import EntryCriterion, Stage

# The browser fixtures live with the other browser tests; this file sits with its feature.
from tests.factories import DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def order(pipeline):
    return list(
        Stage.objects.filter(pipeline=pipeline)
        .order_by("position", "id")
        .values_list("name", flat=True)
    )


@pytest.fixture
def admin_page(login, live_server, admin_user):
    tab = login(admin_user)
    errors: list[str] = []
    # A refused action answers 422, which Chromium logs as a failed load: not an error here.
    tab.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.errors = errors
    return tab


def test_admin_drags_a_stage_above_another(admin_page, live_server, pipeline, stages):
    tab = admin_page
    tab.goto(f"{live_server.url}/settings/pipelines/{pipeline.pk}/")
    handle = tab.locator(f"#stage-{stages['proposal'].pk} [data-drag-handle]")
    # SortableJS moves the row at once; wait for the server to have saved the order.
    with tab.expect_response(lambda r: r.request.method == "POST") as saved:
        handle.drag_to(tab.locator(f"#stage-{stages['qualified'].pk}"))
    assert saved.value.ok
    rows = tab.locator("#stage-list li")
    expect(rows.nth(1)).to_have_id(f"stage-{stages['proposal'].pk}")
    assert order(pipeline).index("Proposal") < order(pipeline).index("Qualified")
    assert tab.errors == []


def test_admin_reorders_stages_with_the_keyboard_only(admin_page, live_server, pipeline, stages):
    tab = admin_page
    tab.goto(f"{live_server.url}/settings/pipelines/{pipeline.pk}/")
    button = tab.locator(f"#stage-{stages['lead'].pk}-down")
    button.focus()
    tab.keyboard.press("Enter")
    rows = tab.locator("#stage-list li")
    expect(rows.nth(1)).to_have_id(f"stage-{stages['lead'].pk}")
    # The focus stays on the pressed button, so pressing again moves it further.
    assert tab.evaluate("document.activeElement.id") == f"stage-{stages['lead'].pk}-down"
    tab.keyboard.press("Enter")
    expect(rows.nth(2)).to_have_id(f"stage-{stages['lead'].pk}")
    assert order(pipeline)[:3] == ["Qualified", "Demo", "Lead in"]
    assert tab.errors == []


def test_admin_adds_a_checklist_criterion_through_the_in_place_form(
    admin_page, live_server, stages
):
    tab = admin_page
    tab.goto(f"{live_server.url}/settings/stages/{stages['proposal'].pk}/")
    tab.get_by_label("Kind of criterion").select_option(label="Checklist confirmation")
    tab.get_by_label("Confirmation the rep ticks").fill("Budget approved")
    assert tab.get_by_label("Minimum amount").count() == 0
    tab.get_by_role("button", name="Add criterion").click()
    tab.locator("#criteria .cfg-name").get_by_text("Confirm: Budget approved").wait_for()
    assert EntryCriterion.objects.get().label == "Budget approved"
    assert tab.errors == []


def test_admin_sees_a_refusal_in_place(admin_page, live_server, pipeline, stages):
    DealFactory(stage=stages["demo"])
    tab = admin_page
    tab.goto(f"{live_server.url}/settings/pipelines/{pipeline.pk}/")
    tab.locator(f"#stage-{stages['demo'].pk}-state").click()
    tab.locator("#stage-list .cfg-error").get_by_text("Demo still holds 1 deal").wait_for()
    assert not Stage.objects.get(pk=stages["demo"].pk).is_archived
    assert tab.errors == []
