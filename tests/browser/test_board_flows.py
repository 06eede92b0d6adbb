"""Board flows that used to dead-end in a real browser (issue 16, items 2, 3, 5 and 6):
a stale move, a refused drag far down a column, a touch drag on a phone, and the Won/Lost
targets on a scrolled desktop board."""

from __future__ import annotations

import pytest

from deals import services
from deals.models import Deal
from stages.models import CriterionKind
from tests.browser.board_support import card_action, drag_across, phone_page
from tests.factories import CriterionFactory, DealFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def overlaps(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def in_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return (
        box is not None
        and box["width"] > 0
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"]
        and box["y"] + box["height"] <= size["height"]
    )


def focus_is_inside(page, selector: str) -> bool:
    return page.evaluate(
        "(sel) => !!document.activeElement && document.activeElement.closest(sel) !== null",
        selector,
    )


def test_a_stale_move_leaves_the_card_once_in_its_real_column_with_right_counts(
    login, live_server, rep, teammate, stages, page
):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Contested deal")
    # The live board would fetch the fresh card at once; this page has not heard yet (the
    # announcement is in flight, or the stream is down), as when two people race.
    page.route("**/live/**", lambda route: route.abort())
    login(rep)
    # Meanwhile someone else moves it: the card on this page is now stale.
    services.move_deal(
        Deal.objects.get(pk=deal.pk),
        stages["qualified"],
        by=rep,
        expected_version=deal.version,
        source="menu",
    )
    card_action(page, deal, "Move to stage")
    menu = page.locator("#move-menu")
    menu.get_by_label("Move to stage").select_option(label="Demo")
    with page.expect_response(lambda r: "/move/" in r.url) as answer:
        menu.get_by_role("button", name="Move", exact=True).click()
    assert answer.value.status == 409
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()

    assert page.locator(f"#deal-{deal.pk}").count() == 1
    assert "0 deals" in page.locator(f"#totals-{stages['lead'].pk}").inner_text()
    assert "1 deal" in page.locator(f"#totals-{stages['qualified'].pk}").inner_text()
    assert "0 deals" in page.locator(f"#totals-{stages['demo'].pk}").inner_text()
    assert page.locator("#flash").get_by_role("alert").is_visible()


def test_a_stale_drag_puts_the_fresh_card_at_its_sorted_place_in_its_real_column(
    login, live_server, rep, stages, page
):
    """The 409 carries the card and the card it follows: the dragged copy leaves where it
    was dropped and takes its place between the cards around it, once."""
    first = DealFactory(owner=rep, stage=stages["qualified"], position=10, title="First")
    third = DealFactory(owner=rep, stage=stages["qualified"], position=30, title="Third")
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Contested deal")
    page.route("**/live/**", lambda route: route.abort())
    login(rep)
    services.move_deal(
        Deal.objects.get(pk=deal.pk),
        stages["qualified"],
        by=rep,
        expected_version=deal.version,
        source="board",
        position=services.Placement(after_id=first.pk, before_id=third.pk),
    )
    card = page.locator(f"#deal-{deal.pk}")
    with page.expect_response(lambda r: "/move/" in r.url) as answer:
        drag_across(page, card.locator(".handle"), page.locator(f"#column-{stages['demo'].pk}"))
        page.mouse.up()
    assert answer.value.status == 409
    page.locator(f"#column-{stages['qualified'].pk} #deal-{deal.pk}").wait_for()

    ids = page.locator(f"#column-{stages['qualified'].pk} .card").evaluate_all(
        "cards => cards.map(c => c.id)"
    )
    assert ids == [f"deal-{first.pk}", f"deal-{deal.pk}", f"deal-{third.pk}"]
    assert page.locator(f"#deal-{deal.pk}").count() == 1
    assert "0 deals" in page.locator(f"#totals-{stages['lead'].pk}").inner_text()
    assert "3 deals" in page.locator(f"#totals-{stages['qualified'].pk}").inner_text()
    assert "0 deals" in page.locator(f"#totals-{stages['demo'].pk}").inner_text()
    assert page.locator("#flash").get_by_role("alert").is_visible()


@pytest.fixture
def long_column(rep, stages):
    """Columns far longer than the screen; the last card of Lead in is the one dragged."""
    for key in ("qualified", "demo"):
        for i in range(24):
            DealFactory(owner=rep, stage=stages[key], position=i, title=f"{key} {i:02}")
    deals = [
        DealFactory(owner=rep, stage=stages["lead"], position=i, title=f"Long {i:02}")
        for i in range(24)
    ]
    return deals[-1]


def drag_last_card(page, deal, stage):
    card = page.locator(f"#deal-{deal.pk}")
    card.scroll_into_view_if_needed()
    drag_across(page, card.locator(".handle"), page.locator(f"#column-{stage.pk}"))


def test_a_refused_drag_far_down_the_board_shows_the_gate_form_where_the_user_is(
    login, live_server, rep, stages, long_column
):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    page = login(rep)
    drag_last_card(page, long_column, stages["qualified"])
    gate = page.get_by_role("dialog", name="enter Qualified yet")
    gate.wait_for()

    assert in_viewport(page, gate.get_by_label("Confirm: Budget ok"))
    page.wait_for_function("() => document.activeElement?.closest('.gate')")
    assert focus_is_inside(page, ".gate")
    assert Deal.objects.get(pk=long_column.pk).stage_id == stages["lead"].pk


def test_a_drag_far_down_the_board_offers_undo_in_view_with_focus_on_it(
    login, live_server, rep, stages, long_column
):
    page = login(rep)
    drag_last_card(page, long_column, stages["demo"])
    undo = page.locator("#flash").get_by_role("button", name="Undo")
    undo.wait_for()

    assert in_viewport(page, undo)
    page.wait_for_function("() => document.activeElement?.closest('.undo')")
    assert Deal.objects.get(pk=long_column.pk).stage_id == stages["demo"].pk
    undo.click()
    page.locator(f"#column-{stages['lead'].pk} #deal-{long_column.pk}").wait_for()


def test_on_a_scrolled_desktop_board_won_and_lost_stay_in_view_and_cover_no_column_head(
    login, live_server, rep, stages, long_column, page
):
    page.set_viewport_size({"width": 1440, "height": 900})
    login(rep)
    card = page.locator(f"#deal-{long_column.pk}")
    card.scroll_into_view_if_needed()
    box = card.locator(".handle").bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + 3)
    page.mouse.down()
    page.mouse.move(box["x"] + 40, box["y"] - 30, steps=8)
    zones = page.locator(".dropzone")
    zones.first.wait_for()

    heads = [head.bounding_box() for head in page.locator(".column-head").all()]
    for zone in zones.all():
        assert in_viewport(page, zone)
        assert not any(overlaps(zone.bounding_box(), head) for head in heads)
    page.mouse.up()


