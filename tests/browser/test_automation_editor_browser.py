"""Issue 18 in the browser: an admin builds a rule with the point-and-click editor (no
JSON), fires it by moving a card and reads its run log; and the issue's "Done when": the
five recipes added (one adjusted with the editor to send a webhook), deals moved and
closed on the board, and the activities, notices, assignments and webhooks they caused
read in each rule's run log."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from automations.models import Rule
from deals.models import Activity, Deal, Notification
from tests.browser.board_support import htmx_idle, move_with_menu
from tests.factories import DealFactory
from webhooks.models import Delivery, Endpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _editor_step(page) -> None:
    """Wait for the editor's htmx swap to settle (new rows are wired only then)."""
    htmx_idle(page, "#rule-form")


def _run_log(page, live_server, rule_name: str):
    page.goto(f"{live_server.url}/settings/automations/")
    page.locator("#rule-list li").filter(has_text=rule_name).get_by_role(
        "link", name="Run log"
    ).click()
    return page.locator("#run-log")


def test_an_admin_builds_a_rule_by_pointing_and_clicking_and_it_fires_on_a_move(
    login, live_server, admin_user, rep, stages, pipeline, eager
):
    deal = DealFactory(
        owner=rep, stage=stages["qualified"], title="Acme renewal", amount=Decimal("5000")
    )
    page = login(admin_user, "demo-password")
    page.goto(f"{live_server.url}/settings/automations/new/")
    assert "JSON" not in page.content()

    page.get_by_label("Name", exact=True).fill("Demo: prepare and tell")
    page.get_by_label("When").select_option("stage_entered")
    _editor_step(page)
    trigger = page.locator("#rule-trigger")
    trigger.get_by_label("Stage", exact=True).select_option(label=f"{pipeline.name}: Demo")

    # A condition row, added from the keyboard: the focus lands on its kind picker.
    page.get_by_role("button", name="Add a condition").focus()
    page.keyboard.press("Enter")
    _editor_step(page)
    kind = page.locator("#c-row-0").get_by_label("Condition", exact=True)
    expect(kind).to_be_focused()
    kind.select_option("amount")
    _editor_step(page)
    condition = page.locator("#c-row-0")
    condition.get_by_label("Amount").wait_for()
    condition.get_by_label("Comparison").select_option("gte")
    condition.get_by_label("Amount").fill("1000")

    first = page.locator("#a-row-0")
    first.get_by_label("Subject").fill("Prepare demo")
    first.get_by_label("Due in (business days)").fill("1")

    page.get_by_role("button", name="Add an action").click()
    _editor_step(page)
    second = page.locator("#a-row-1")
    second.get_by_label("Action", exact=True).select_option("notify")
    _editor_step(page)
    second.get_by_label("Message").wait_for()
    second.get_by_label("the owner").check()
    second.get_by_label("Message").fill("Demo booked: {deal}")
    # Reordered from the keyboard; the focus follows the moved row.
    second.get_by_role("button", name="Move up").focus()
    page.keyboard.press("Enter")
    _editor_step(page)
    expect(page.locator("#down-a-0")).to_be_focused()
    expect(page.locator("#a-row-0").get_by_label("Message")).to_have_value("Demo booked: {deal}")
    expect(page.locator("#a-row-1").get_by_label("Subject")).to_have_value("Prepare demo")

    page.get_by_role("button", name="Save", exact=True).last.click()
    page.get_by_text("Automation “Demo: prepare and tell” saved.").wait_for()
    rule = Rule.objects.get(name="Demo: prepare and tell")
    assert [a["kind"] for a in rule.actions] == ["notify", "create_activity"]
    assert rule.conditions["items"] == [{"kind": "amount", "op": "gte", "value": "1000.00"}]

    page.goto(f"{live_server.url}/")
    move_with_menu(page, deal, "Demo")
    page.locator(f"#column-{stages['demo'].pk}").get_by_text("Acme renewal").wait_for()

    log = _run_log(page, live_server, "Demo: prepare and tell")
    log.get_by_text("Created task “Prepare demo”").wait_for()
    assert "Notified" in log.inner_text() and "deal.moved" in log.inner_text()
    assert Activity.objects.filter(deal=deal, subject="Prepare demo", owner=rep).count() == 1
    assert Notification.objects.filter(
        user=rep, text__endswith="Demo booked: Acme renewal"
    ).exists()


