"""The board's measures at 1440x900 (issue 16): how many cards a column shows without
scrolling, and how many key presses it takes to move any visible card from page load."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

import pytest
from django.utils import timezone

from deals.models import Deal, StalledFlag
from tests.factories import ActivityFactory, DealFactory, OrganizationFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1440, "height": 900}
PER_COLUMN = 14


@pytest.fixture
def full_board(rep, stages):
    """Four columns of cards carrying everything a card can show: a long title, an
    organization, an amount, a next activity (some overdue) and a stalled flag."""
    organization = OrganizationFactory(name="Northwind Logistics International")
    now = timezone.now()
    for key in ("lead", "qualified", "demo", "proposal"):
        for i in range(PER_COLUMN):
            deal = DealFactory(
                owner=rep,
                stage=stages[key],
                position=i,
                title=f"{key.title()} renewal for a long account name {i:02}",
                organization=organization,
            )
            due = now + timedelta(days=-2 if i % 3 == 0 else 3)
            ActivityFactory(deal=deal, subject="Follow up on the proposal", due_at=due)
            if i % 2:
                StalledFlag.objects.create(deal=deal, rule="in_stage_too_long")


def fully_visible(page, selector: str) -> list[str]:
    """Ids of the elements matching `selector` that lie wholly inside the window."""
    return page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel)).filter((el) => {
            const r = el.getBoundingClientRect();
            return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
        }).map((el) => el.id)""",
        selector,
    )


def test_at_1440x900_every_column_shows_at_least_eight_cards_without_scrolling(
    login, live_server, rep, stages, full_board, page
):
    page.set_viewport_size(DESKTOP)
    login(rep)
    for key in ("lead", "qualified", "demo", "proposal"):
        visible = fully_visible(page, f"#column-{stages[key].pk} .card")
        assert len(visible) >= 8, (key, len(visible))


# The board's keys (static/js/board.js): within a column, the moves below; 1-9 jump to a
# column's first card; M opens the move dialog on the next stage; Enter moves.
ROW_KEYS = {
    "ArrowDown": lambda row, last: min(row + 1, last),
    "ArrowUp": lambda row, last: max(row - 1, 0),
    "PageDown": lambda row, last: min(row + 5, last),
    "PageUp": lambda row, last: max(row - 5, 0),
    "Home": lambda row, last: 0,
    "End": lambda row, last: last,
}


def shortest_row_keys(target: int, count: int) -> list[str]:
    """The fewest row keys from a column's first card to its card number `target`."""
    paths = {0: []}
    queue = deque([0])
    while queue:
        row = queue.popleft()
        for key, step in ROW_KEYS.items():
            nxt = step(row, count - 1)
            if nxt not in paths:
                paths[nxt] = [*paths[row], key]
                queue.append(nxt)
    return paths[target]


def plan(column: int, row: int, count: int) -> list[str]:
    """Page load → "Skip to content" (Tab, Enter: the first card) → the column → the row →
    M (the move dialog, on the next stage) → Enter."""
    to_column = [str(column + 1)] if column else []
    return ["Tab", "Enter", *to_column, *shortest_row_keys(row, count), "m", "Enter"]


def visible_plans(page, stages, order: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Each fully visible card's key plan, from the board as the page shows it now."""
    plans = {}
    for column, key in enumerate(order):
        cards = page.locator(f"#column-{stages[key].pk} .card").evaluate_all(
            "(els) => els.map((el) => el.id)"
        )
        visible = set(fully_visible(page, f"#column-{stages[key].pk} .card"))
        for row, card_id in enumerate(cards):
            if card_id in visible:
                keys = plan(column, row, len(cards))
                if key == order[-1]:
                    keys.append("Enter")  # Won first confirms the amount and date, prefilled
                plans[card_id] = (key, keys)
    return plans


def test_any_visible_card_moves_to_the_next_stage_in_at_most_ten_key_presses(
    login, live_server, rep, stages, full_board, page
):
    page.set_viewport_size(DESKTOP)
    login(rep)
    order = ["lead", "qualified", "demo", "proposal"]
    plans = visible_plans(page, stages, order)
    assert len(plans) >= 32
    assert max(len(keys) for _, keys in plans.values()) <= 10

    # Press them for real for the costliest card and the last visible card of each column,
    # each chosen on a fresh page (every move shifts the columns it touches).
    for pick in ["costliest", *order]:
        page.goto(live_server.url + "/")
        page.locator(".card").first.wait_for()
        plans = visible_plans(page, stages, order)
        if pick == "costliest":
            card_id = max(plans, key=lambda card_id: len(plans[card_id][1]))
        else:
            card_id = [card_id for card_id, (key, _) in plans.items() if key == pick][-1]
        key, keys = plans[card_id]
        next_stage = stages[order[order.index(key) + 1] if key != "proposal" else "won"]
        assert len(keys) <= 10
        for number, press in enumerate(keys):
            if number == len(keys) - 1 and not next_stage.is_open:
                # The last Enter confirms Won: wait until its dialog has opened.
                page.locator("#dialog .gate").wait_for()
            page.keyboard.press(press)
        if next_stage.is_open:
            page.locator(f"#column-{next_stage.pk} #{card_id}").wait_for()
        else:
            page.locator(f"#{card_id}").wait_for(state="detached")
        pk = int(card_id.removeprefix("deal-"))
        assert Deal.objects.get(pk=pk).stage_id == next_stage.pk, (card_id, keys)
