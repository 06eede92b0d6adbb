"""The lean board: one shared move menu and snooze dialog, cards without forms, and move
answers that carry the moved card and the two columns' totals rather than whole columns."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from deals.models import StageChange, StalledFlag
from stages.models import CriterionKind
from tests.factories import ActivityFactory, CriterionFactory, DealFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


def move(client, deal, stage, *, source="menu", query="", **extra):
    data = {"stage": stage.pk, "version": deal.version, "source": source, **extra}
    url = reverse("deal_move", args=[deal.pk]) + (f"?{query}" if query else "")
    return client.post(url, data, **HTMX)


def card_html(html, deal):
    return html.split(f'id="deal-{deal.pk}"', 1)[1].split("</li>", 1)[0]


def test_board_has_one_move_menu_offering_every_stage_including_won_and_lost(
    client_for, rep, stages
):
    DealFactory.create_batch(3, owner=rep, stage=stages["lead"])
    html = client_for(rep).get(reverse("board")).content.decode()
    assert html.count('<dialog id="move-menu"') == 1
    menu = html.split('<dialog id="move-menu"', 1)[1].split("</dialog>", 1)[0]
    for stage in stages.values():
        assert f'<option value="{stage.pk}">{stage.name}</option>' in menu
    assert "<select" not in html.split('<div class="board"', 1)[1].split("<dialog", 1)[0]


def test_board_markup_per_card_has_no_forms_or_tokens(client_for, rep, stages):
    def board_html():
        return client_for(rep).get(reverse("board")).content.decode()

    DealFactory(owner=rep, stage=stages["lead"])
    few = board_html()
    for deal in DealFactory.create_batch(20, owner=rep, stage=stages["qualified"]):
        StalledFlag.objects.create(deal=deal, rule="no_next_step")
    many = board_html()
    assert many.count("<form") == few.count("<form")
    assert many.count("csrfmiddlewaretoken") == few.count("csrfmiddlewaretoken")
    assert many.count('class="stalled-mark"') == 20
    assert many.count('<dialog id="snooze-dialog"') == 1
    assert many.count('<ul id="card-menu"') == 1


def test_card_keeps_its_text_snooze_marker_and_one_menu_button(client_for, rep, stages):
    deal = DealFactory(
        owner=rep,
        stage=stages["lead"],
        title="Acme <renewal>",
        amount=Decimal("12345.50"),
        snoozed_until=timezone.localdate() + timedelta(days=3),
        snooze_reason="Champion <away>",
    )
    html = card_html(client_for(rep).get(reverse("board")).content.decode(), deal)
    assert f'<a class="card-title" href="/deals/{deal.pk}/">Acme &lt;renewal&gt;</a>' in html
    assert "$12,346" in html and "USD" not in html
    assert "No next activity" in html
    assert "Snoozed until" in html and "Champion &lt;away&gt;" in html
    assert 'class="stalled-mark is-snoozed"' in html
    assert html.count("<button") == 1 and 'aria-label="Actions for Acme &lt;renewal&gt;"' in html
    assert f'data-version="{deal.version}"' in html


def test_card_dates_are_local_days_and_an_overdue_next_activity_is_marked(
    client_for, rep, stages, settings
):
    settings.TIME_ZONE = "Asia/Tokyo"  # 23:30 UTC on the 2nd is the 3rd in Tokyo
    moment = timezone.make_aware(timezone.datetime(2026, 3, 2, 23, 30), timezone.UTC)
    late = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=late, subject="Call back", due_at=moment)
    StalledFlag.objects.create(deal=late, rule="no_next_step", flagged_at=moment)
    ahead = DealFactory(owner=rep, stage=stages["lead"])
    ActivityFactory(deal=ahead, subject="Demo", due_at=timezone.now() + timedelta(days=400))
    board = client_for(rep).get(reverse("board")).content.decode()

    html = card_html(board, late)
    assert (
        '<span class="next-activity overdue"><span class="sr-only">Next: </span>'
        '<b class="due">Mar 3</b> Call back' in html
    )
    assert '<span class="sr-only"> (overdue)</span>' in html
    assert '<span class="stalled-reason">No next step scheduled (since Mar 3)</span>' in html
    ahead_html = card_html(board, ahead)
    assert (
        '<span class="next-activity"><span class="sr-only">Next: </span><b class="due">'
        in ahead_html
    )
    assert "</b> Demo" in ahead_html


def test_teammates_stalled_card_shows_the_flag_without_snooze_controls(
    client_for, rep, teammate, stages
):
    deal = DealFactory(owner=teammate, stage=stages["lead"])
    StalledFlag.objects.create(deal=deal, rule="no_next_step")
    html = card_html(client_for(rep).get(reverse("board")).content.decode(), deal)
    assert "No next step scheduled" in html and 'class="stalled-mark"' in html
    assert "card-menu" not in html


def test_without_javascript_the_card_title_leads_to_a_page_that_moves_the_deal(
    client_for, rep, stages
):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)
    board = client.get(reverse("board")).content.decode()
    page_url = reverse("deal_detail", args=[deal.pk])
    assert f'<a class="card-title" href="{page_url}">' in card_html(board, deal)
    page = client.get(page_url).content.decode()
    assert f'action="{reverse("deal_move", args=[deal.pk])}"' in page
    assert f'name="stage" value="{stages["won"].pk}"' in page
    response = client.post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["qualified"].pk, "version": 1, "source": "menu"},
    )
    assert response.status_code == 302
    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]


# --- what a move answers --------------------------------------------------------------


def test_menu_move_takes_the_card_out_of_its_column_and_puts_it_on_top_of_the_new_one(
    client_for, rep, stages
):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    html = move(client_for(rep), deal, stages["qualified"]).content.decode()
    delete = f'<li id="deal-{deal.pk}" hx-swap-oob="delete"></li>'
    insert = f'<ol hx-swap-oob="afterbegin:#column-{stages["qualified"].pk} .cards">'
    assert delete in html and insert in html
    assert html.index(delete) < html.index(insert)  # the id stays unique on the page
    assert 'data-version="2"' in card_html(html.split(insert, 1)[1], deal)


def test_drag_move_replaces_the_card_where_it_was_dropped(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    html = move(client_for(rep), deal, stages["qualified"], source="board").content.decode()
    assert f'id="deal-{deal.pk}" data-version="2" hx-swap-oob="true">' in html
    assert 'hx-swap-oob="delete"' not in html and "afterbegin" not in html


def test_drop_on_won_first_confirms_the_amount_and_close_date_prefilled(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=Decimal("900"))
    response = move(client_for(rep), deal, stages["won"], source="board")
    html = response.content.decode()
    assert response.status_code == 200
    assert f"Mark {deal.title} as Won" in html
    assert 'name="amount" value="900.00"' in html
    assert f'name="expected_close_date" value="{timezone.localdate().isoformat()}"' in html
    deal.refresh_from_db()
    assert deal.stage == stages["proposal"]


def test_drop_on_lost_asks_for_the_reason(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"])
    html = move(client_for(rep), deal, stages["lost"], source="board").content.decode()
    assert "Why was it lost?" in html and 'name="lost_reason"' in html


def test_confirmed_won_removes_the_card_and_updates_the_column_it_left(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=Decimal("900"))
    data = {
        "stage": stages["won"].pk,
        "version": deal.version,
        "source": "board",
        "amount": "950",
        "expected_close_date": timezone.localdate().isoformat(),
    }
    response = client_for(rep).post(reverse("deal_fix_move", args=[deal.pk]), data, **HTMX)
    html = response.content.decode()
    deal.refresh_from_db()
    assert deal.stage == stages["won"] and deal.amount == Decimal("950")
    assert "Undo" in html
    assert f'<li id="deal-{deal.pk}" hx-swap-oob="delete"></li>' in html
    assert "afterbegin" not in html and '<li class="card' not in html
    assert f'id="totals-{stages["proposal"].pk}" hx-swap-oob="true"' in html
    assert f'id="totals-{stages["won"].pk}"' not in html  # not a board column


def test_move_that_leaves_the_board_filter_removes_the_card(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    query = f"stage={stages['lead'].pk}"
    html = move(client_for(rep), deal, stages["qualified"], query=query).content.decode()
    assert f'<li id="deal-{deal.pk}" hx-swap-oob="delete"></li>' in html
    assert '<li class="card' not in html


def test_move_totals_follow_the_board_filter(client_for, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("100"))
    DealFactory(owner=teammate, stage=stages["qualified"], amount=Decimal("5000"))
    html = move(client_for(rep), deal, stages["qualified"], query="owner=me").content.decode()
    qualified = html.split(f'id="totals-{stages["qualified"].pk}"', 1)[1].split("</p>", 1)[0]
    assert "1 deal" in qualified and "$100" in qualified and "5,100" not in qualified
    assert "owner=me" in html.split('class="flash flash-success undo"', 1)[1]  # undo keeps it


@pytest.mark.parametrize("source", ["board", "menu"])
def test_unfiltered_move_answers_with_the_card_the_filtered_board_query_builds(
    client_for, rep, teammate, stages, source
):
    """An unfiltered board's moved card is the locked row in hand, not the card query
    (queries.board_card): it must print exactly what that query's card prints."""
    client = client_for(rep)
    cards = {}
    for query in ("", "owner=me&sort=amount"):
        deal = DealFactory(
            owner=rep, stage=stages["lead"], title="Same card", amount=Decimal("1234")
        )
        ActivityFactory(deal=deal, subject="Later call", due_at=timezone.now() + timedelta(days=9))
        ActivityFactory(
            deal=deal, subject="Overdue demo", due_at=timezone.now() - timedelta(days=2)
        )
        StalledFlag.objects.create(deal=deal, rule="no_next_step")
        html = move(client, deal, stages["qualified"], source=source, query=query).content.decode()
        # The card is the last element with its id (a menu move first deletes the old one).
        card = html.split(f'id="deal-{deal.pk}"')[-1].split("</li>", 1)[0]
        for where in ('value="{}"', "/deals/{}/", '-{}"'):
            card = card.replace(where.format(deal.pk), where.format("ID"))
        cards[query] = card
    assert cards[""].splitlines() == cards["owner=me&sort=amount"].splitlines()
    assert "Overdue demo" in cards[""] and "Same card" in cards[""]
    assert 'class="stalled-mark"' in cards[""]


