"""Helpers the board's browser tests share."""

from __future__ import annotations


def drag_across(page, handle, target_column) -> None:
    """A mouse drag from `handle` straight across to `target_column`, at the same height,
    in small steps as a hand does."""
    start = handle.bounding_box()
    end = target_column.bounding_box()
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 20, y + 5, steps=4)
    page.mouse.move(end["x"] + end["width"] / 2, y, steps=12)
    settle(page, end["x"] + end["width"] / 2, y)


def card_action(page, deal, action: str) -> None:
    """Open `deal`'s card menu and choose `action` ("Move to stage", "Snooze…", …)."""
    page.locator(f"#deal-{deal.pk}").get_by_role("button", name="Actions for").click()
    page.locator("#card-menu").get_by_role("menuitem", name=action).click()


def move_with_menu(page, deal, stage_name: str) -> None:
    card_action(page, deal, "Move to stage")
    menu = page.locator("#move-menu")
    menu.get_by_label("Move to stage").select_option(label=stage_name)
    menu.get_by_role("button", name="Move", exact=True).click()


def drag_onto(page, handle, target) -> None:
    """A mouse drag from `handle` to the middle of `target` (a Won or Lost zone)."""
    start = handle.bounding_box()
    end = target.bounding_box()
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 20, y + 5, steps=4)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
    settle(page, end["x"] + end["width"] / 2, end["y"] + end["height"] / 2)


def settle(page, x: float, y: float) -> None:
    """Hold still over the target before letting go, as a hand does: SortableJS's own drag
    (forceFallback) checks what is under the pointer on a throttled timer, which a loaded
    machine may not have run yet after the last step."""
    page.wait_for_timeout(150)
    page.mouse.move(x + 1, y + 1)
    page.wait_for_timeout(100)
    page.mouse.up()


def phone_page(browser, live_server, user):
    """A logged-in board page on a 390 by 844 touch phone; close its `.context` when done."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("demo-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    return page


def htmx_idle(page, within: str = ".quick-add") -> None:
    """Wait until htmx has finished swapping and settling `within`: it wires new content
    (an `hx-post` form, say) only when it settles, so a key pressed before then would
    submit the plain HTML form instead."""
    page.wait_for_function(
        """(within) => !document.querySelector(
            [".htmx-request", ".htmx-swapping", ".htmx-settling", ".htmx-added"]
                .flatMap((name) => [within + name, within + " " + name]).join(", "))""",
        arg=within,
    )
