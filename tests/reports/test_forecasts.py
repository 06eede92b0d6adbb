"""Forecasts: the maths on crafted data, the set-based job, snapshots, the page and CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deals.models import StageChange
from reports import forecasts
from reports.models import Forecast, ForecastSnapshot, PeriodKind, StageWinRate
from stages.models import ForecastCategory
from tests.factories import DealFactory, StageFactory

NOW = timezone.now()
TODAY = timezone.localdate(NOW)
THIS_MONTH = TODAY.replace(day=1)


def month(offset: int) -> dt.date:
    year, index = divmod(THIS_MONTH.month - 1 + offset, 12)
    return dt.date(THIS_MONTH.year + year, index + 1, 1)


def in_month(offset: int, day: int = 15) -> dt.date:
    return month(offset).replace(day=day)


def cell(owner, *, kind=PeriodKind.MONTH, start=None, currency="USD") -> Forecast:
    return Forecast.objects.get(
        owner=owner, period_kind=kind, period_start=start or THIS_MONTH, currency=currency
    )


def open_deal(owner, stage, amount, *, close=None, **fields):
    return DealFactory(
        owner=owner,
        stage=stage,
        amount=Decimal(amount),
        expected_close_date=close or in_month(0),
        **fields,
    )


def closed_deal(owner, through, outcome_stage, *, closed_at=NOW, amount="1000"):
    """A deal that went through `through` (history) and closed in `outcome_stage`."""
    deal = DealFactory(
        owner=owner,
        stage=outcome_stage,
        amount=Decimal(amount),
        closed_at=closed_at,
        history=False,
    )
    StageChange.objects.create(
        deal=deal,
        seq=1,
        to_stage=through,
        pipeline=through.pipeline,
        at=closed_at,
        source="create",
    )
    StageChange.objects.create(
        deal=deal,
        seq=2,
        from_stage=through,
        to_stage=outcome_stage,
        pipeline=through.pipeline,
        at=closed_at,
        source="board",
    )
    return deal


# --- weighted and categorical --------------------------------------------------------


def test_weighted_uses_stage_probability_or_the_deals_override(rep, stages):
    open_deal(rep, stages["qualified"], "1000")  # stage 20 %
    open_deal(rep, stages["qualified"], "2000", probability_override=55)
    forecasts.recompute(now=NOW)
    assert cell(rep).weighted == Decimal("1300.00")
    assert cell(rep).open_deals == 2


def test_categorical_sums_amounts_by_stage_forecast_category(rep, stages, pipeline):
    commit = StageFactory(pipeline=pipeline, forecast_category=ForecastCategory.COMMIT)
    best = StageFactory(pipeline=pipeline, forecast_category=ForecastCategory.BEST_CASE)
    open_deal(rep, commit, "700")
    open_deal(rep, best, "300")
    open_deal(rep, stages["lead"], "100")  # category pipeline (the default)
    forecasts.recompute(now=NOW)
    row = cell(rep)
    assert (row.commit, row.best_case, row.pipeline_amount) == (
        Decimal("700.00"),
        Decimal("300.00"),
        Decimal("100.00"),
    )


def test_omitted_stage_and_undated_deals_are_left_out(rep, stages, pipeline):
    omitted = StageFactory(pipeline=pipeline, forecast_category=ForecastCategory.OMITTED)
    open_deal(rep, omitted, "999")
    DealFactory(owner=rep, stage=stages["lead"], amount=Decimal("5"), expected_close_date=None)
    forecasts.recompute(now=NOW)
    assert not Forecast.objects.exists()


def test_closed_won_counts_in_the_month_it_closed(rep, stages):
    DealFactory(
        owner=rep,
        stage=stages["won"],
        amount=Decimal("4000"),
        expected_close_date=in_month(3),
        closed_at=NOW,
    )
    DealFactory(owner=rep, stage=stages["lost"], amount=Decimal("9"), closed_at=NOW)
    forecasts.recompute(now=NOW)
    row = cell(rep)
    assert (row.closed_won, row.won_deals, row.open_deals, row.weighted) == (
        Decimal("4000.00"),
        1,
        0,
        Decimal("0.00"),
    )
    assert not Forecast.objects.filter(period_start=month(3)).exists()


def test_a_cell_adds_up_the_figures_of_all_its_stages(rep, stages, pipeline):
    commit = StageFactory(
        pipeline=pipeline, probability=60, forecast_category=ForecastCategory.COMMIT
    )
    best = StageFactory(
        pipeline=pipeline, probability=80, forecast_category=ForecastCategory.BEST_CASE
    )
    for _ in range(10):
        closed_deal(rep, commit, stages["won"])  # commit learns (10 + 6) / 20 = 0.8
    open_deal(rep, commit, "1000")
    open_deal(rep, commit, "500", probability_override=10)
    open_deal(rep, best, "2000")  # no history: learned = configured 0.8
    open_deal(rep, stages["lead"], "100")  # 10 %, category pipeline
    forecasts.recompute(now=NOW)
    row = cell(rep)
    assert row.open_deals == 4
    assert row.weighted == Decimal("2260.00")  # 600 + 50 + 1600 + 10
    assert row.learned == Decimal("2810.00")  # 1500 x 0.8 + 2000 x 0.8 + 100 x 0.1
    assert (row.commit, row.best_case, row.pipeline_amount) == (
        Decimal("1500.00"),
        Decimal("2000.00"),
        Decimal("100.00"),
    )
    assert (row.closed_won, row.won_deals) == (Decimal("10000.00"), 10)


def test_won_deal_counts_in_the_month_of_its_local_close_date(rep, stages):
    late_on_the_31st = dt.datetime(2026, 1, 31, 20, 0, tzinfo=dt.UTC)  # Feb 1st in Tokyo
    DealFactory(owner=rep, stage=stages["won"], amount=Decimal("700"), closed_at=late_on_the_31st)
    with timezone.override("Asia/Tokyo"):
        forecasts.recompute(now=NOW)
    starts = set(Forecast.objects.values_list("period_kind", "period_start"))
    assert starts == {
        (PeriodKind.MONTH, dt.date(2026, 2, 1)),
        (PeriodKind.QUARTER, dt.date(2026, 1, 1)),
    }


def test_currencies_are_never_added_together(rep, stages):
    open_deal(rep, stages["qualified"], "1000", currency="USD")
    open_deal(rep, stages["qualified"], "500", currency="EUR")
    forecasts.recompute(now=NOW)
    assert cell(rep, currency="USD").weighted == Decimal("200.00")
    assert cell(rep, currency="EUR").weighted == Decimal("100.00")


def test_quarter_rows_add_up_their_months(rep, stages):
    quarter = forecasts.period_start(TODAY, PeriodKind.QUARTER)
    months_in_quarter = [
        m for m in range(-2, 3) if forecasts.period_start(month(m), "quarter") == quarter
    ]
    for offset in months_in_quarter:
        open_deal(rep, stages["qualified"], "100", close=in_month(offset))
    forecasts.recompute(now=NOW)
    row = cell(rep, kind=PeriodKind.QUARTER, start=quarter)
    assert row.weighted == Decimal("20.00") * len(months_in_quarter)


def test_rows_carry_pipeline_and_the_owners_team(rep, stages, pipeline, team):
    open_deal(rep, stages["lead"], "100")
    forecasts.recompute(now=NOW)
    assert (cell(rep).pipeline, cell(rep).team) == (pipeline, team)


# --- learned win rates ----------------------------------------------------------------


def rate(stage) -> Decimal:
    return StageWinRate.objects.get(stage=stage).learned


def test_learned_rate_without_history_is_the_configured_probability(stages):
    forecasts.recompute(now=NOW)
    assert rate(stages["qualified"]) == Decimal("0.200000")
    assert StageWinRate.objects.get(stage=stages["qualified"]).closed == 0


def test_learned_rate_shrinks_the_observed_rate_toward_the_configured_one(rep, stages):
    for _ in range(8):
        closed_deal(rep, stages["qualified"], stages["won"])
    for _ in range(2):
        closed_deal(rep, stages["qualified"], stages["lost"])
    forecasts.recompute(now=NOW)
    # (8 won + 10 * 0.20) / (10 closed + 10) = 0.5, halfway between 0.8 observed and 0.2
    assert rate(stages["qualified"]) == Decimal("0.500000")
    computed = StageWinRate.objects.get(stage=stages["qualified"])
    assert (computed.closed, computed.won, computed.configured) == (10, 8, 20)


def test_stage_no_closed_deal_passed_through_keeps_its_configured_rate(rep, stages):
    for _ in range(5):
        closed_deal(rep, stages["qualified"], stages["won"])
    forecasts.recompute(now=NOW)
    assert rate(stages["demo"]) == Decimal("0.300000")
    assert rate(stages["qualified"]) == Decimal("0.466667")  # (5 + 2) / 15


def test_deal_that_entered_a_stage_twice_is_one_close_of_it(rep, stages):
    deal = closed_deal(rep, stages["qualified"], stages["won"])
    for seq, (came_from, to) in enumerate(
        [(stages["won"], stages["qualified"]), (stages["qualified"], stages["won"])], start=3
    ):
        StageChange.objects.create(
            deal=deal, seq=seq, from_stage=came_from, to_stage=to, pipeline=to.pipeline, at=NOW
        )
    forecasts.recompute(now=NOW)
    computed = StageWinRate.objects.get(stage=stages["qualified"])
    assert (computed.closed, computed.won) == (1, 1)
    assert computed.learned == Decimal("0.272727")  # (1 + 2) / 11


def test_closes_older_than_twelve_months_are_not_learned_from(rep, stages):
    for _ in range(5):
        closed_deal(
            rep, stages["qualified"], stages["lost"], closed_at=NOW - dt.timedelta(days=400)
        )
    forecasts.recompute(now=NOW)
    assert rate(stages["qualified"]) == Decimal("0.200000")


def test_open_deals_do_not_count_as_closes(rep, stages):
    open_deal(rep, stages["qualified"], "100")
    forecasts.recompute(now=NOW)
    assert StageWinRate.objects.get(stage=stages["qualified"]).closed == 0


def test_recompute_without_learning_keeps_the_stored_rates(rep, stages):
    forecasts.recompute(now=NOW)
    for _ in range(10):
        closed_deal(rep, stages["qualified"], stages["won"])
    open_deal(rep, stages["qualified"], "1000")
    result = forecasts.recompute(now=NOW, learn=False)
    assert result.win_rates == 0
    assert rate(stages["qualified"]) == Decimal("0.200000")
    assert cell(rep).learned == Decimal("200.00")


def test_learned_forecast_applies_the_learned_rate_and_ignores_overrides(rep, stages):
    for _ in range(10):
        closed_deal(rep, stages["qualified"], stages["won"])
    open_deal(rep, stages["qualified"], "1000", probability_override=90)
    forecasts.recompute(now=NOW)
    # (10 + 2) / 20 = 0.6
    assert cell(rep).learned == Decimal("600.00")
    assert cell(rep).weighted == Decimal("900.00")


# --- the job: set-based, idempotent, per owner ---------------------------------------


def stored() -> list[tuple]:
    return sorted(
        Forecast.objects.values_list(
            "pipeline_id",
            "owner_id",
            "period_kind",
            "period_start",
            "currency",
            *forecasts.FIGURES,
        )
    )


def test_recompute_twice_changes_nothing(rep, teammate, stages):
    open_deal(rep, stages["qualified"], "1000")
    open_deal(teammate, stages["demo"], "3000", close=in_month(2), currency="EUR")
    closed_deal(rep, stages["qualified"], stages["won"])
    forecasts.recompute(now=NOW)
    first, rates = stored(), list(StageWinRate.objects.values_list("stage_id", "learned"))
    forecasts.recompute(now=NOW)
    assert stored() == first
    assert list(StageWinRate.objects.values_list("stage_id", "learned")) == rates


def test_second_recompute_writes_no_row(rep, teammate, stages):
    open_deal(rep, stages["qualified"], "1000")
    open_deal(teammate, stages["demo"], "3000", close=in_month(2), currency="EUR")
    forecasts.recompute(now=NOW)
    ids = set(Forecast.objects.values_list("pk", flat=True))
    second = forecasts.recompute(now=NOW + dt.timedelta(hours=1))
    assert second.deleted == 0 and sum(second.inserted.values()) == 0
    assert set(Forecast.objects.values_list("pk", flat=True)) == ids


def test_recompute_rewrites_only_cells_that_changed(rep, stages):
    open_deal(rep, stages["qualified"], "1000")
    open_deal(rep, stages["qualified"], "1000", close=in_month(4))
    forecasts.recompute(now=NOW)
    open_deal(rep, stages["qualified"], "500", close=in_month(4))
    result = forecasts.recompute(now=NOW)
    # month 4 and its quarter (four months on, never this month's quarter)
    assert result.inserted == {"month": 1, "quarter": 1}
    assert result.deleted == 2
    assert cell(rep, start=month(4)).weighted == Decimal("300.00")


def test_cell_whose_deals_are_gone_is_removed(rep, stages):
    deal = open_deal(rep, stages["qualified"], "1000", close=in_month(2))
    forecasts.recompute(now=NOW)
    deal.expected_close_date = None
    deal.save()
    forecasts.recompute(now=NOW)
    assert not Forecast.objects.exists()


def test_owner_without_team_is_not_rewritten_on_a_second_run(db, stages):
    from tests.factories import UserFactory

    loner = UserFactory(team=None)
    open_deal(loner, stages["qualified"], "1000")
    forecasts.recompute(now=NOW)
    second = forecasts.recompute(now=NOW)
    assert second.deleted == 0 and cell(loner).team is None


def test_recompute_for_one_owner_touches_only_their_rows(rep, teammate, stages):
    open_deal(rep, stages["qualified"], "1000")
    open_deal(teammate, stages["qualified"], "1000")
    forecasts.recompute(now=NOW)
    open_deal(rep, stages["qualified"], "500")
    open_deal(teammate, stages["qualified"], "500")
    forecasts.recompute(now=NOW, owner_id=rep.pk)
    assert cell(rep).weighted == Decimal("300.00")
    assert cell(teammate).weighted == Decimal("200.00")


def write_statements(**kwargs) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        forecasts.recompute(now=NOW, **kwargs)
    kinds = ("INSERT", "DELETE", "UPDATE", "SELECT")
    sqls = [q["sql"] for q in queries.captured_queries if "pg_advisory" not in q["sql"]]
    return [sql for sql in sqls if sql.lstrip().upper().startswith(kinds)]


def test_recompute_runs_a_fixed_number_of_statements_whatever_the_number_of_deals(
    rep, teammate, stages
):
    open_deal(rep, stages["qualified"], "10")
    few = write_statements()
    for index in range(30):
        owner = rep if index % 2 else teammate
        open_deal(owner, stages["demo"], "10", close=in_month(index % 6), currency="EUR")
        closed_deal(owner, stages["qualified"], stages["won"])
    many = write_statements()
    # win rates: delete + two inserts; scratch: months from deals, quarters rolled up;
    # then the two DELETEs of the comparison and one INSERT per period kind
    assert len(few) == len(many) == 9
    assert len(write_statements(owner_id=rep.pk)) == 6


def full_statements(learn: bool = True, owner: bool = False) -> int:
    """Every statement of a recompute, DDL and savepoints included: the transaction's
    savepoint and its release, the job lock and the scratch table's ANALYZE (PostgreSQL
    only), win rates (delete and two inserts), the scratch table (drop, create, index,
    months, quarters, drop), the two deletes of the comparison and one insert per period
    kind."""
    postgresql = 2 if connection.vendor == "postgresql" else 0
    return 2 + postgresql + (3 if learn and not owner else 0) + 6 + 2 + 2


@pytest.mark.parametrize("count", [1, 40])
@pytest.mark.parametrize(
    "kwargs", [{}, {"learn": False}, {"owner": True}], ids=["nightly", "hourly", "owner"]
)
def test_recompute_costs_a_fixed_number_of_statements(
    rep, teammate, stages, count, kwargs, django_assert_num_queries
):
    for index in range(count):
        owner = rep if index % 2 else teammate
        open_deal(owner, stages["demo"], "10", close=in_month(index % 6), currency="EUR")
        closed_deal(owner, stages["qualified"], stages["won"])
    forecasts.recompute(now=NOW)
    learn = kwargs.get("learn", True)
    owner_id = rep.pk if kwargs.get("owner") else None
    with django_assert_num_queries(full_statements(learn, owner_id is not None)):
        forecasts.recompute(now=NOW, learn=learn, owner_id=owner_id)


# --- snapshots ------------------------------------------------------------------------


def test_snapshot_keeps_current_and_future_periods_of_the_week(rep, stages):
    open_deal(rep, stages["qualified"], "1000", close=in_month(1))
    open_deal(rep, stages["qualified"], "1000", close=in_month(-6))
    forecasts.recompute(now=NOW)
    taken = forecasts.take_snapshot(now=NOW)
    snapshots = ForecastSnapshot.objects.filter(period_kind=PeriodKind.MONTH)
    assert list(snapshots.values_list("period_start", flat=True)) == [month(1)]
    assert taken == ForecastSnapshot.objects.count()
    assert set(ForecastSnapshot.objects.values_list("taken_on", flat=True)) == {
        forecasts.week_start(TODAY)
    }


def test_snapshot_twice_in_a_week_replaces_it(rep, stages):
    open_deal(rep, stages["qualified"], "1000")
    forecasts.recompute(now=NOW)
    forecasts.take_snapshot(now=NOW)
    open_deal(rep, stages["qualified"], "1000")
    forecasts.recompute(now=NOW)
    forecasts.take_snapshot(now=NOW)
    snapshot = ForecastSnapshot.objects.get(period_kind=PeriodKind.MONTH)
    assert snapshot.weighted == Decimal("400.00")


def test_snapshots_of_different_weeks_are_kept(rep, stages):
    open_deal(rep, stages["qualified"], "1000", close=in_month(2))
    forecasts.recompute(now=NOW)
    forecasts.take_snapshot(now=NOW - dt.timedelta(days=7))
    forecasts.take_snapshot(now=NOW)
    assert ForecastSnapshot.objects.filter(period_kind=PeriodKind.MONTH).count() == 2


# --- the page -------------------------------------------------------------------------


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(user, query: str = "") -> str:
    response = login(user).get(reverse("reports:forecast") + query)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def team_forecast(rep, teammate, outsider, manager, stages):
    open_deal(rep, stages["qualified"], "1000", title="r")
    open_deal(teammate, stages["qualified"], "2000", title="t")
    open_deal(outsider, stages["qualified"], "4000", title="o")
    forecasts.recompute(now=NOW)


def weighted_on(html: str) -> str:
    """The weighted figure of this month's USD row."""
    row = html.split(f'<th scope="row">{THIS_MONTH:%b %Y}</th>')[1].split("</tr>")[0]
    return row.split("<td>")[3].split("</td>")[0].strip()


