"""An admin adds a recipe in Settings > Automations, moves a card on the board into the
recipe's stage, and reads in the rule's run log what the automation did."""

from __future__ import annotations

import pytest

from deals.models import Activity
from tests.browser.board_support import move_with_menu
from tests.factories import DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_recipe_fires_when_a_card_moves_and_its_run_log_says_what_it_did(
    login, live_server, admin_user, rep, stages, eager
):
    deal = DealFactory(owner=rep, stage=stages["qualified"], title="Acme renewal")
    page = login(admin_user, "demo-password")

    page.goto(f"{live_server.url}/settings/automations/")
    recipe = page.locator("#recipe-demo_prep")
    recipe.get_by_role("button", name="Add").click()
    page.get_by_text("Recipe added").wait_for()
    rule_row = page.locator("#rule-list li").filter(has_text="Prepare the demo")
    assert "Active" in rule_row.inner_text()

    page.goto(f"{live_server.url}/")
    move_with_menu(page, deal, "Demo")
    page.locator("#column-" + str(stages["demo"].pk)).get_by_text("Acme renewal").wait_for()

    page.goto(f"{live_server.url}/settings/automations/")
    page.locator("#rule-list li").filter(has_text="Prepare the demo").get_by_role(
        "link", name="Run log"
    ).click()
    log = page.locator("#run-log")
    log.get_by_text("Created task “Prepare demo”").wait_for()
    assert "deal.moved" in log.inner_text()
    assert Activity.objects.filter(deal=deal, subject="Prepare demo", owner=rep).count() == 1
