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
from tests.browser.board_support import card_action, move_with_menu
from tests.factories import DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEEN_WITHIN_MS = 2000


@pytest.fixture
def asgi_server(transactional_db, settings):
    import uvicorn
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from pipeline_crm.asgi import application

    settings.DEBUG = True  # static files from the finders, as runserver serves them
    live.reset()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = ASGIStaticFilesHandler(application)  # production's handler
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

    def open_board(user, path="/", password="demo-password", stream=True):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        if not stream:  # a board that never hears the stream (it polls)
            context._no_stream = True
            context.route("**/live/stream/**", lambda route: route.abort())
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
        while stream and len(live.hub) < streams(contexts) and time.monotonic() < deadline:
            time.sleep(0.05)
        return page

    def streams(contexts):
        return sum(1 for c in contexts if not getattr(c, "_no_stream", False))

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


def test_an_open_move_menu_shows_on_a_teammates_card(board_for, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Busy")
    a = board_for(rep)
    b = board_for(teammate)

    card_action(a, deal, "Move to stage")

    note = b.locator(f"#deal-{deal.pk} .live-editing")
    note.wait_for(timeout=SEEN_WITHIN_MS)
    assert f"{rep.display_name} is editing" in note.inner_text()
    assert a.locator(f"#deal-{deal.pk} .live-editing").count() == 0  # not on their own

    a.locator("#move-menu").get_by_role("button", name="Cancel").click()
    note.wait_for(state="detached", timeout=SEEN_WITHIN_MS)


def test_an_open_edit_form_shows_on_a_teammates_deal_page(board_for, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Edited")
    a = board_for(rep, path=f"/deals/{deal.pk}/")
    b = board_for(teammate, path=f"/deals/{deal.pk}/")

    a.locator("#workspace").get_by_role("link", name="Edit").click()

    note = b.locator("#workspace .live-editing")
    note.wait_for(timeout=SEEN_WITHIN_MS)
    assert f"{rep.display_name} is editing" in note.inner_text()


def test_a_stale_card_refreshes_before_its_menu_submits(board_for, rep, manager, stages):
    """B's (the owner's) menu is open on a card A (their manager) then moves, and B's
    refresh of that card fails: B's submit does not post the stale version, it fetches
    the card first and says so; B's next submit moves the deal from where it now is."""
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Contested", amount=Decimal("700"))
    b = board_for(rep)
    posts, refused = [], []
    b.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and "/move/" in r.url else None,
    )

    def first_card_fetch_fails(route):
        if not refused:
            refused.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    b.route(f"**/deals/{deal.pk}/card/**", first_card_fetch_fails)
    card_action(b, deal, "Move to stage")
    menu = b.locator("#move-menu")
    menu.get_by_label("Move to stage").select_option(label="Demo")

    services.move_deal(
        deal, stages["qualified"], by=manager, expected_version=deal.version, override_reason=""
    )
    deadline = time.monotonic() + SEEN_WITHIN_MS / 1000
    while not refused and time.monotonic() < deadline:
        b.wait_for_timeout(50)
    assert refused, "B was told of the move"

    menu.get_by_role("button", name="Move", exact=True).click()

    menu.locator(".live-stale").wait_for(timeout=SEEN_WITHIN_MS)
    assert posts == []  # the stale version never left the page
    b.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    assert b.locator(f"#deal-{deal.pk}").get_attribute("data-version") == "2"

    menu.get_by_label("Move to stage").select_option(label="Demo")
    menu.get_by_role("button", name="Move", exact=True).click()

    b.locator(f"#column-{stages['demo'].pk} #deal-{deal.pk}").wait_for()
    assert b.locator(f"#deal-{deal.pk}").count() == 1
    b.locator(f"#totals-{stages['demo'].pk}", has_text="1 deal").wait_for()
    assert "0 deals" in totals(b, stages["qualified"])
    assert len(posts) == 1


def test_a_stale_move_conflict_resolves_in_place(board_for, rep, manager, stages):
    """B (the owner) hears nothing (no stream) and moves a card A has just moved: the 409 shows the
    fresh state where it is, the card once, in its right column, with right totals."""
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Raced", amount=Decimal("400"))
    b = board_for(rep, stream=False)
    services.move_deal(
        deal, stages["qualified"], by=manager, expected_version=deal.version, override_reason=""
    )

    move_with_menu(b, deal, "Demo")

    b.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()
    assert b.locator(f"#deal-{deal.pk}").count() == 1
    b.locator(f"#totals-{stages['qualified'].pk}", has_text="1 deal").wait_for()
    assert "0 deals" in totals(b, stages["lead"])
    assert "0 deals" in totals(b, stages["demo"])


def test_anothers_move_lands_at_its_place_in_the_column(board_for, rep, teammate, stages):
    first = DealFactory(owner=rep, stage=stages["qualified"], position=10, title="First")
    third = DealFactory(owner=rep, stage=stages["qualified"], position=30, title="Third")
    moving = DealFactory(owner=rep, stage=stages["lead"], title="Second")
    b = board_for(teammate)

    services.move_deal(
        moving,
        stages["qualified"],
        by=rep,
        expected_version=moving.version,
        override_reason="",
        position=services.Placement(after_id=first.pk, before_id=third.pk),
    )

    column = b.locator(f"#column-{stages['qualified'].pk} .card")
    b.locator(f"#column-{stages['qualified'].pk} #deal-{moving.pk}").wait_for(
        timeout=SEEN_WITHIN_MS
    )
    ids = column.evaluate_all("cards => cards.map(c => c.id)")
    assert ids == [f"deal-{first.pk}", f"deal-{moving.pk}", f"deal-{third.pk}"]


def test_a_deleted_deal_leaves_the_board(board_for, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["demo"], title="Gone soon")
    b = board_for(teammate)

    live.announce(deal.pk, 0, "deal.deleted", by_id=rep.pk)

    b.locator(f"#deal-{deal.pk}").wait_for(state="detached", timeout=SEEN_WITHIN_MS)


def test_the_stalled_job_flags_a_card_on_an_open_board(board_for, rep, teammate, stages):
    from datetime import timedelta

    from django.utils import timezone

    from deals.stalled import refresh_flags

    deal = DealFactory(owner=rep, stage=stages["demo"], title="Quiet one")
    b = board_for(teammate)
    assert b.locator(f"#deal-{deal.pk} .stalled-mark").count() == 0

    # Two months on, the job's rules fire for it (its own transaction, source "job").
    refresh_flags(now=timezone.now() + timedelta(days=60), deal_ids=[deal.pk])

    b.locator(f"#deal-{deal.pk} .stalled-mark").wait_for(timeout=SEEN_WITHIN_MS)


def test_an_import_sized_batch_reloads_the_columns(board_for, rep, teammate, stages):
    """More deals than a card each is worth (an import, a bulk job) are one announcement
    about deal 0: the board fetches its columns again, as a reload would show them."""
    b = board_for(teammate)
    imported = [DealFactory(owner=rep, stage=stages["lead"], title=f"Row {i}") for i in range(3)]

    live.announce(0, 0, live.BULK, by_id=rep.pk)

    for deal in imported:
        b.locator(f"#column-{stages['lead'].pk} #deal-{deal.pk}").wait_for(timeout=SEEN_WITHIN_MS)
    b.locator(f"#totals-{stages['lead'].pk}", has_text="3 deals").wait_for()
