"""A column's inline quick add: asks what the stage's entry criteria need, 422 with each
missing item, the card and the column's totals on success; one create_deal call."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from deals.models import ChecklistTick, Deal, DealContact, StageChange
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def quick_url(stage, query: str = "") -> str:
    return f"{reverse('deal_new')}?{query + '&' if query else ''}stage={stage.pk}"


def labels(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>|\s+", " ", text).strip()
        for text in re.findall(r"<label[^>]*>(.*?)</label>", html, re.S)
    ]


@pytest.fixture
def demo_gate(stages):
    """Demo needs a checklist confirmation, a decision maker and an expected close date."""
    check = CriterionFactory(stage=stages["demo"], kind=CriterionKind.CHECKLIST, label="Budget ok")
    CriterionFactory(
        stage=stages["demo"], kind=CriterionKind.CONTACT_ROLE, contact_role="decision_maker"
    )
    CriterionFactory(
        stage=stages["demo"], kind=CriterionKind.FIELD_REQUIRED, field_name="expected_close_date"
    )
    return check


def test_quick_add_asks_only_title_organization_and_amount_in_an_open_stage(
    client_for, rep, stages
):
    response = client_for(rep).get(quick_url(stages["lead"]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert labels(html) == ["Title:", "Organization:", "Amount:"]
    assert 'name="currency"' in html and 'type="hidden"' in html
    assert "New deal in Lead in" in html


def test_quick_add_asks_what_the_stage_entry_criteria_need(client_for, rep, stages, demo_gate):
    html = client_for(rep).get(quick_url(stages["demo"]), **HTMX).content.decode()
    assert labels(html) == [
        "Title:",
        "Organization:",
        "Amount:",
        "Expected close date:",
        "Confirm: Budget ok",
        "Add a contact with the role decision maker: who is the decision maker?",
    ]


def test_quick_add_in_a_stage_no_new_deal_may_start_in_offers_the_ones_it_may(
    client_for, rep, stages
):
    CriterionFactory(stage=stages["demo"], kind=CriterionKind.NO_SKIP)
    html = client_for(rep).get(quick_url(stages["demo"]), **HTMX).content.decode()
    assert "New deals can\N{RIGHT SINGLE QUOTATION MARK}t start in Demo" in html
    assert "Pass through Qualified first" in html
    offered = re.findall(r'hx-get="[^"]*stage=(\d+)"[^>]*>([^<]+)</a>', html)
    assert offered == [
        (str(stages[key].pk), stages[key].name) for key in ("lead", "qualified", "proposal")
    ]
    assert "<form" not in html


def test_quick_add_creates_the_deal_with_its_items_and_answers_card_and_totals(
    client_for, rep, stages, demo_gate
):
    DealFactory(owner=rep, stage=stages["demo"], amount=500)
    response = client_for(rep).post(
        quick_url(stages["demo"]),
        {
            "stage": stages["demo"].pk,
            "title": "Quick one",
            "organization_name": "Acme",
            "amount": "1500",
            "currency": "USD",
            "expected_close_date": "2030-01-31",
            f"check_{demo_gate.pk}": "on",
            "role_decision_maker": "Dana Lee",
        },
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    deal = Deal.objects.get(title="Quick one")
    assert (deal.stage, deal.owner, deal.organization.name) == (stages["demo"], rep, "Acme")
    assert ChecklistTick.objects.filter(deal=deal, criterion=demo_gate).exists()
    assert DealContact.objects.get(deal=deal).person.name == "Dana Lee"
    assert StageChange.objects.get(deal=deal).source == "create"
    # The card, at the top of its column; the column's totals; a blank form for the next.
    assert f'hx-swap-oob="afterbegin:#column-{stages["demo"].pk} .cards"' in html
    assert f'id="deal-{deal.pk}"' in html
    totals = re.search(
        rf'<p class="column-totals" id="totals-{stages["demo"].pk}"[^>]*>(.*?)</p>', html, re.S
    )
    assert "2 deals" in totals.group(1) and "$2,000" in totals.group(1)
    assert 'value="Quick one"' not in html
    assert "Created “Quick one” in Demo." in html


def test_quick_add_refused_by_the_gate_puts_each_missing_item_on_its_field(
    client_for, rep, stages, demo_gate
):
    response = client_for(rep).post(
        quick_url(stages["demo"]),
        {"stage": stages["demo"].pk, "title": "Half done", "currency": "USD"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert not Deal.objects.filter(title="Half done").exists()
    assert 'value="Half done"' in html  # what was typed stays
    for field, message in [
        ("expected_close_date", "Add an expected close date"),
        (f"check_{demo_gate.pk}", demo_gate.requirement),
        ("role_decision_maker", "Add a contact with the role decision maker"),
    ]:
        assert re.search(
            rf'id="quick-{stages["demo"].pk}-{field}_error"[^>]*>\s*<li>{re.escape(message)}', html
        ), field


def test_quick_add_refused_in_a_stage_only_time_opens_says_why(client_for, rep, stages):
    CriterionFactory(stage=stages["demo"], kind=CriterionKind.NO_SKIP)
    response = client_for(rep).post(
        quick_url(stages["demo"]),
        {"stage": stages["demo"].pk, "title": "Skipper", "currency": "USD"},
        **HTMX,
    )
    assert response.status_code == 422
    assert "Pass through Qualified first" in response.content.decode()
    assert not Deal.objects.filter(title="Skipper").exists()


def test_quick_add_card_stays_off_a_board_whose_filters_hide_it(client_for, rep, teammate, stages):
    response = client_for(rep).post(
        quick_url(stages["lead"], f"pipeline={stages['lead'].pipeline_id}&owner={teammate.pk}"),
        {"stage": stages["lead"].pk, "title": "Mine", "currency": "USD"},
        **HTMX,
    )
    html = response.content.decode()
    assert Deal.objects.filter(title="Mine", owner=rep).exists()
    assert "afterbegin" not in html
    assert "The board filters hide it." in html


def test_quick_add_form_query_count_is_fixed(
    client_for, rep, stages, demo_gate, django_assert_num_queries
):
    client = client_for(rep)
    # session, user, stage, its criteria, then start stages: open stages and their criteria
    with django_assert_num_queries(6):
        client.get(quick_url(stages["demo"]), **HTMX)


@pytest.mark.parametrize("existing", [0, 30])
def test_quick_add_create_query_count_does_not_grow_with_deals(
    client_for, rep, stages, django_assert_num_queries, existing
):
    DealFactory.create_batch(existing, owner=rep, stage=stages["lead"])
    client = client_for(rep)
    with django_assert_num_queries(QUICK_CREATE_QUERIES):
        client.post(
            quick_url(stages["lead"]),
            {"stage": stages["lead"].pk, "title": f"New {existing}", "currency": "USD"},
            **HTMX,
        )


QUICK_CREATE_QUERIES = 14


def test_quick_add_for_an_unknown_or_archived_stage_is_404(client_for, rep, stages):
    stages["proposal"].is_archived = True
    stages["proposal"].save()
    client = client_for(rep)
    assert client.get(quick_url(stages["proposal"]), **HTMX).status_code == 404
    response = client.post(
        f"{reverse('deal_new')}?stage=999999", {"title": "Lost", "currency": "USD"}, **HTMX
    )
    assert response.status_code == 404
    assert not Deal.objects.filter(title="Lost").exists()
