"""Flows around the board that used to dead-end, driven in real Chromium (issue 16)."""

from __future__ import annotations

import pytest

from deals.models import Deal, StageChange
from stages.models import CriterionKind
from tests.browser.board_support import htmx_idle, phone_page
from tests.browser.test_board_browser import move_with_menu
from tests.factories import CriterionFactory, DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def close_date_gate(stages):
    return CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )


def test_manager_overrides_a_gate_from_the_board_with_only_a_reason(
    login, live_server, manager, rep, stages, close_date_gate
):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Override me")
    page = login(manager)
    move_with_menu(page, deal, "Qualified")
    dialog = page.get_by_role("dialog", name="enter Qualified yet")
    dialog.wait_for()
    dialog.get_by_label("Or override with a reason").fill("Customer confirmed by phone")
    dialog.get_by_role("button", name="Save and move").click()
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    change = StageChange.objects.filter(deal=deal).latest("seq")
    assert change.to_stage_id == stages["qualified"].pk
    assert change.override_reason == "Customer confirmed by phone"


def test_manager_overrides_a_gate_from_the_deal_page_stage_path(
    login, live_server, manager, rep, stages, close_date_gate
):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Path override")
    page = login(manager)
    page.goto(f"{live_server.url}/deals/{deal.pk}/")
    page.get_by_role("navigation", name="Stage path").get_by_role(
        "button", name="Qualified"
    ).click()
    # The gate form keeps the deal's header and a way back to the deal.
    page.get_by_role("heading", name="Path override", level=1).wait_for()
    page.get_by_role("link", name="← Back to Path override").wait_for()
    page.get_by_label("Or override with a reason").fill("Signed LOI")
    page.get_by_role("button", name="Save and move").click()
    page.wait_for_url(f"{live_server.url}/deals/{deal.pk}/")
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["qualified"].pk


def test_rep_still_has_to_fill_the_missing_field(login, live_server, rep, stages, close_date_gate):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="No override")
    page = login(rep)
    move_with_menu(page, deal, "Qualified")
    dialog = page.get_by_role("dialog", name="enter Qualified yet")
    dialog.wait_for()
    assert dialog.get_by_label("Or override with a reason").count() == 0
    assert dialog.get_by_label("Add an expected close date").get_attribute("required") is not None


def test_new_deal_in_a_column_that_needs_a_checklist_item_and_a_contact_role(
    login, live_server, rep, stages
):
    """The column's inline quick add, by keyboard: a refused first try names each missing
    item on its field; the second lands the card on top of the column, totals updated,
    without a reload."""
    from deals.models import ChecklistTick, DealContact

    CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    CriterionFactory(
        stage=stages["demo"], kind=CriterionKind.CONTACT_ROLE, contact_role="decision_maker"
    )
    DealFactory(owner=rep, stage=stages["demo"], title="Already here", amount=1000)
    page = login(rep)
    page.evaluate("window.sameBoard = true")
    column = page.locator(f"#column-{stages['demo'].pk}")
    column.get_by_role("link", name="Add a deal to Demo").focus()
    page.keyboard.press("Enter")
    form = column.get_by_role("form", name="New deal in Demo")
    form.wait_for()
    htmx_idle(page)
    assert page.evaluate("document.activeElement.name") == "title"
    page.keyboard.type("Straight to demo")
    page.keyboard.press("Tab")
    page.keyboard.type("Acme")
    page.keyboard.press("Tab")
    page.keyboard.type("2500")
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        page.keyboard.press("Enter")
    assert refused.value.status == 422
    form.get_by_text("Add a contact with the role decision maker", exact=True).wait_for()
    assert form.get_by_text("Confirm: Budget ok").count() == 2  # the label and its error
    assert page.evaluate("document.activeElement.type") == "checkbox"
    assert not Deal.objects.filter(title="Straight to demo").exists()

    htmx_idle(page)
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.type("Dana Lee")
    page.keyboard.press("Enter")
    first = column.locator(".cards > .card").first
    first.get_by_role("link", name="Straight to demo").wait_for()
    assert column.locator(".column-totals .count").inner_text() == "2 deals"
    assert column.locator(".column-totals .sum").inner_text() == "$3,500"
    assert page.evaluate("window.sameBoard") is True  # no reload
    assert form.get_by_label("Title").input_value() == ""  # ready for the next one
    deal = Deal.objects.get(title="Straight to demo")
    assert deal.stage_id == stages["demo"].pk
    assert ChecklistTick.objects.filter(deal=deal).count() == 1
    contact = DealContact.objects.get(deal=deal)
    assert (contact.role, contact.person.name) == ("decision_maker", "Dana Lee")
    page.keyboard.press("Escape")
    assert column.locator(".quick-add form").count() == 0
    assert page.evaluate("document.activeElement.className") == "new-deal"