def test_rep_sees_only_their_own_numbers(rep, team_forecast):
    assert weighted_on(page(rep)) == "$200"


def test_manager_sees_their_teams_numbers(manager, team_forecast):
    assert weighted_on(page(manager)) == "$600"


def test_admin_sees_everyones_numbers(admin_user, team_forecast):
    assert weighted_on(page(admin_user)) == "$1,400"


def test_manager_may_narrow_to_one_owner(manager, teammate, team_forecast):
    assert weighted_on(page(manager, f"?owner={teammate.pk}")) == "$400"


def test_manager_cannot_pick_an_owner_of_another_team(manager, outsider, team_forecast):
    html = page(manager, f"?owner={outsider.pk}")
    assert "not valid" in html
    assert weighted_on(html) == "$600"


def test_page_shows_three_forecasts_and_stage_rates(rep, stages):
    for _ in range(10):
        closed_deal(rep, stages["qualified"], stages["won"])
    open_deal(rep, stages["qualified"], "1000")
    forecasts.recompute(now=NOW)
    html = page(rep)
    for heading in ("Closed won", "Weighted", "Learned", "Commit", "Best case", "Pipeline"):
        assert heading in html
    assert "60%" in html and "20%" in html  # learned vs configured for Qualified


def test_page_folds_overdue_open_deals_into_past_due(rep, stages):
    open_deal(rep, stages["qualified"], "1000", close=in_month(-3))
    forecasts.recompute(now=NOW)
    assert "Past due" in page(rep)