def test_done_when_five_recipes_act_on_the_board_and_their_run_logs_say_so(
    login, live_server, admin_user, manager, rep, teammate, team, stages, eager, monkeypatch
):
    from deals import services, stalled
    from webhooks import http

    stages["proposal"].name = "Negotiation"
    stages["proposal"].save()
    sent: list[str] = []
    monkeypatch.setattr(
        http,
        "post",
        lambda url, body, headers: (
            sent.append(url) or http.Outcome(status_code=200, duration_ms=1, excerpt="")
        ),
    )
    Endpoint.objects.create(
        owner=admin_user,
        url="https://example.com/hook",
        description="CRM hook",
        events=["deal.*"],
        secret="whsec_" + "A" * 44,
    )
    page = login(admin_user, "demo-password")

    page.goto(f"{live_server.url}/settings/automations/")
    for slug in [
        "demo_prep",
        "won_onboarding",
        "stalled_negotiation",
        "round_robin",
        "close_date_reminder",
    ]:
        recipe = page.locator(f"#recipe-{slug}")
        if slug == "round_robin":
            recipe.get_by_label("Team").select_option(label=team.name)
        recipe.get_by_role("button", name="Add").click()
        page.get_by_text("Recipe added").wait_for()
    assert Rule.objects.filter(is_active=True).count() == 5

    # Adjust a recipe in the editor: the won deal is also sent to a webhook.
    page.get_by_role("link", name="Won: tell the manager, book onboarding", exact=True).click()
    page.get_by_role("button", name="Add an action").click()
    _editor_step(page)
    added = page.locator("#a-row-2")
    added.get_by_label("Action", exact=True).select_option("send_webhook")
    _editor_step(page)
    added.get_by_label("Webhook endpoint").select_option(label="CRM hook")
    page.get_by_role("button", name="Save", exact=True).last.click()
    page.get_by_text("saved.").wait_for()

    # Deals of the rep's team: one created (round-robin), two moved, one stalling, one
    # whose close date is a week away with nothing planned.
    today = timezone.localdate()
    demo = DealFactory(owner=rep, stage=stages["qualified"], title="Demo deal")
    won = DealFactory(owner=rep, stage=stages["proposal"], title="Won deal")
    stuck = DealFactory(
        owner=rep,
        stage=stages["proposal"],
        title="Stuck deal",
        expected_close_date=today - timedelta(days=3),
    )
    soon = DealFactory(
        owner=rep,
        stage=stages["qualified"],
        title="Soon deal",
        expected_close_date=today + timedelta(days=7),
    )
    created = services.create_deal(by=rep, title="Fresh deal", stage=stages["lead"])

    page.goto(f"{live_server.url}/")
    move_with_menu(page, Deal.objects.get(pk=demo.pk), "Demo")
    page.locator(f"#column-{stages['demo'].pk}").get_by_text("Demo deal").wait_for()
    move_with_menu(page, Deal.objects.get(pk=won.pk), "Won")
    page.get_by_role("dialog", name="as Won").get_by_role("button", name="Mark as Won").click()
    page.locator(f"#deal-{won.pk}").wait_for(state="detached")
    # The beat's jobs: the stalled check and the time-based scan.
    stalled.refresh_flags(deal_ids=[stuck.pk])
    from automations import tasks

    tasks.scan()

    assert Activity.objects.filter(deal=demo, subject="Prepare demo").exists()
    assert Activity.objects.filter(deal=won, subject="Onboarding call").exists()
    assert Notification.objects.filter(user=manager, text__endswith="“Won deal” was won.").exists()
    assert Notification.objects.filter(user=manager, text__contains="Stuck deal").exists()
    assert Notification.objects.filter(user=rep, deal=soon, text__contains="Soon deal").exists()
    assert Deal.objects.get(pk=created.pk).owner_id in {rep.pk, teammate.pk, manager.pk}
    assert Delivery.objects.filter(event_name="automation.fired", deal_id=won.pk).exists()
    assert "https://example.com/hook" in sent  # signed and sent (deal.* events too)

    expected = {
        "Prepare the demo": "Created task “Prepare demo”",
        "Won: tell the manager": "Queued a webhook to https://example.com/hook",
        "Stalled in Negotiation": "Notified",
        "Round-robin new deals": "the deal",
        "Close date in 7 days": "Notified",
    }
    for name, outcome in expected.items():
        log = _run_log(page, live_server, name)
        log.get_by_text(outcome).first.wait_for()
