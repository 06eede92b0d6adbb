"""Every dashboard figure, on the hand-made March history of tests/reports/dashboard_data.py.

Each test's docstring works its expected numbers out from that history. Every figure must
come out the same whatever the completed-stays summary holds (reports.dashboard.stays):
nothing, the stays that ended before Mar 12 (the summary and the history meet inside the
period), or all of them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from reports.dashboard import history as history_sql
from reports.dashboard import stays
from reports.dashboard.filters import Period
from reports.dashboard.panels import Dashboard
from reports.models import StageStayMark
from tests.factories import TeamFactory
from tests.reports.dashboard_data import NOW, at, build_history, make_deal, march, scope_for

SUMMARY_UP_TO = {"no summary": None, "summary to Mar 12": march(12), "summary to now": NOW}


@pytest.fixture(params=list(SUMMARY_UP_TO))
def history(request, stages, rep, teammate, outsider):
    built = build_history(stages, rep=rep, teammate=teammate, outsider=outsider)
    if (until := SUMMARY_UP_TO[request.param]) is not None:
        stays.refresh(now=until + stays.SETTLE)
    return built


@pytest.fixture
def board(history, manager, pipeline):
    """The manager's dashboard for March 2025."""
    return Dashboard(scope_for(manager, pipeline))


def rows_by_stage(panel):
    return {row[0]: row[1:] for row in panel.rows}


def test_time_in_stage_gives_median_and_p75_of_stays_completed_in_the_period(board):
    """Completed stays in March, in days:
    Lead in: A 2 (1st→3rd), B 4 (2nd→6th), E 10 (4th→14th) → median 4, p75 = 4 + .5·6 = 7.
    Qualified: A 4 (3rd→7th), C 8 (Feb 25→Mar 5) → median 6, p75 = 4 + .75·4 = 7.
    Demo: A 1 (7th→8th), C 5 (5th→10th) → median 3, p75 4. Proposal: A 12 → 12, 12.
    """
    times = rows_by_stage(board.time())
    assert times["Lead in"][:3] == [3, 4.0, 7.0]
    assert times["Qualified"][:3] == [2, 6.0, 7.0]
    assert times["Demo"][:3] == [2, 3.0, 4.0]
    assert times["Proposal"][:3] == [1, 12.0, 12.0]


def test_time_in_stage_shows_deals_still_waiting_separately_with_their_age(board):
    """Now is Apr 1 12:00. Lead in: D since Mar 10 (22 d), F since Mar 25 (7 d) → median
    14.5, oldest 22. Demo: B since Mar 6 (26 d). Proposal: H since Mar 28 (4 d)."""
    times = rows_by_stage(board.time())
    assert times["Lead in"][3:] == [2, 14.5, 22.0]
    assert times["Qualified"][3:] == [1, 22.0, 22.0]
    assert times["Demo"][3:] == [1, 26.0, 26.0]
    assert times["Proposal"][3:] == [1, 4.0, 4.0]


def test_a_deal_still_in_its_stage_adds_no_completed_stay(history, manager, pipeline, stages):
    """B has sat in Demo since Mar 6: Demo's completed stays are A's and C's only."""
    mark = StageStayMark.objects.filter(pk=1).values_list("covered_until", flat=True)
    done, _waiting = history_sql.time_in_stage(
        scope_for(manager, pipeline), stays_until=mark.first()
    )
    demo = next(t for t in done if t.stage_id == stages["demo"].pk)
    assert demo.count == 2


def test_conversion_counts_a_skip_as_going_on_and_the_skipped_stage_as_not_entered(board):
    """Lead in, entered in March by A, B, E, D, F; A went to Qualified and B skipped to Demo,
    both later open stages → 2 of 5 = 40 %. B never entered Qualified: only A and C did."""
    funnel = rows_by_stage(board.funnel())
    assert funnel["Lead in"] == [5, 2, 40.0]
    assert funnel["Qualified"][0] == 2