def touch(cdp, kind: str, x: float | None = None, y: float | None = None) -> None:
    points = [] if x is None else [{"x": x, "y": y}]
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


def test_on_a_phone_a_touch_drag_scrolls_the_board_and_lands_where_the_finger_is(
    browser, live_server, rep, stages
):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Thumb deal")
    page = phone_page(browser, live_server, rep)
    context = page.context
    cdp = context.new_cdp_session(page)

    box = page.locator(f"#deal-{deal.pk} .handle").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    touch(cdp, "touchStart", x, y)
    page.wait_for_timeout(400)  # a long press picks the card up
    for step in range(1, 11):
        touch(cdp, "touchMove", x + step * 2, y + step)
    page.wait_for_function("() => document.body.classList.contains('is-dragging')")
    columns = [c.bounding_box() for c in page.locator(".column").all()]
    visible = [c for c in columns if c["x"] < 390 and c["x"] + c["width"] > 0]
    for zone in page.locator(".dropzone").all():
        assert in_viewport(page, zone)
        assert not any(overlaps(zone.bounding_box(), column) for column in visible)

    # Held near the right edge, the board scrolls sideways under the finger; back in the
    # middle of the screen, the card goes to the column under it.
    for step in range(1, 9):
        touch(cdp, "touchMove", x + (384 - x) * step / 8, y)
    page.wait_for_function("() => document.getElementById('board').scrollLeft > 150")
    touch(cdp, "touchMove", 195, y)
    page.wait_for_timeout(300)
    under = page.evaluate(
        "([x, y]) => { const c = document.elementsFromPoint(x, y)"
        ".find(e => e.classList.contains('column')); return c ? c.id : ''; }",
        [195, y],
    )
    assert under.startswith("column-")
    with page.expect_response(lambda r: "/move/" in r.url) as moved:
        touch(cdp, "touchEnd")
    assert moved.value.status == 200
    landed = int(under.removeprefix("column-"))
    assert landed != stages["lead"].pk
    assert Deal.objects.get(pk=deal.pk).stage_id == landed
    context.close()
