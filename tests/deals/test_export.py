"""The board's CSV export: the user's visibility, the board's filters, no formulas."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import DealFactory, OrganizationFactory, PipelineFactory, StageFactory

pytestmark = pytest.mark.django_db


def export(client: Client, **params: str) -> list[list[str]]:
    response = client.get(reverse("board_export"), params)
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def titles(rows: list[list[str]]) -> set[str]:
    return {row[1] for row in rows[1:]}


def test_export_requires_login(client, stages):
    response = client.get(reverse("board_export"))

    assert response.status_code == 302


def test_export_answers_a_csv_attachment(client_for, rep, stages):
    response = client_for(rep).get(reverse("board_export"))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="sales-')


def test_export_holds_the_deals_the_user_may_see_and_never_an_outsiders(
    client_for, rep, teammate, outsider, stages
):
    DealFactory(owner=rep, stage=stages["lead"], title="Mine")
    DealFactory(owner=teammate, stage=stages["demo"], title="Teammate's")
    DealFactory(owner=outsider, stage=stages["lead"], title="Outsider's")

    rows = export(client_for(rep))

    assert titles(rows) == {"Mine", "Teammate's"}


def test_outsiders_export_lacks_our_teams_deals(client_for, rep, outsider, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Ours")

    assert titles(export(client_for(outsider))) == set()


def test_export_applies_the_board_filters(client_for, rep, teammate, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Acme renewal")
    DealFactory(owner=teammate, stage=stages["lead"], title="Acme upsell")
    DealFactory(owner=rep, stage=stages["lead"], title="Globex")

    rows = export(client_for(rep), owner=str(rep.pk), q="acme")

    assert titles(rows) == {"Acme renewal"}


def test_export_leaves_out_closed_deals_as_the_board_does(client_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Open")
    DealFactory(owner=rep, stage=stages["won"], title="Won")

    assert titles(export(client_for(rep))) == {"Open"}


def test_export_shows_the_chosen_pipeline_only(client_for, rep, stages):
    other = PipelineFactory(name="Renewals", position=5)
    DealFactory(owner=rep, stage=StageFactory(pipeline=other), title="Renewal")
    DealFactory(owner=rep, stage=stages["lead"], title="New business")

    assert titles(export(client_for(rep), pipeline=str(other.pk))) == {"Renewal"}


def test_export_row_holds_the_deal_as_on_its_card(client_for, rep, stages):
    deal = DealFactory(
        owner=rep,
        stage=stages["qualified"],
        title="Acme",
        amount=Decimal("1200.50"),
        organization=OrganizationFactory(name="Acme Corp"),
    )

    header, row = export(client_for(rep))

    record = dict(zip(header, row, strict=True))
    assert record["id"] == str(deal.pk)
    assert (record["organization"], record["owner"], record["stage"]) == (
        "Acme Corp",
        rep.display_name,
        "Qualified",
    )
    assert (record["amount"], record["currency"], record["probability"]) == (
        "1200.50",
        "USD",
        "20",
    )


@pytest.mark.parametrize(
    "title",
    ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rReturn"],
)
def test_export_neutralises_cells_a_spreadsheet_would_run(client_for, rep, stages, title):
    DealFactory(owner=rep, stage=stages["lead"], title=title)

    rows = export(client_for(rep))

    assert rows[1][1] == f"'{title}"


def test_export_leaves_ordinary_text_alone(client_for, rep, stages):
    DealFactory(owner=rep, stage=stages["lead"], title="Plain = fine")

    assert export(client_for(rep))[1][1] == "Plain = fine"


@pytest.mark.parametrize("count", [1, 60])
def test_export_query_count_is_constant(client_for, rep, stages, django_assert_num_queries, count):
    for _ in range(count):
        DealFactory(owner=rep, stage=stages["lead"])
    client = client_for(rep)

    # session, user, pipelines and their stages (board_pipeline), the deals (one stream)
    with django_assert_num_queries(5):
        rows = export(client)
    assert len(rows) == count + 1