def test_quick_add_in_a_column_no_deal_may_start_in_offers_the_stages_it_may(
    login, live_server, rep, stages
):
    CriterionFactory(stage=stages["proposal"], kind=CriterionKind.NO_SKIP)
    page = login(rep)
    column = page.locator(f"#column-{stages['proposal'].pk}")
    column.get_by_role("link", name="Add a deal to Proposal").click()
    offer = column.get_by_role("group", name="start in Proposal")
    offer.get_by_role("link", name="Lead in").click()
    form = column.get_by_role("form", name="New deal in Lead in")
    form.get_by_label("Title").fill("Started right")
    form.get_by_role("button", name="Add deal").click()
    page.locator(f"#column-{stages['lead'].pk} .card").first.get_by_role(
        "link", name="Started right"
    ).wait_for()
    assert Deal.objects.get(title="Started right").stage_id == stages["lead"].pk


def test_quick_add_on_a_phone(browser, live_server, rep, stages):
    page = phone_page(browser, live_server, rep)
    column = page.locator(f"#column-{stages['lead'].pk}")
    column.get_by_role("link", name="Add a deal to Lead in").tap()
    form = column.get_by_role("form", name="New deal in Lead in")
    form.get_by_label("Title").fill("From my phone")
    add = form.get_by_role("button", name="Add deal")
    for element in (form, form.get_by_label("Amount"), add):
        box = element.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, element
    add.tap()
    column.locator(".card").first.get_by_role("link", name="From my phone").wait_for()
    page.context.close()


def test_on_a_phone_the_audit_filters_show_without_a_toggle(browser, live_server, admin_user):
    """Only the board's filter bar folds behind a button; the audit has none, so its
    filters must stay visible at phone width."""
    page = phone_page(browser, live_server, admin_user)
    page.goto(f"{live_server.url}/accounts/audit/")
    assert page.get_by_role("form", name="Filter events").is_visible()
    assert page.get_by_label("Kind").is_visible()
    page.context.close()


def test_deal_page_reads_well_stage_days_spaced_and_checkbox_beside_its_label(
    login, live_server, rep, stages
):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Tidy page")
    page = login(rep)
    page.goto(f"{live_server.url}/deals/{deal.pk}/")
    # A space between the stage and its days ("Lead in · 0 days", not "Lead in· 0 days").
    gap = page.evaluate(
        """() => { const li = document.querySelector('.stage-path li.current');
        const range = document.createRange(); range.selectNodeContents(li.firstChild);
        const name = [...li.childNodes].find(n => n.nodeType === 3 && n.textContent.trim());
        range.selectNodeContents(name);
        return li.querySelector('.stage-days').getBoundingClientRect().left
            - range.getBoundingClientRect().right; }"""
    )
    assert gap >= 3
    box = page.get_by_label("Already done").bounding_box()
    label = page.get_by_text("Already done").bounding_box()
    assert abs((box["y"] + box["height"] / 2) - (label["y"] + label["height"] / 2)) < 6
