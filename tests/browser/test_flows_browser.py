"""Flows around the board that used to dead-end, driven in real Chromium (issue 16)."""

from __future__ import annotations

import pytest

from deals.models import Deal, StageChange
from stages.models import CriterionKind
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
    assert page.get_by_role("heading", name="Path override", level=1).is_visible()
    assert page.get_by_role("link", name="← Back to Path override").is_visible()
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
    from deals.models import ChecklistTick, DealContact

    CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    CriterionFactory(
        stage=stages["demo"], kind=CriterionKind.CONTACT_ROLE, contact_role="decision_maker"
    )
    page = login(rep)
    page.get_by_role("link", name="New deal in Demo").click()
    page.get_by_label("Title").fill("Straight to demo")
    page.get_by_role("combobox", name="Organization").fill("Acme")
    page.get_by_label("Confirm: Budget ok").check()
    page.get_by_label("who is the decision maker?").fill("Dana Lee")
    page.get_by_role("button", name="Create deal").click()
    page.wait_for_url(f"{live_server.url}/?pipeline={stages['demo'].pipeline_id}")
    deal = Deal.objects.get(title="Straight to demo")
    assert deal.stage_id == stages["demo"].pk
    assert ChecklistTick.objects.filter(deal=deal).count() == 1
    contact = DealContact.objects.get(deal=deal)
    assert (contact.role, contact.person.name) == ("decision_maker", "Dana Lee")
