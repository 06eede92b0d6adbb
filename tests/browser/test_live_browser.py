"""The live board in real browsers: what one user does, the others' open boards show.

Served by uvicorn (ASGI), as production serves it: pytest-django's live_server is a
threaded WSGI server, on which an open event stream would hold a thread.
"""

from __future__ import annotations

import socket
import threading
import time
from decimal import Decimal

import pytest

from deals import live, services
from tests.browser.board_support import move_with_menu
from tests.factories import DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEEN_WITHIN_MS = 2000


@pytest.fixture
def asgi_server(transactional_db, settings):
    import uvicorn
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.asgi import get_asgi_application

    settings.DEBUG = True  # static files from the finders, as runserver serves them
    live.reset()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = ASGIStaticFilesHandler(get_asgi_application())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)
    live.reset()


@pytest.fixture
def board_for(browser, asgi_server):
    """`board_for(user)`: a board in its own browser context, logged in as `user`, whose
    event stream is open."""
    contexts = []

    def open_board(user, path="/", password="demo-password"):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{asgi_server}/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{asgi_server}/")
        if path != "/":
            page.goto(f"{asgi_server}{path}")
        # The stream is open once the server has registered it.
        deadline = time.monotonic() + 5
        while len(live.hub) < len(contexts) and time.monotonic() < deadline:
            time.sleep(0.05)
        return page

    yield open_board
    for context in contexts:
        context.close()


def totals(page, stage):
    return page.locator(f"#totals-{stage.pk}").inner_text()


def test_a_move_shows_on_a_teammates_board_with_new_totals(board_for, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Live deal", amount=Decimal("1200"))
    DealFactory(owner=teammate, stage=stages["qualified"], amount=Decimal("300"))
    a = board_for(rep)
    b = board_for(teammate)
    assert "1 deal" in totals(b, stages["qualified"])

    move_with_menu(a, deal, "Qualified")

    b.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for(timeout=SEEN_WITHIN_MS)
    b.locator(f"#totals-{stages['qualified'].pk}", has_text="2 deals").wait_for(
        timeout=SEEN_WITHIN_MS
    )
    assert "0 deals" in totals(b, stages["lead"])
    assert b.locator(f"#deal-{deal.pk}").count() == 1
    assert "moved by" in b.locator(f"#deal-{deal.pk}").inner_text()


def test_another_team_sees_nothing_of_the_move(board_for, rep, outsider, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Not for them")
    a = board_for(rep)
    c = board_for(outsider)
    requests = []
    c.on("request", lambda request: requests.append(request.url))

    move_with_menu(a, deal, "Qualified")
    a.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    # C is told a deal id changed, asks for its card, and is refused it.
    c.wait_for_timeout(1000)

    assert c.locator(f"#deal-{deal.pk}").count() == 0
    assert "Not for them" not in c.content()
    assert "0 deals" in totals(c, stages["qualified"])
    assert any(f"/deals/{deal.pk}/card/" in url for url in requests)


def test_a_deal_reassigned_to_another_team_leaves_the_board(
    board_for, rep, teammate, outsider, admin_user, stages
):
    deal = DealFactory(owner=rep, stage=stages["demo"], title="Leaving", amount=Decimal("50"))
    b = board_for(teammate)
    assert "1 deal" in totals(b, stages["demo"])

    services.reassign_deal(deal, new_owner=outsider, by=admin_user, expected_version=deal.version)

    b.locator(f"#deal-{deal.pk}").wait_for(state="detached", timeout=SEEN_WITHIN_MS)
    b.locator(f"#totals-{stages['demo'].pk}", has_text="0 deals").wait_for(timeout=SEEN_WITHIN_MS)


def test_a_deal_page_refreshes_when_the_deal_moves(board_for, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Watched")
    b = board_for(teammate, path=f"/deals/{deal.pk}/")
    assert b.locator("#workspace").get_attribute("data-version") == "1"

    services.move_deal(
        deal, stages["qualified"], by=rep, expected_version=deal.version, override_reason=""
    )

    b.locator("#workspace[data-version='2']").wait_for(timeout=SEEN_WITHIN_MS)
    assert "Qualified" in b.locator("#workspace").inner_text()