def test_page_quarter_view_labels_quarters(rep, stages):
    open_deal(rep, stages["qualified"], "1000")
    forecasts.recompute(now=NOW)
    quarter = (TODAY.month - 1) // 3 + 1
    assert f"Q{quarter} {TODAY.year}" in page(rep, "?period=quarter")


def test_page_requires_login(client, db):
    response = client.get(reverse("reports:forecast"))
    assert response.status_code == 302


def many_forecast_rows(owners, stages, count: int) -> None:
    for index in range(count):
        open_deal(
            owners[index % len(owners)], stages["qualified"], "100", close=in_month(index % 8)
        )
    forecasts.recompute(now=NOW)


@pytest.mark.parametrize("count", [1, 30])
def test_page_costs_a_fixed_number_of_queries_for_a_manager(
    manager, rep, teammate, stages, count, django_assert_num_queries
):
    many_forecast_rows([rep, teammate, manager], stages, count)
    client = login(manager)
    # session, user, by period, by owner, stage rates, uncounted deals, pipelines, teams,
    # owners, bell
    with django_assert_num_queries(10):
        client.get(reverse("reports:forecast"))


@pytest.mark.parametrize("count", [1, 30])
def test_page_costs_a_fixed_number_of_queries_for_a_rep(
    rep, stages, count, django_assert_num_queries
):
    many_forecast_rows([rep], stages, count)
    client = login(rep)
    # session, user, by period, by owner, stage rates, uncounted deals, pipelines, bell
    with django_assert_num_queries(8):
        client.get(reverse("reports:forecast"))