def test_conversion_does_not_count_a_backward_move_as_going_on(board):
    """Demo, entered by C (5th), B (6th), A (7th). Only A went on (Proposal); C went back to
    Qualified, B is still there → 1 of 3."""
    assert rows_by_stage(board.funnel())["Demo"] == [3, 1, pytest.approx(100 / 3)]


def test_conversion_counts_a_re_entry_within_the_period(board):
    """Qualified: A entered on the 3rd and went on; C re-entered on the 10th (moving back)
    and has not moved since → 1 of 2. Proposal: A (went on to Won), H (waiting) → 1 of 2.
    Won: A on the 20th. The outsider's X is another team's and never counts."""
    funnel = rows_by_stage(board.funnel())
    assert funnel["Qualified"] == [2, 1, 50.0]
    assert funnel["Proposal"] == [2, 1, 50.0]
    assert funnel["Won"] == [1, None, None]
    assert "Lost" not in funnel


def test_bottleneck_ranks_stages_by_waiting_times_median_and_highlights_the_worst(
    board, history, stages
):
    """waiting x median completed stay: Lead in 2 x 4 = 8, Qualified 1 x 6 = 6,
    Demo 1 x 3 = 3, Proposal 1 x 12 = 12 → Proposal is worst, with H stuck there."""
    panel = board.bottleneck()
    rows = rows_by_stage(panel)
    assert [rows[name][2:4] for name in ["Lead in", "Qualified", "Demo", "Proposal"]] == [
        [8.0, 2],
        [6.0, 3],
        [3.0, 4],
        [12.0, 1],
    ]
    assert panel.extra["worst"].stage == stages["proposal"]
    assert panel.extra["stuck"] == [history.deals["H"]]
    assert panel.extra["board_url"] == (
        f"/?pipeline={stages['proposal'].pipeline_id}&stage={stages['proposal'].pk}"
    )


def test_bottleneck_also_ranks_stages_by_lowest_conversion(board):
    """Conversion: Demo 33.3 %, Lead in 40 %, Qualified and Proposal 50 % (tied)."""
    rows = rows_by_stage(board.bottleneck())
    assert {name: row[4:] for name, row in rows.items()} == {
        "Lead in": [40.0, 2],
        "Qualified": [50.0, 3],
        "Demo": [pytest.approx(100 / 3), 1],
        "Proposal": [50.0, 3],
    }


def test_bottleneck_falls_back_to_lowest_conversion_without_completed_stays(
    history, manager, pipeline, stages
):
    """Mar 25-31: no stay ended, so no median; entered: Lead in (F, 0 of 1), Proposal (H,
    0 of 1). Both convert 0 %; ties go to the earlier stage."""
    week = Period(date(2025, 3, 25), date(2025, 3, 31), "Custom")
    panel = Dashboard(scope_for(manager, pipeline, period=week)).bottleneck()
    assert panel.extra["worst"].stage == stages["lead"]


def test_win_rate_cycle_and_velocity_beside_the_previous_period(board):
    """March: A won ($3,000, created Mar 1, won Mar 20 → 19 days), E lost → 50 %.
    Open at the end of March (USD): B, C, D, F = 4 → velocity 4 x ½ x 3000 ÷ 19 = 315.79.
    Previous period (Jan 29 to Feb 28): G won ($2,000, Feb 1 → 11: 10 days), none lost →
    100 %; open on Mar 1: C → velocity 1 x 1 x 2000 ÷ 10 = 200."""
    rows = {row[0]: row[1:] for row in board.velocity().rows}
    assert rows["Won deals"] == [1, 1]
    assert rows["Lost deals"] == [1, 0]
    assert rows["Win rate %"] == [50.0, 100.0]
    assert rows["Average cycle (days, won deals)"] == [19.0, 10.0]
    assert rows["Average won amount (USD)"] == [Decimal("3000.00"), Decimal("2000.00")]
    assert rows["Number of open USD deals at period end"] == [4, 1]
    assert rows["Sales velocity per day (USD)"] == [Decimal("315.79"), Decimal("200.00")]


