"""The CSP in a real browser: Chromium reports no violation on any main page, with htmx
swapping fragments in (a move, a refused move's form, the search dropdown).

A violation is what the browser itself reports (`securitypolicyviolation` events and
"Refused to ..." console errors), so this also catches what the markup checks of
tests/security/test_hardening.py cannot see: styles or code that htmx or our scripts
would add at run time.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from stages.models import CriterionKind
from tests.browser.board_support import card_action
from tests.factories import CriterionFactory, DealFactory, OrganizationFactory, PersonFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def watched(page):
    refused: list[str] = []
    page.add_init_script(WATCH)
    page.on(
        "console",
        lambda message: (
            refused.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None
        ),
    )

    def violations() -> list[str]:
        return [*refused, *page.evaluate("window.__violations || []")]

    return violations


def test_main_pages_and_htmx_swaps_raise_no_csp_violation(
    login,
    live_server,
    watched,
    admin_user,
    stages,
):
    organization = OrganizationFactory(name="Acme <b>bold</b>")
    person = PersonFactory(name="Ada", organization=organization)
    deal = DealFactory(
        owner=admin_user, stage=stages["lead"], title="Csp deal", organization=organization
    )
    gated = DealFactory(owner=admin_user, stage=stages["lead"], title="Gated deal")
    CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label="Signed")
    tab = login(admin_user, password="demo-password")
    pages = [
        reverse("board"),
        reverse("deal_detail", args=[deal.pk]),
        reverse("reports:dashboard"),
        reverse("reports:forecast"),
        reverse("stages:pipelines"),
        reverse("stages:pipeline", args=[stages["lead"].pipeline_id]),
        reverse("stages:stage", args=[stages["demo"].pk]),
        reverse("contacts:organization", args=[organization.pk]),
        reverse("contacts:person", args=[person.pk]),
        reverse("notifications"),
        reverse("accounts:audit"),
        reverse("my_activities"),
    ]
    for path in pages:
        tab.goto(f"{live_server.url}{path}")
        tab.wait_for_load_state("networkidle")
        assert watched() == [], path

    # htmx at work: a menu move (the card swapped), a refused move (the gate form swapped in).
    tab.goto(f"{live_server.url}{reverse('board')}")
    menu = tab.locator("#move-menu")
    card_action(tab, deal, "Move to stage")
    menu.get_by_label("Move to stage").select_option(label="Qualified")
    menu.get_by_role("button", name="Move", exact=True).click()
    tab.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    card_action(tab, gated, "Move to stage")
    menu.get_by_label("Move to stage").select_option(label="Demo")
    menu.get_by_role("button", name="Move", exact=True).click()
    tab.get_by_text("Signed").first.wait_for()
    tab.keyboard.press("Escape")  # the refused move's form is a modal
    # The header search box's dropdown.
    tab.get_by_role("searchbox").first.fill("Csp")
    tab.locator(".search-dropdown").wait_for()

    assert watched() == []


INLINE_STYLE = "document.body.insertAdjacentHTML('beforeend', '<p style=color:red>x</p>')"


def test_the_watch_sees_a_violation_when_there_is_one(login, live_server, watched, rep):
    tab = login(rep)
    tab.evaluate(INLINE_STYLE)
    tab.wait_for_timeout(300)

    assert any("style" in violation for violation in watched())