# --- CSV ------------------------------------------------------------------------------


def csv_rows(user, query: str = "") -> list[list[str]]:
    response = login(user).get(reverse("reports:forecast_csv") + query)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_csv_exports_visible_cells_with_names(manager, rep, team_forecast):
    header, *rows = csv_rows(manager)
    assert header[:5] == ["period", "pipeline", "team", "owner", "currency"]
    owners = {row[3] for row in rows}
    assert rep.display_name in owners
    assert all(row[3] != "o" for row in rows)
    assert {row[0] for row in rows} == {f"{THIS_MONTH:%b %Y}"}


def test_csv_neutralises_formula_like_names(rep, stages, pipeline):
    pipeline.name = "=HYPERLINK(1)"
    pipeline.save()
    rep.first_name, rep.last_name = "@evil", "+x"
    rep.save()
    open_deal(rep, stages["qualified"], "1000")
    forecasts.recompute(now=NOW)
    _header, row = csv_rows(rep)
    assert row[1] == "'=HYPERLINK(1)"
    assert row[3] == "'@evil +x"


@pytest.mark.parametrize("count", [1, 30])
def test_csv_costs_a_fixed_number_of_queries(rep, stages, count, django_assert_num_queries):
    many_forecast_rows([rep], stages, count)
    client = login(rep)
    # session, user, rows with their names
    with django_assert_num_queries(3):
        client.get(reverse("reports:forecast_csv"))