def test_move_answer_escapes_the_title(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], title="<img src=x onerror=alert(1)>")
    html = move(client_for(rep), deal, stages["qualified"]).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


# session, user, deal, target stage, the move's transaction (6 with savepoints), then the
# answer: the card, its flags, the two columns' totals.
@pytest.mark.parametrize("others", [0, 40])
@pytest.mark.parametrize("source", ["menu", "board"])
def test_move_answer_costs_the_same_queries_whatever_the_columns_hold(
    client_for, rep, stages, django_assert_num_queries, others, source
):
    client = client_for(rep)
    deal = DealFactory(owner=rep, stage=stages["lead"])
    for stage in ("lead", "qualified"):
        for neighbour in DealFactory.create_batch(others, owner=rep, stage=stages[stage]):
            StalledFlag.objects.create(deal=neighbour, rule="no_next_step")
    with django_assert_num_queries(14):
        response = move(client, deal, stages["qualified"], source=source)
    assert response.status_code == 200
    assert response.content.decode().count('<li class="card') == 1


def test_undo_answers_like_a_menu_move_back(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)
    move(client, deal, stages["qualified"], source="board")
    change = StageChange.objects.filter(deal=deal).order_by("-seq").first()
    response = client.post(reverse("deal_undo", args=[deal.pk]), {"change": change.pk}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'<li id="deal-{deal.pk}" hx-swap-oob="delete"></li>' in html
    assert f"afterbegin:#column-{stages['lead'].pk} .cards" in html
    assert "back to Lead in" in html
    assert 'id="column-' not in html


def test_completed_gate_form_moves_the_card_like_the_menu(client_for, rep, stages):
    check = CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok"
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("deal_fix_move", args=[deal.pk]),
        {
            "stage": stages["qualified"].pk,
            "version": 1,
            "source": "board",
            f"check_{check.pk}": "on",
        },
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert f"afterbegin:#column-{stages['qualified'].pk} .cards" in html
    assert '<dialog id="dialog" class="modal" hx-swap-oob="true"></dialog>' in html  # it closes


# --- refusals snap a dragged card back ------------------------------------------------


def test_gate_refusal_rerenders_the_deals_column_and_the_one_it_was_dropped_on(
    client_for, rep, stages
):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = move(client_for(rep), deal, stages["qualified"], source="board")
    html = response.content.decode()
    assert response.status_code == 422
    lead = html.split(f'id="column-{stages["lead"].pk}"', 1)[1].split("</section>", 1)[0]
    qualified = html.split(f'id="column-{stages["qualified"].pk}"', 1)[1]
    assert f'id="deal-{deal.pk}"' in lead
    assert f'id="deal-{deal.pk}"' not in qualified.split("</section>", 1)[0]
    assert "Confirm: Budget ok" in html


def test_stale_drag_answers_409_with_the_fresh_card_its_place_and_three_totals(
    client_for, rep, stages
):
    """Not the columns: the card as it is now, the card it follows in its column, and the
    totals of where it is, where it was aimed and where the page showed it."""
    first = DealFactory(owner=rep, stage=stages["qualified"], position=10)
    deal = DealFactory(owner=rep, stage=stages["qualified"], position=20, version=4)
    DealFactory(owner=rep, stage=stages["qualified"], position=30)
    response = client_for(rep).post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["demo"].pk, "version": 3, "source": "board", "from": stages["lead"].pk},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert 'aria-labelledby="column-title' not in html  # no column re-rendered
    assert f'<template data-stage="{stages["qualified"].pk}" data-after="{first.pk}">' in html
    assert 'data-version="4"' in card_html(html, deal)
    for key in ("lead", "qualified", "demo"):
        assert f'id="totals-{stages[key].pk}" hx-swap-oob="true"' in html
    assert "changed by someone else" in html


