"""A rep on the board in a real browser: menu moves, drag and drop, gated moves."""

from __future__ import annotations

import pytest

from deals.models import Deal
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def column(page, stage):
    return page.locator(f"#column-{stage.pk}")


def test_rep_moves_a_card_with_the_menu_and_it_stays_moved(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Menu deal")
    page = login(rep)
    card = page.locator(f"#deal-{deal.pk}")
    card.get_by_label("Move to stage").select_option(label="Qualified")
    card.get_by_role("button", name="Move").click()
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    assert "1 deal" in column(page, stages["qualified"]).locator(".column-totals").inner_text()
    page.reload()
    assert column(page, stages["qualified"]).get_by_text("Menu deal").is_visible()
    assert column(page, stages["lead"]).get_by_text("Menu deal").count() == 0


def test_rep_moves_a_card_with_the_keyboard_only(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Keyboard deal")
    page = login(rep)
    select = page.locator(f"#move-{deal.pk}")
    select.focus()
    page.keyboard.press("ArrowDown")  # Lead in → Qualified
    page.keyboard.press("Tab")  # to the Move button
    assert page.evaluate("document.activeElement.textContent") == "Move"
    page.keyboard.press("Enter")
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["qualified"].pk


def test_rep_drags_a_card_to_the_next_column(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Dragged deal")
    page = login(rep)
    handle = page.locator(f"#deal-{deal.pk} .handle")
    target = column(page, stages["qualified"]).locator("ol.cards")
    # SortableJS moves the card in the page at once; wait for the server's answer.
    with page.expect_response(lambda r: "/move/" in r.url) as moved:
        handle.drag_to(target)
    assert moved.value.status == 200
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    page.reload()
    assert column(page, stages["qualified"]).get_by_text("Dragged deal").is_visible()
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["qualified"].pk


def test_gated_move_shows_missing_items_and_filling_them_completes_it(
    login, live_server, rep, stages
):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Gated deal")
    page = login(rep)
    card = page.locator(f"#deal-{deal.pk}")
    card.get_by_label("Move to stage").select_option(label="Qualified")
    card.get_by_role("button", name="Move").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert "Confirm: Budget ok" in dialog.inner_text()
    assert "Add an expected close date" in dialog.inner_text()
    assert column(page, stages["lead"]).locator(f"#deal-{deal.pk}").is_visible()
    dialog.get_by_label("Confirm: Budget ok").check()
    dialog.get_by_label("Add an expected close date").fill("2027-04-30")
    dialog.get_by_role("button", name="Save and move").click()
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    deal.refresh_from_db()
    assert deal.stage_id == stages["qualified"].pk
    assert str(deal.expected_close_date) == "2027-04-30"


def test_dragging_marks_columns_the_deal_cannot_enter(login, live_server, rep, stages):
    CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    page = login(rep)
    box = page.locator(f"#deal-{deal.pk} .handle").bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + 3)
    page.mouse.down()
    page.mouse.move(box["x"] + 60, box["y"] + 40, steps=8)
    page.locator(f"#column-{stages['demo'].pk}.is-blocked").wait_for()
    assert "is-blocked" not in (column(page, stages["qualified"]).get_attribute("class") or "")
    page.mouse.up()


def test_card_shows_what_the_next_stage_needs(login, live_server, rep, stages):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    page = login(rep)
    page.locator(f"#deal-{deal.pk} .next-stage summary").click()
    page.locator(f"#deal-{deal.pk} .next-stage .checklist").wait_for()
    assert "Confirm: Budget ok" in page.locator(f"#deal-{deal.pk} .next-stage").inner_text()
