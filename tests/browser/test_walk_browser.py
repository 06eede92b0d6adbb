"""The rest of issue 16's broken flows, walked in real Chromium as a user would (the
service and view tests pin the rules; these check that the pages show them)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from deals import activities
from tests.browser.board_support import move_with_menu
from tests.factories import DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_undo_from_the_board_keeps_the_days_in_stage(login, live_server, rep, stages):
    deal = DealFactory(
        owner=rep,
        stage=stages["lead"],
        title="Patient deal",
        stage_entered_at=timezone.now() - timedelta(days=5),
    )
    page = login(rep)
    move_with_menu(page, deal, "Qualified")
    page.locator("#flash").get_by_role("button", name="Undo").click()
    page.locator(f"#column-{stages['lead'].pk} #deal-{deal.pk}").wait_for()
    page.goto(f"{live_server.url}/deals/{deal.pk}/")
    assert "Lead in (5 days)" in page.locator(".details, dl").first.inner_text()


def test_a_won_deal_page_shows_the_outcome_and_its_close_date(login, live_server, rep, stages):
    deal = DealFactory(
        owner=rep,
        stage=stages["proposal"],
        title="Big win",
        amount=Decimal("900"),
        expected_close_date=timezone.localdate() + timedelta(days=40),
    )
    page = login(rep)
    page.goto(f"{live_server.url}/deals/{deal.pk}/")
    page.get_by_role("button", name="Mark won").click()
    page.get_by_text("Won on").first.wait_for()
    text = page.locator("main").inner_text()
    assert "Last open stage" not in text and "To enter" not in text
    deal.refresh_from_db()
    assert deal.expected_close_date == timezone.localdate()


def test_logged_activity_notes_show_on_the_deal_page(login, live_server, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Chatty deal")
    activities.log_activity(
        deal, by=rep, type="call", subject="Intro call", done=True, note="Budget is 20k, Q1."
    )
    page = login(rep)
    page.goto(f"{live_server.url}/deals/{deal.pk}/")
    assert page.get_by_text("Budget is 20k, Q1.").count() == 2  # activities and timeline
    assert page.get_by_role("heading", name="Timeline").is_visible()


def test_the_board_team_filter_lists_each_team_once(
    login, live_server, admin_user, rep, teammate, outsider, stages
):
    page = login(admin_user)
    options = page.get_by_label("Team").locator("option").all_inner_texts()
    assert options[0] == "All teams"
    assert options[1:] == sorted(set(options[1:]), key=str.casefold)


def test_the_dashboard_labels_counts_as_counts(login, live_server, manager, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("100"))
    page = login(manager)
    page.goto(f"{live_server.url}/reports/dashboard/")
    page.wait_for_load_state("networkidle")
    assert "Open deals at period end (USD)" not in page.locator("main").inner_text()