def test_csv_of_a_rep_leaves_out_teammates(rep, teammate, team_forecast):
    _header, *rows = csv_rows(rep)
    assert {row[3] for row in rows} == {rep.display_name}


def test_page_explains_open_deals_it_cannot_place_with_links_to_them(rep, stages):
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import DealFactory

    DealFactory(owner=rep, stage=stages["lead"], expected_close_date=None)
    DealFactory(owner=rep, stage=stages["lead"], expected_close_date=None)
    late = timezone.localdate() - timedelta(days=5)
    DealFactory(owner=rep, stage=stages["lead"], expected_close_date=late)
    html = login(rep).get(reverse("reports:forecast")).content.decode()
    assert "2 open deals</a> have no expected close date" in html
    assert "1 open deal</a> has a close date that has passed" in html
    assert f'href="{reverse("board")}?no_close=on"' in html


def test_board_lists_deals_without_a_close_date(rep, stages):
    from tests.factories import DealFactory

    DealFactory(owner=rep, stage=stages["lead"], expected_close_date=None, title="Undated")
    DealFactory(
        owner=rep, stage=stages["lead"], title="Dated", expected_close_date=dt.date(2030, 1, 1)
    )
    response = login(rep).get(reverse("board"), {"no_close": "on"})
    titles = {card.title for column in response.context["columns"] for card in column.cards}
    assert titles == {"Undated"}


def test_page_draws_a_server_rendered_chart_by_month_and_category(rep, stages):
    import re

    many_forecast_rows([rep], stages, 4)
    html = login(rep).get(reverse("reports:forecast")).content.decode()
    chart = re.search(r'<figure class="fc-chart">.*?</figure>', html, flags=re.S).group(0)
    assert '<svg class="chart" role="img"' in chart
    assert "commit" in chart and "best case" in chart and "pipeline" in chart
    assert chart.count('<g class="row">') >= 2  # one bar per month with deals
