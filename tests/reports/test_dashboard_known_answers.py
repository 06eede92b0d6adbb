"""Known answers: a dozen deals with exact dates, every figure worked out by hand below,
checked against the dashboard's CSV exports (read through the summaries and without).

Period: June 2025 (previous period May 2-31). Now: July 1, 12:00 UTC. Every move at
12:00, so a stay from the 3rd to the 6th is 3.0 days. Stages (conftest): Lead in 10 %,
Qualified 20 %, Demo 30 %, Proposal 40 % (forecast category: commit), Won, Lost.

deal  path (June unless noted)                                    amount  expected close
D1    Lead 1 → Qualified 3 → Demo 6 → Proposal 10 → Won 20         1,000   June 25
D2    Lead 2 → Qualified 4 → Lost 9
D3    Lead 2 → Demo 8 → Won 18                                     3,000   June 20
D4    Lead 5 → Qualified 7                                                 July 10
D5    Lead 6
D6    Qualified 1 → Demo 3 → Qualified 11 (backward)
D7    Lead May 20 → Qualified 1 → Proposal 16                      1,000   June 30
D8    Lead 10 → Lost 12
D9    Proposal May 25 → Won 25                                     5,000   June 28
D10   Lead May 1 → Won May 31 (previous period)                    2,000
D11   Demo 14 → Proposal 16 → Demo 22 (backward)
D12   Lead 28
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from django.utils import timezone

from deals.models import Deal
from reports.dashboard import backtest, stays
from reports.dashboard.filters import Period
from stages.models import ForecastCategory, Stage
from tests.reports.dashboard_data import make_deal, scope_for

NOW = datetime(2025, 7, 1, 12, tzinfo=UTC)
JUNE = {"period": "custom", "date_from": "2025-06-01", "date_to": "2025-06-30"}


def day(d: int, month: int = 6) -> datetime:
    return datetime(2025, month, d, 12, tzinfo=UTC)


@pytest.fixture(params=["raw history", "summaries"])
def june(request, stages, rep, admin_user, client_for, monkeypatch):
    lead, qualified, demo = stages["lead"], stages["qualified"], stages["demo"]
    proposal, won, lost = stages["proposal"], stages["won"], stages["lost"]
    Stage.objects.filter(pk=proposal.pk).update(forecast_category=ForecastCategory.COMMIT)
    paths = {
        "D1": [
            (lead, day(1)),
            (qualified, day(3)),
            (demo, day(6)),
            (proposal, day(10)),
            (won, day(20)),
        ],
        "D2": [(lead, day(2)), (qualified, day(4)), (lost, day(9))],
        "D3": [(lead, day(2)), (demo, day(8)), (won, day(18))],
        "D4": [(lead, day(5)), (qualified, day(7))],
        "D5": [(lead, day(6))],
        "D6": [(qualified, day(1)), (demo, day(3)), (qualified, day(11))],
        "D7": [(lead, day(20, 5)), (qualified, day(1)), (proposal, day(16))],
        "D8": [(lead, day(10)), (lost, day(12))],
        "D9": [(proposal, day(25, 5)), (won, day(25))],
        "D10": [(lead, day(1, 5)), (won, day(31, 5))],
        "D11": [(demo, day(14)), (proposal, day(16)), (demo, day(22))],
        "D12": [(lead, day(28))],
    }
    amounts = {"D3": "3000.00", "D9": "5000.00", "D10": "2000.00"}
    expected = {"D1": day(25), "D3": day(20), "D4": day(10, 7), "D7": day(30), "D9": day(28)}
    for name, path in paths.items():
        deal = make_deal(rep, path, title=name, amount=amounts.get(name, "1000.00"))
        if name in expected:
            Deal.objects.filter(pk=deal.pk).update(expected_close_date=expected[name].date())
    if request.param == "summaries":
        stays.refresh(now=NOW)
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    client = client_for(admin_user)

    def export(panel: str) -> dict[str, list[str]]:
        response = client.get(f"/reports/dashboard/{panel}.csv", JUNE)
        assert response.status_code == 200
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        return {row[0]: row[1:] for row in rows}

    return export


def test_funnel_counts_first_entries_and_who_went_on(june):
    """Lead: D1 D2 D3 D4 D5 D8 D12 entered; D1 D2 D3 D4 went on (4/7). Qualified: D1 D2 D4
    D6 D7 (D6 once, from the 1st); D1, D6 (Demo) and D7 (Proposal) went on (3/5). Demo: D1
    D3 D6 D11; all but D6 (back to Qualified) went on (3/4). Proposal: D1 D7 D11 (D9
    entered in May); only D1 won (1/3). Won: D1 D3 D9."""
    rows = june("funnel")
    assert rows["Lead in"] == ["7", "4", "57.14"]
    assert rows["Qualified"] == ["5", "3", "60.00"]
    assert rows["Demo"] == ["4", "3", "75.00"]
    assert rows["Proposal"] == ["3", "1", "33.33"]
    assert rows["Won"] == ["3", "", ""]


def test_time_in_stage_medians_and_p75_of_stays_that_ended_in_june(june):
    """Lead stays ending in June: D1 2, D2 2, D3 6, D4 2, D7 12 (May 20 → June 1), D8 2 →
    sorted 2 2 2 2 6 12: median 2.0, p75 at rank 3.75 = 2 + 0.75 x 4 = 5.0. Waiting: D5
    25 days, D12 3 → median 14.0, oldest 25.0.
    Qualified: D6 2, D1 3, D2 5, D7 15 → median 4.0, p75 at 2.25 = 5 + 0.25 x 10 = 7.5;
    waiting D4 24, D6 20 → 22.0, 24.0.
    Demo: D11 2, D1 4, D6 8, D3 10 → median 6.0, p75 8 + 0.25 x 2 = 8.5; waiting D11 9.
    Proposal: D11 6, D1 10, D9 31 → median 10.0, p75 at 1.5 = 20.5; waiting D7 15."""
    rows = june("time")
    assert rows["Lead in"] == ["6", "2.0", "5.0", "2", "14.0", "25.0"]
    assert rows["Qualified"] == ["4", "4.0", "7.5", "2", "22.0", "24.0"]
    assert rows["Demo"] == ["4", "6.0", "8.5", "1", "9.0", "9.0"]
    assert rows["Proposal"] == ["3", "10.0", "20.5", "1", "15.0", "15.0"]


def test_bottleneck_ranks_waiting_times_median_and_lowest_conversion(june):
    """Waiting x median: Lead 2 x 2.0 = 4.0, Qualified 2 x 4.0 = 8.0, Demo 1 x 6.0 = 6.0,
    Proposal 1 x 10.0 = 10.0. Lowest conversion first: Proposal 33.33, Lead 57.14,
    Qualified 60, Demo 75."""
    rows = june("bottleneck")
    assert rows["Lead in"] == ["2", "2.0", "4.0", "4", "57.14", "2"]
    assert rows["Qualified"] == ["2", "4.0", "8.0", "2", "60.00", "3"]
    assert rows["Demo"] == ["1", "6.0", "6.0", "3", "75.00", "4"]
    assert rows["Proposal"] == ["1", "10.0", "10.0", "1", "33.33", "1"]


def test_win_rate_and_sales_cycle_mean_and_median(june):
    """June: won D1 (1st → 20th: 19 days), D3 (16), D9 (May 25 → June 25: 31); lost D2 (7),
    D8 (2). Win rate 3/5 = 60.00 %. Won: mean 66/3 = 22.0, median 19.0. All closed: mean
    75/5 = 15.0, median 16.0. May: D10 won after 30 days, nothing lost."""
    rows = june("velocity")
    assert rows["Won deals"] == ["3", "1"]
    assert rows["Lost deals"] == ["2", "0"]
    assert rows["Win rate %"] == ["60.00", "100.00"]
    assert rows["Average cycle (days, won deals)"] == ["22.0", "30.0"]
    assert rows["Median cycle (days, won deals)"] == ["19.0", "30.0"]
    assert rows["Average cycle (days, all closed deals)"] == ["15.0", "30.0"]
    assert rows["Median cycle (days, all closed deals)"] == ["16.0", "30.0"]
    assert rows["Won value (USD)"] == ["9000.00", "2000.00"]


def test_cumulative_flow_counts_deals_in_each_stage_at_the_end_of_a_day(june):
    """End of June 1: Lead D1; Qualified D6, D7; Proposal D9 (since May 25).
    End of June 10: Lead D5, D8; Qualified D4, D7; Demo D3, D6; Proposal D1, D9; Lost D2.
    End of June 30: Lead D5, D12; Qualified D4, D6; Demo D11; Proposal D7; Won D1, D3, D9
    (D10 won in May, before the period); Lost D2, D8."""
    rows = june("flow")
    assert rows["Day"] == ["Lead in", "Qualified", "Demo", "Proposal", "Won", "Lost"]
    assert rows["2025-06-01"] == ["1", "2", "0", "1", "0", "0"]
    assert rows["2025-06-10"] == ["2", "2", "2", "2", "0", "1"]
    assert rows["2025-06-30"] == ["2", "2", "1", "1", "3", "2"]
    assert len(rows) == 1 + 30


def test_backtest_compares_the_forecast_of_june_1st_with_what_was_won(june):
    """Expected to close in June and open at June 1, 00:00 by their history: D7 (in Lead,
    1,000 x 10 % = 100, category pipeline) and D9 (in Proposal, 5,000 x 40 % = 2,000,
    commit). D1 and D3 were created later. Won in June: D1, D3, D9 = 9,000."""
    rows = june("backtest")
    assert rows["2025-06"] == [
        "2",
        "2100.00",
        "5000.00",
        "0.00",
        "1000.00",
        "3",
        "9000.00",
        "6900.00",
        "",
    ]


def test_backtest_cuts_months_at_local_midnight(stages, rep, admin_user, pipeline):
    """In Auckland (UTC+12 in winter): a deal won at 00:30 on July 1 local time (12:30 UTC
    on June 30) is won in July, one won at 00:30 on June 1 local (May 31 UTC) in June; a
    deal expected to close on June 30 counts in June's forecast when it was open at
    midnight on June 1 local (it entered Proposal at 23:00 on May 31 local, 11:00 UTC)."""
    lead, proposal, won = stages["lead"], stages["proposal"], stages["won"]
    may = datetime(2025, 5, 2, tzinfo=UTC)
    make_deal(rep, [(lead, may), (won, datetime(2025, 6, 30, 12, 30, tzinfo=UTC))], title="J")
    make_deal(rep, [(lead, may), (won, datetime(2025, 5, 31, 12, 30, tzinfo=UTC))], title="W")
    open_deal = make_deal(
        rep, [(lead, may), (proposal, datetime(2025, 5, 31, 11, tzinfo=UTC))], title="F"
    )
    Deal.objects.filter(pk=open_deal.pk).update(expected_close_date=date(2025, 6, 30))
    with timezone.override("Pacific/Auckland"):
        scope = scope_for(
            admin_user,
            pipeline,
            period=Period(date(2025, 5, 1), date(2025, 7, 31), "Custom"),
            now=datetime(2025, 8, 1, tzinfo=UTC),
        )
        cells = {
            cell.month: (cell.forecast_deals, cell.won_deals) for cell in backtest.backtest(scope)
        }
    assert cells == {date(2025, 6, 1): (1, 1), date(2025, 7, 1): (0, 1)}
