"""A rep on the board in a real browser: menu moves, drag and drop, gated moves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deals.models import Deal, StalledFlag
from stages.models import CriterionKind
from tests.browser.board_support import card_action, drag_across, drag_onto, move_with_menu
from tests.factories import CriterionFactory, DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def column(page, stage):
    return page.locator(f"#column-{stage.pk}")


def test_rep_moves_a_card_with_the_menu_and_it_stays_moved(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Menu deal")
    page = login(rep)
    move_with_menu(page, deal, "Qualified")
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    assert "1 deal" in column(page, stages["qualified"]).locator(".column-totals").inner_text()
    assert "0 deals" in column(page, stages["lead"]).locator(".column-totals").inner_text()
    assert page.locator(f"#deal-{deal.pk}").count() == 1
    page.reload()
    assert column(page, stages["qualified"]).get_by_text("Menu deal").is_visible()
    assert column(page, stages["lead"]).get_by_text("Menu deal").count() == 0


def test_rep_moves_a_card_with_the_keyboard_only(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Keyboard deal")
    page = login(rep)
    page.keyboard.press("Tab")  # "Skip to content"
    page.keyboard.press("Enter")  # lands on the first card
    assert page.evaluate("document.activeElement.textContent") == "Keyboard deal"
    page.keyboard.press("m")  # the move dialog, on the next stage
    assert page.evaluate("document.activeElement.id") == "move-stage"
    assert page.locator("#move-stage").input_value() == str(stages["qualified"].pk)
    page.keyboard.press("Enter")
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["qualified"].pk
    # Focus follows the card to its new column, ready for the next move.
    page.wait_for_function(f"() => document.activeElement?.closest('#deal-{deal.pk}') !== null")
    assert page.evaluate("document.activeElement.textContent") == "Keyboard deal"


def test_card_menu_works_from_the_keyboard(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Menu keys deal")
    page = login(rep)
    page.locator(f"#deal-{deal.pk} .card-title").focus()
    page.keyboard.press(".")
    assert page.evaluate("document.activeElement.getAttribute('role')") == "menuitem"
    page.keyboard.press("ArrowDown")
    assert "next?" in page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Escape")
    assert page.locator("#card-menu").is_hidden()
    assert page.evaluate("document.activeElement.classList.contains('card-menu')")


def test_escape_closes_the_menu_and_returns_to_the_card(login, live_server, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    theirs = DealFactory(owner=teammate, stage=stages["lead"])
    page = login(rep)
    assert page.locator(f"#deal-{theirs.pk} .card-menu").count() == 0
    page.locator(f"#deal-{deal.pk} .card-title").focus()
    page.keyboard.press("m")
    assert page.locator("#move-menu").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#move-menu").is_visible()
    assert page.evaluate("document.activeElement.closest('.card').id") == f"deal-{deal.pk}"
    assert Deal.objects.get(pk=deal.pk).version == 1


def test_menu_offers_won_and_moving_there_takes_the_card_off_the_board(
    login, live_server, rep, stages
):
    deal = DealFactory(owner=rep, stage=stages["proposal"], title="Closing deal")
    page = login(rep)
    move_with_menu(page, deal, "Won")
    page.get_by_role("dialog", name="as Won").get_by_role("button", name="Mark as Won").click()
    page.locator("#flash .undo").wait_for()
    assert page.locator(f"#deal-{deal.pk}").count() == 0
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["won"].pk


def test_dropping_on_won_confirms_amount_and_close_date_and_can_be_undone(
    login, live_server, rep, stages
):
    deal = DealFactory(owner=rep, stage=stages["proposal"], title="Big win", amount=4200)
    page = login(rep)
    drag_onto(page, page.locator(f"#deal-{deal.pk} .handle"), page.locator(".dropzone-won"))
    dialog = page.get_by_role("dialog", name="Mark Big win as Won")
    dialog.wait_for()
    assert dialog.get_by_label("Amount won").input_value() == "4200.00"
    assert dialog.get_by_label("Close date").input_value() == timezone.localdate().isoformat()
    dialog.get_by_role("button", name="Mark as Won").click()
    page.locator(f"#deal-{deal.pk}").wait_for(state="detached")
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["won"].pk
    page.locator("#flash").get_by_role("button", name="Undo").click()
    page.locator(f"#column-{stages['proposal'].pk} #deal-{deal.pk}").wait_for()
    assert Deal.objects.get(pk=deal.pk).stage_id == stages["proposal"].pk


def test_dropping_on_lost_asks_the_reason(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], title="Lost cause")
    page = login(rep)
    drag_onto(page, page.locator(f"#deal-{deal.pk} .handle"), page.locator(".dropzone-lost"))
    dialog = page.get_by_role("dialog", name="Mark Lost cause as Lost")
    dialog.get_by_label("Why was it lost?").fill("Chose a competitor")
    dialog.get_by_role("button", name="Mark as Lost").click()
    page.locator(f"#deal-{deal.pk}").wait_for(state="detached")
    deal.refresh_from_db()
    assert deal.stage_id == stages["lost"].pk and deal.lost_reason == "Chose a competitor"


def test_load_more_after_a_move_shows_the_next_cards_without_a_gap(
    login, live_server, rep, stages, settings
):
    settings.BOARD_PAGE_SIZE = 2
    first, _second, third = (
        DealFactory(owner=rep, stage=stages["lead"], position=i, title=f"Lead {i}")
        for i in range(3)
    )
    page = login(rep)
    move_with_menu(page, first, "Qualified")
    page.locator(f"#column-{stages['qualified'].pk} #deal-{first.pk}").wait_for()
    lead = column(page, stages["lead"])
    lead.get_by_role("link", name="Load more").click()
    lead.locator(f"#deal-{third.pk}").wait_for()
    assert lead.locator(".card").count() == 2


def test_rep_snoozes_a_stalled_card_from_the_board(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    StalledFlag.objects.create(deal=deal, rule="no_next_step")
    page = login(rep)
    card_action(page, deal, "Snooze…")
    dialog = page.locator("#snooze-dialog")
    dialog.get_by_label("Until").fill((timezone.localdate() + timedelta(days=4)).isoformat())
    dialog.get_by_label("Reason").fill("Champion on holiday")
    dialog.get_by_role("button", name="Snooze").click()
    page.locator(f"#stalled-{deal.pk} .is-snoozed").wait_for()
    assert "Champion on holiday" in page.locator(f"#stalled-{deal.pk}").inner_text()
    deal.refresh_from_db()
    assert deal.snooze_reason == "Champion on holiday"
    card_action(page, deal, "End snooze")
    page.locator(f"#stalled-{deal.pk} .is-snoozed").wait_for(state="detached")
    deal.refresh_from_db()
    assert deal.snoozed_until is None


def test_rep_drags_a_card_to_the_next_column(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Dragged deal")
    page = login(rep)
    handle = page.locator(f"#deal-{deal.pk} .handle")
    # SortableJS moves the card in the page at once; wait for the server's answer.
    with page.expect_response(lambda r: "/move/" in r.url) as moved:
        drag_across(page, handle, column(page, stages["qualified"]))
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
    move_with_menu(page, deal, "Qualified")
    dialog = page.get_by_role("dialog", name="enter Qualified yet")
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
    card_action(page, deal, "next?")
    page.locator("#next-dialog .checklist").wait_for()
    assert "Confirm: Budget ok" in page.locator("#next-dialog").inner_text()