def test_stale_move_of_a_card_the_board_no_longer_shows_removes_it(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["won"], version=4)
    response = client_for(rep).post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["demo"].pk, "version": 3, "source": "menu", "from": stages["lead"].pk},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert "<template" not in html
    assert f'<li id="deal-{deal.pk}" hx-swap-oob="delete">' in html


# --- load more and snoozing from the board ----------------------------------------------


def test_load_more_link_carries_one_offset_and_keeps_the_filters(
    client_for, rep, stages, settings
):
    settings.BOARD_PAGE_SIZE = 2
    DealFactory.create_batch(5, owner=rep, stage=stages["lead"])
    response = client_for(rep).get(
        reverse("column_more", args=[stages["lead"].pk]), {"offset": 2, "owner": "me"}, **HTMX
    )
    html = response.content.decode()
    link = html.split('hx-get="', 1)[1].split('"', 1)[0]
    assert link.count("offset=") == 1 and "offset=4" in link
    assert "owner=me" in link


def test_snooze_from_the_board_answers_with_the_cards_badge(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    StalledFlag.objects.create(deal=deal, rule="no_next_step")
    until = (timezone.localdate() + timedelta(days=5)).isoformat()
    response = client_for(rep).post(
        reverse("deal_snooze", args=[deal.pk]),
        {"until": until, "reason": "On holiday", "board": "1", "next": "/"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="stalled-{deal.pk}"' in html and "Snoozed until" in html
    assert 'class="stalled-mark is-snoozed"' in html and "<form" not in html


def test_snooze_refusal_from_the_board_shows_the_reason_in_the_badge(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    StalledFlag.objects.create(deal=deal, rule="no_next_step")
    until = (timezone.localdate() + timedelta(days=200)).isoformat()
    response = client_for(rep).post(
        reverse("deal_snooze", args=[deal.pk]),
        {"until": until, "reason": "Long holiday", "board": "1"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert "at most 90 days" in html and 'class="stalled-mark"' in html


def test_snooze_from_the_deal_page_still_answers_with_its_form_badge(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    StalledFlag.objects.create(deal=deal, rule="no_next_step")
    until = (timezone.localdate() + timedelta(days=5)).isoformat()
    response = client_for(rep).post(
        reverse("deal_snooze", args=[deal.pk]),
        {"until": until, "reason": "Away", "next": reverse("deal_detail", args=[deal.pk])},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert f'<form method="post" action="{reverse("deal_unsnooze", args=[deal.pk])}"' in html
    assert 'class="link unsnooze"' not in html
