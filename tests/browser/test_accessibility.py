"""axe-core on every main page, for each role, on a desktop and a phone: no critical or
serious violation. The board is also scanned with its card menu and a refused move's
form open, since those are drawn by board.js."""

from __future__ import annotations

import pytest
from django.urls import reverse

from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory, OrganizationFactory, PersonFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BLOCKING = {"critical", "serious"}


def scan(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


@pytest.fixture
def world(rep, teammate, manager, admin_user, stages):
    organization = OrganizationFactory(name="Acme")
    person = PersonFactory(name="Ada", organization=organization)
    deal = DealFactory(
        owner=rep, stage=stages["lead"], title="Axe deal", organization=organization
    )
    DealFactory(owner=teammate, stage=stages["qualified"], title="Their deal")
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    return {"deal": deal, "organization": organization, "person": person, "stages": stages}


def pages_for(role: str, world) -> list[str]:
    common = [
        reverse("board"),
        reverse("deal_detail", args=[world["deal"].pk]),
        reverse("reports:dashboard"),
        reverse("reports:forecast"),
        reverse("my_activities"),
        reverse("notifications"),
        reverse("contacts:organizations"),
        reverse("contacts:organization", args=[world["organization"].pk]),
        reverse("contacts:people"),
        reverse("contacts:person", args=[world["person"].pk]),
    ]
    if role == "admin":
        common += [
            reverse("stages:pipelines"),
            reverse("stages:pipeline", args=[world["stages"]["lead"].pipeline_id]),
            reverse("stages:stage", args=[world["stages"]["qualified"].pk]),
            reverse("accounts:audit"),
            reverse("automations:rules"),
            reverse("automations:new"),
        ]
    return common


@pytest.mark.parametrize("role", ["rep", "manager", "admin"])
@pytest.mark.parametrize("size", [(1440, 900), (390, 844)], ids=["desktop", "phone"])
def test_main_pages_have_no_serious_accessibility_violation(
    browser, live_server, world, role, size, request
):
    user = request.getfixturevalue({"admin": "admin_user"}.get(role, role))
    # axe's script is injected by the test, which the page's CSP would refuse.
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/accounts/login/")
    assert scan(page) == [], "login"
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("demo-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    found = {}
    for path in pages_for(role, world):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        found[path] = scan(page)

    if role == "rep":
        page.goto(f"{live_server.url}/")
        deal = world["deal"]
        page.locator(f"#deal-{deal.pk}").get_by_role("button", name="Actions for").click()
        found["board: card menu"] = scan(page)
        page.keyboard.press("Escape")
        page.locator(f"#deal-{deal.pk} .card-title").focus()
        page.keyboard.press("m")
        page.keyboard.press("Enter")  # to Qualified, which needs a checklist item
        page.locator("#dialog .gate").wait_for()
        found["board: gate form"] = scan(page)
        page.keyboard.press("Escape")
        page.locator(".new-deal").first.click()
        page.locator(".quick-add form").wait_for()
        found["board: quick add"] = scan(page)
    context.close()
    assert {path: issues for path, issues in found.items() if issues} == {}