def test_velocity_keeps_currencies_apart(board):
    """H (EUR 500) is open but nothing was won in EUR: no EUR velocity, and no EUR in USD."""
    rows = {row[0]: row[1:] for row in board.velocity().rows}
    assert rows["Number of open EUR deals at period end"] == [1, 0]
    assert rows["Won value (EUR)"] == [Decimal("0.00"), Decimal("0.00")]
    assert rows["Sales velocity per day (EUR)"] == [None, None]
    assert rows["Won value (USD)"] == [Decimal("3000.00"), Decimal("2000.00")]


def test_movement_counts_new_advanced_regressed_won_and_lost(board):
    """March changes: new A B D E F H (C was created in Feb); advanced A x3 (Lead→Qualified→
    Demo→Proposal), B (Lead→Demo), C (Qualified→Demo) = 5; regressed C (Demo→Qualified);
    won A; lost E."""
    assert dict(board.movement().rows) == {
        "New": 6,
        "Advanced": 5,
        "Regressed": 1,
        "Won": 1,
        "Lost": 1,
    }


def test_cumulative_flow_counts_deals_in_each_stage_at_the_end_of_each_day(board):
    """End of Mar 1: Lead in A; Qualified C (there since Feb). End of Mar 7: Lead in E;
    Demo C, B, A. End of Mar 31: Lead in D, F; Qualified C; Demo B; Proposal H; Won A;
    Lost E."""
    panel = board.flow()
    assert panel.header == ["Day", "Lead in", "Qualified", "Demo", "Proposal", "Won", "Lost"]
    days = {row[0]: row[1:] for row in panel.rows}
    assert len(days) == 31
    assert days["2025-03-01"] == [1, 1, 0, 0, 0, 0]
    assert days["2025-03-07"] == [1, 0, 3, 0, 0, 0]
    assert days["2025-03-31"] == [2, 1, 1, 1, 1, 1]


def test_cumulative_flow_counts_won_and_lost_only_from_the_period_start(board):
    """G was won in February: Won stays 0 until A is won on the 20th."""
    days = {row[0]: row[1:] for row in board.flow().rows}
    assert days["2025-03-19"][4] == 0
    assert days["2025-03-20"][4] == 1


def test_cumulative_flow_counts_a_deal_that_never_moved_in_the_period(
    history, manager, pipeline, rep, stages
):
    """A deal sitting in Demo since February is there at the end of every March day."""
    make_deal(rep, [(stages["lead"], at(2, 10)), (stages["demo"], at(2, 15))], title="idle")
    days = {row[0]: row[1:] for row in Dashboard(scope_for(manager, pipeline)).flow().rows}
    assert days["2025-03-01"][2] == 1
    assert days["2025-03-07"][2] == 4
    assert days["2025-03-31"][2] == 2


def test_cumulative_flow_stops_at_today(history, manager, pipeline):
    """A period running past today only charts the days so far."""
    period = Period(date(2025, 3, 25), date(2025, 4, 10), "Custom")
    rows = Dashboard(scope_for(manager, pipeline, period=period)).flow().rows
    assert [rows[0][0], rows[-1][0]] == ["2025-03-25", "2025-04-01"]


def test_pipeline_now_gives_count_value_weighted_and_stalled_per_stage(board):
    """Lead in: D, F ($1,000 each, 10 %) → 2, 2000, 200; D is stalled, F's flag is
    snoozed → 1 stalled, $1,000. Demo: B at 30 % → 300."""
    rows = rows_by_stage(board.pipeline())
    assert rows["Lead in"][:5] == [2, Decimal("2000.00"), Decimal("200.00"), 1, Decimal("1000.00")]
    assert rows["Demo"][:5] == [1, Decimal("1000.00"), Decimal("300.00"), 0, Decimal("0.00")]


