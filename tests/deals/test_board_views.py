"""The board and its move endpoints: access, htmx and plain responses, query counts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from deals.models import Deal, GateEvent, StageChange
from stages.models import CriterionKind
from tests.factories import ActivityFactory, CriterionFactory, DealFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


def move(client, deal, stage, *, version=None, htmx=True, **extra):
    data = {"stage": stage.pk, "version": version or deal.version, "source": "board", **extra}
    return client.post(reverse("deal_move", args=[deal.pk]), data, **(HTMX if htmx else {}))


def test_board_requires_login(client, stages):
    response = client.get(reverse("board"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_board_shows_visible_cards_with_totals(client_for, rep, teammate, outsider, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Mine", amount=Decimal("1000"))
    DealFactory(owner=teammate, stage=stages["lead"], title="Teammate's", amount=Decimal("500"))
    DealFactory(owner=outsider, stage=stages["lead"], title="Other team's")
    html = client_for(rep).get(reverse("board")).content.decode()
    assert "Mine" in html and "Teammate&#x27;s" in html
    assert "Other team" not in html
    assert "2 deals" in html
    assert "$1,500" in html and "USD 1,500" not in html
    assert "≈ $150 weighted" in html  # lead probability 10 %


def card_html(html, deal):
    """The markup of one card on a board page or in a move response."""
    return html.split(f'id="deal-{deal.pk}"', 1)[1].split("</li>", 1)[0]


def test_board_hides_move_controls_on_teammates_cards(client_for, rep, teammate, stages):
    mine = DealFactory(owner=rep, stage=stages["lead"])
    theirs = DealFactory(owner=teammate, stage=stages["lead"])
    html = client_for(rep).get(reverse("board")).content.decode()
    assert 'class="card-menu ghost"' in card_html(html, mine)
    assert 'class="handle"' in card_html(html, mine)
    assert 'data-locked="1"' not in card_html(html, mine)
    assert 'class="card-menu' not in card_html(html, theirs)
    assert 'class="handle"' not in card_html(html, theirs)
    assert 'data-locked="1"' in card_html(html, theirs)


def test_board_escapes_html_in_titles(client_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="<script>alert(1)</script>")
    html = client_for(rep).get(reverse("board")).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _board_queries(client, django_assert_num_queries, expected):
    with django_assert_num_queries(expected):
        response = client.get(reverse("board"))
    assert response.status_code == 200


# session, user, pipelines+stages (2), owner filter, totals, cards, flags, unread bell
BOARD_QUERIES = 9


def test_board_query_count_is_fixed_with_few_deals(
    client_for, rep, stages, django_assert_num_queries
):
    DealFactory(owner=rep, stage=stages["lead"])
    _board_queries(client_for(rep), django_assert_num_queries, BOARD_QUERIES)


def test_board_query_count_is_fixed_with_many_deals(
    client_for, rep, teammate, stages, django_assert_num_queries
):
    for stage in ("lead", "qualified", "demo", "proposal"):
        for owner in (rep, teammate):
            for deal in DealFactory.create_batch(16, owner=owner, stage=stages[stage]):
                ActivityFactory(deal=deal)
    _board_queries(client_for(rep), django_assert_num_queries, BOARD_QUERIES)


def test_board_shows_first_page_and_load_more(client_for, rep, stages, settings):
    settings.BOARD_PAGE_SIZE = 3
    deals = [DealFactory(owner=rep, stage=stages["lead"], position=i) for i in range(5)]
    client = client_for(rep)
    html = client.get(reverse("board")).content.decode()
    assert html.count('<li class="card') == 3
    more = client.get(reverse("column_more", args=[stages["lead"].pk]), {"offset": 3}, **HTMX)
    page = more.content.decode()
    assert f'id="deal-{deals[3].pk}"' in page and f'id="deal-{deals[4].pk}"' in page
    assert f'id="deal-{deals[0].pk}"' not in page


def test_htmx_move_answers_with_the_card_and_both_totals_out_of_band(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("700"))
    neighbour = DealFactory(owner=rep, stage=stages["qualified"], amount=Decimal("300"))
    response = move(client_for(rep), deal, stages["qualified"])
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<p class="column-totals" id="totals-{stages["lead"].pk}" hx-swap-oob="true">' in html
    assert (
        f'<p class="column-totals" id="totals-{stages["qualified"].pk}" hx-swap-oob="true">'
        in html
    )
    assert "$1,000" in html  # qualified now holds both deals
    assert 'data-version="2"' in card_html(html, deal)
    assert f'id="deal-{neighbour.pk}"' not in html  # the rest of the column is not re-sent
    assert 'id="column-' not in html
    assert "Undo" in html
    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]


# session, user, deal, target stage, lock (with the permission rule), criteria, update (with
# the position), history (with the seq), outbox (+ savepoints), then the answer: the moved
# card (on an unfiltered board, its next activity: the locked row is the card), its stalled
# flags, the two columns' totals.
MOVE_QUERIES = 14


@pytest.mark.parametrize("others", [0, 40])
def test_htmx_move_query_count_is_fixed(
    client_for, rep, stages, django_assert_num_queries, others
):
    client = client_for(rep)
    deal = DealFactory(owner=rep, stage=stages["lead"])
    DealFactory.create_batch(others, owner=rep, stage=stages["qualified"])
    DealFactory.create_batch(others, owner=rep, stage=stages["lead"])
    with django_assert_num_queries(MOVE_QUERIES):
        assert move(client, deal, stages["qualified"]).status_code == 200


def test_plain_move_redirects_to_board(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = move(client_for(rep), deal, stages["qualified"], htmx=False)
    assert response.status_code == 302
    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]


def test_stale_version_answers_409_with_fresh_state_and_message(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"], version=3)
    response = move(client_for(rep), deal, stages["qualified"], version=2)
    assert response.status_code == 409
    html = response.content.decode()
    assert "changed by someone else" in html
    assert f'id="deal-{deal.pk}"' in html  # the fresh card, back in its column
    deal.refresh_from_db()
    assert deal.stage == stages["lead"] and deal.version == 3


def test_gate_failure_answers_422_with_missing_items_and_changes_nothing(client_for, rep, stages):
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = move(client_for(rep), deal, stages["qualified"])
    assert response.status_code == 422
    html = response.content.decode()
    assert "Confirm: Budget ok" in html
    assert reverse("deal_fix_move", args=[deal.pk]) in html
    deal.refresh_from_db()
    assert deal.stage == stages["lead"] and deal.version == 1
    assert StageChange.objects.filter(deal=deal).count() == 1
    assert GateEvent.objects.filter(deal=deal, outcome="blocked").count() == 1


def test_plain_gate_failure_renders_full_page_form(client_for, rep, stages):
    CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.FIELD_REQUIRED, field_name="next_step"
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = move(client_for(rep), deal, stages["qualified"], htmx=False)
    assert response.status_code == 422
    assert "Write the next step" in response.content.decode()
    assert "<html" in response.content.decode()


def test_fix_and_move_saves_missing_items_and_moves(client_for, rep, stages):
    check = CriterionFactory(
        stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok"
    )
    CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("deal_fix_move", args=[deal.pk]),
        {
            "stage": stages["qualified"].pk,
            "version": 1,
            "source": "board",
            f"check_{check.pk}": "on",
            "expected_close_date": "2027-03-31",
        },
        **HTMX,
    )
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]
    assert str(deal.expected_close_date) == "2027-03-31"
    assert deal.checklist_ticks.filter(criterion=check).exists()


def test_fix_and_move_with_invalid_input_changes_nothing(client_for, rep, stages):
    CriterionFactory(
        stage=stages["qualified"],
        kind=CriterionKind.FIELD_REQUIRED,
        field_name="expected_close_date",
    )
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("deal_fix_move", args=[deal.pk]),
        {"stage": stages["qualified"].pk, "version": 1, "expected_close_date": "2027-02-31"},
        **HTMX,
    )
    assert response.status_code == 422
    assert "Enter a valid date" in response.content.decode()
    deal.refresh_from_db()
    assert deal.stage == stages["lead"] and deal.expected_close_date is None


def test_moving_into_won_without_amount_asks_for_it(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=None)
    response = move(client_for(rep), deal, stages["won"])
    assert response.status_code == 200  # Won always asks first; this time, for the amount
    assert "Add an amount to mark the deal won" in response.content.decode()


def test_outsider_move_answers_404_and_changes_nothing(client_for, rep, outsider, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = move(client_for(outsider), deal, stages["qualified"])
    assert response.status_code == 404
    deal.refresh_from_db()
    assert deal.stage == stages["lead"]


def test_teammate_move_is_refused(client_for, rep, teammate, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = move(client_for(teammate), deal, stages["qualified"])
    assert response.status_code == 403
    deal.refresh_from_db()
    assert deal.stage == stages["lead"]


def test_manager_moves_a_deal_of_the_team_they_manage(client_for, rep, manager, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert move(client_for(manager), deal, stages["qualified"]).status_code == 200


def test_unknown_deal_and_unknown_stage(client_for, rep, stages):
    client = client_for(rep)
    response = client.post(reverse("deal_move", args=[999999]), {"stage": 1, "version": 1})
    assert response.status_code == 404
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client.post(
        reverse("deal_move", args=[deal.pk]), {"stage": 999999, "version": 1}, **HTMX
    )
    assert response.status_code == 400
    assert "That stage does not exist." in response.content.decode()


@pytest.mark.parametrize("deal_id", [2**63, 2**64 + 5])
def test_a_deal_id_past_what_a_column_holds_is_404(client_for, rep, stages, deal_id):
    """The move's lock is a hand-written statement: an id no column can hold names no
    deal (404), as through the ORM, instead of an error from the database driver."""
    url = reverse("deal_move", args=[deal_id])
    data = {"stage": stages["qualified"].pk, "version": 1}
    for headers in (HTMX, {}):
        assert client_for(rep).post(url, data, **headers).status_code == 404


def test_malformed_move_request_is_refused(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).post(
        reverse("deal_move", args=[deal.pk]), {"stage": "abc", "version": "x"}, **HTMX
    )
    assert response.status_code == 400
    deal.refresh_from_db()
    assert deal.version == 1


def test_move_requires_post(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert client_for(rep).get(reverse("deal_move", args=[deal.pk])).status_code == 405


def test_move_without_csrf_token_is_refused(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    response = client.post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["qualified"].pk, "version": 1},
        **HTMX,
    )
    assert response.status_code == 403
    deal.refresh_from_db()
    assert deal.stage == stages["lead"]


def test_move_with_csrf_header_as_htmx_sends_it(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    page = client.get(reverse("board"))
    token = page.context["csrf_token"]
    response = client.post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stages["qualified"].pk, "version": 1},
        HTTP_X_CSRFTOKEN=str(token),
        **HTMX,
    )
    assert response.status_code == 200


def test_reorder_within_column_answers_204_and_keeps_version(client_for, rep, stages):
    first = DealFactory(owner=rep, stage=stages["lead"], position=0)
    second = DealFactory(owner=rep, stage=stages["lead"], position=1024)
    response = move(client_for(rep), first, stages["lead"], after=second.pk)
    assert response.status_code == 204
    order = list(Deal.objects.filter(stage=stages["lead"]).values_list("pk", flat=True))
    assert order == [second.pk, first.pk]
    first.refresh_from_db()
    assert first.version == 1


def test_gate_hints_list_blocked_stages_for_the_dragged_deal(client_for, rep, stages):
    CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    data = client_for(rep).get(reverse("deal_gate", args=[deal.pk])).json()
    assert data["blocked"][str(stages["demo"].pk)] == ["Confirm: Budget ok"]
    assert str(stages["qualified"].pk) not in data["blocked"]


def test_gate_hints_are_404_for_outsiders(client_for, rep, outsider, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert client_for(outsider).get(reverse("deal_gate", args=[deal.pk])).status_code == 404


def test_undo_moves_the_deal_back_and_keeps_both_history_rows(client_for, rep, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)
    move(client, deal, stages["qualified"])
    change = StageChange.objects.filter(deal=deal).order_by("-seq").first()
    response = client.post(reverse("deal_undo", args=[deal.pk]), {"change": change.pk}, **HTMX)
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage == stages["lead"]
    sources = list(StageChange.objects.filter(deal=deal).values_list("source", flat=True))
    assert sources == ["create", "board", "undo"]


def test_undo_by_someone_else_is_refused(client_for, rep, manager, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    move(client_for(rep), deal, stages["qualified"])
    change = StageChange.objects.filter(deal=deal).order_by("-seq").first()
    response = client_for(manager).post(
        reverse("deal_undo", args=[deal.pk]), {"change": change.pk}, **HTMX
    )
    assert response.status_code == 409
    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]


def test_deal_page_shows_guidance_and_next_stage_checklist(client_for, rep, stages):
    stages["lead"].guidance = "Call them <b>today</b>"
    stages["lead"].save()
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    html = client_for(rep).get(reverse("deal_detail", args=[deal.pk])).content.decode()
    assert "Call them &lt;b&gt;today&lt;/b&gt;" in html
    assert "Not met:</span>Confirm: Budget ok" in html


def test_deal_page_is_404_for_outsiders(client_for, rep, outsider, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert client_for(outsider).get(reverse("deal_detail", args=[deal.pk])).status_code == 404


def test_inactive_user_sees_no_deals(client_for, stages, team):
    ghost = UserFactory(team=team, is_active=True)
    deal = DealFactory(owner=ghost, stage=stages["lead"])
    client = client_for(ghost)
    ghost.is_active = False
    ghost.save()
    response = client.get(reverse("deal_detail", args=[deal.pk]))
    assert response.status_code in (302, 404)


def test_card_next_step_shows_playbook_and_unmet_criteria(client_for, rep, stages):
    stages["lead"].guidance = "Book the first call"
    stages["lead"].save()
    CriterionFactory(stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    deal = DealFactory(owner=rep, stage=stages["lead"])
    response = client_for(rep).get(reverse("deal_next", args=[deal.pk]), **HTMX)
    html = response.content.decode()
    assert "To enter Qualified" in html
    assert "Not met:</span>Confirm: Budget ok" in html
    assert "Book the first call" in html
    assert "<html" not in html


def test_card_next_step_is_404_for_outsiders(client_for, rep, outsider, stages):
    deal = DealFactory(owner=rep, stage=stages["lead"])
    assert client_for(outsider).get(reverse("deal_next", args=[deal.pk])).status_code == 404


def test_undo_from_the_board_restores_days_in_stage(client_for, rep, stages):
    from datetime import timedelta

    from django.utils import timezone

    deal = DealFactory(
        owner=rep, stage=stages["lead"], stage_entered_at=timezone.now() - timedelta(days=5)
    )
    client = client_for(rep)
    assert move(client, deal, stages["qualified"]).status_code == 200
    change = StageChange.objects.filter(deal=deal).latest("seq")
    response = client.post(reverse("deal_undo", args=[deal.pk]), {"change": change.pk}, **HTMX)
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage_id == stages["lead"].pk
    assert deal.days_in_stage == 5
