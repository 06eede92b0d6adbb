"""One filter behaviour on the board, the dashboard and the forecast: a filter applies as
soon as it changes (no Apply button to find) and its state is in the URL, so a reload or
a shared link shows the same thing."""

from __future__ import annotations

import pytest

from tests.factories import DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_board_filter_applies_on_change_and_lives_in_the_url(
    login, live_server, manager, rep, stages
):
    mine = DealFactory(owner=manager, stage=stages["lead"], title="Manager's own")
    theirs = DealFactory(owner=rep, stage=stages["lead"], title="Rep's deal")
    page = login(manager)
    assert page.get_by_role("button", name="Apply").is_hidden()
    page.locator("#board-filters select[name=owner]").select_option(label="Me")
    page.wait_for_url("**owner=me**")
    assert page.locator(f"#deal-{mine.pk}").is_visible()
    assert page.locator(f"#deal-{theirs.pk}").count() == 0
    page.reload()
    assert page.locator("#board-filters select[name=owner]").input_value() == "me"
    assert page.locator(f"#deal-{theirs.pk}").count() == 0


@pytest.mark.parametrize("path", ["/reports/dashboard/", "/reports/forecast/"])
def test_report_filters_apply_on_change_and_live_in_the_url(
    login, live_server, manager, stages, path
):
    page = login(manager)
    page.goto(f"{live_server.url}{path}")
    period = page.locator("select[name=period]")
    choices = period.locator("option").evaluate_all("(els) => els.map((el) => el.value)")
    other = next(value for value in choices if value and value != period.input_value())
    period.select_option(other)
    page.wait_for_url(f"**period={other}**")
    page.reload()
    assert page.locator("select[name=period]").input_value() == other