def test_pipeline_now_never_adds_currencies_together(board):
    """Proposal holds only H, EUR 500 at 40 %: no USD, the EUR listed beside."""
    assert rows_by_stage(board.pipeline())["Proposal"] == [
        1,
        Decimal("0.00"),
        Decimal("0.00"),
        0,
        Decimal("0.00"),
        "EUR 500.00 (weighted 200.00, stalled 0.00)",
    ]


def test_gate_report_counts_blocked_attempts_and_overrides_per_criterion(board):
    """Demo's checklist blocked A (7th) and B (6th), and was overridden for B; A's February
    attempt is outside the period and X's is another team's."""
    assert board.gate().rows == [["Demo", "Confirm: Budget confirmed", 2, 1, 2]]


def test_per_rep_table(board, rep, teammate):
    """rep: open B, C, D, F = $4,000, weighted 300 + 200 + 100 + 100 = 700; won A ($3,000),
    lost E → 50 %; D stalled; activities done in March on B and D = 2.
    teammate: only H, in EUR, listed apart."""
    rows = {row[0]: row[1:] for row in board.reps().rows}
    assert rows[rep.display_name] == [
        Decimal("4000.00"),
        Decimal("700.00"),
        1,
        Decimal("3000.00"),
        50.0,
        1,
        2,
        "",
    ]
    assert rows[teammate.display_name][-1] == "EUR open 500.00, weighted 200.00, won 0.00"
    assert rows[teammate.display_name][2] == 0


def test_an_empty_period_shows_nothing_moving(history, manager, pipeline):
    """June 2024 is before every deal: no entries, stays, changes, or closed deals."""
    june = Period(date(2024, 6, 1), date(2024, 6, 30), "Custom")
    dashboard = Dashboard(scope_for(manager, pipeline, period=june))
    assert all(row[1] == 0 for row in dashboard.funnel().rows)
    assert all(row[1] == 0 for row in dashboard.time().rows)
    assert all(count == 0 for _, count in dashboard.movement().rows)
    assert all(set(row[1:]) == {0} for row in dashboard.flow().rows)
    assert dashboard.gate().rows == []
    velocity = {row[0]: row[1] for row in dashboard.velocity().rows}
    assert velocity["Win rate %"] is None
    assert velocity["Sales velocity per day (USD)"] is None


def test_a_team_with_no_deals_shows_zeros_everywhere(history, manager, pipeline):
    north = TeamFactory(name="North", manager=manager)
    dashboard = Dashboard(scope_for(manager, pipeline, team=north))
    assert all(row[1] == 0 for row in dashboard.pipeline().rows)
    assert all(row[1] == 0 for row in dashboard.funnel().rows)
    assert dashboard.bottleneck().extra["worst"] is None
    assert dashboard.reps().rows == []
    assert all(set(row[1:]) == {0} for row in dashboard.flow().rows)


def test_admin_counts_every_team(history, admin_user, pipeline):
    """X (another team) adds a Lead in and a Demo entry and a win."""
    dashboard = Dashboard(scope_for(admin_user, pipeline))
    funnel = rows_by_stage(dashboard.funnel())
    assert funnel["Lead in"][0] == 6
    assert funnel["Won"][0] == 2


def test_a_reps_dashboard_is_their_own_numbers(history, rep, pipeline):
    """rep may see teammate's H on the board, but their dashboard counts only their deals."""
    rows = rows_by_stage(Dashboard(scope_for(rep, pipeline)).pipeline())
    assert rows["Proposal"][0] == 0


def test_owner_filter_narrows_to_one_person(history, manager, teammate, pipeline):
    rows = rows_by_stage(Dashboard(scope_for(manager, pipeline, owner=teammate)).funnel())
    assert rows["Proposal"] == [1, 0, 0.0]
    assert rows["Lead in"] == [0, 0, None]


def test_velocity_labels_a_currency_in_brackets_only_on_money(board):
    """A count of deals labelled "(USD)" reads as an amount of dollars."""
    for label, *values in board.velocity().rows:
        if label.endswith(("(USD)", "(EUR)")):
            assert all(v is None or isinstance(v, Decimal) for v in values), label
