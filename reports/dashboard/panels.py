"""The dashboard's panels: each turns query rows into one table, its chart and its CSV.

A panel's chart, its table and its CSV are all made from the same rounded figures, so
what a manager reads on the chart is what the spreadsheet says. Money is shown in the
main currency (settings.DEFAULT_CURRENCY); other currencies are listed beside it, never
added to it. The loops here run over aggregate rows (stages, days, reps), never deals.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts import policy
from reports.dashboard import backtest, charts, history, queries, stays
from reports.dashboard.filters import DashboardScope
from reports.dashboard.tables import Cell, Panel, Percent, days, display, percent
from stages.models import Stage, StageKind

TIMES = "\N{MULTIPLICATION SIGN}"
# Days the cumulative-flow chart draws at most: a year, day by day.
FLOW_POINTS = 366
# Months the backtest chart draws (the table and CSV have every month of the period).
BACKTEST_BARS = 24


@dataclass(frozen=True)
class BottleneckStage:
    stage: Stage
    waiting: int
    median: float | None
    score: float | None
    entered: int
    conversion: float | None
    score_rank: int | None = None
    conversion_rank: int | None = None


class Dashboard:
    """Lazily runs each panel's query once, so a CSV of one panel runs only what it needs."""

    def __init__(self, scope: DashboardScope, *, summaries: bool = True) -> None:
        """`summaries=False` derives every figure from the raw history, ignoring the
        summary tables: slower, and by construction what the summaries must equal."""
        self.scope = scope
        self.currency = settings.DEFAULT_CURRENCY
        self.summaries = summaries

    # --- query results, each fetched at most once ---------------------------------------

    @cached_property
    def stages(self) -> list[Stage]:
        stages = queries.stages_of(self.scope)
        if self.summaries and stages and stages[0].rewritten:
            # History was written in the past tense (an import, an undo): bring those
            # deals into the summaries before any panel reads them.
            stays.catch_up()
        return stages

    @cached_property
    def open_stages(self) -> list[Stage]:
        return [stage for stage in self.stages if stage.kind == StageKind.OPEN]

    @cached_property
    def stage_names(self) -> dict[int, str]:
        return {stage.pk: stage.name for stage in self.stages}

    @cached_property
    def stays_until(self) -> datetime | None:
        """The completed-stays summary's mark, which came with the stages."""
        if not self.summaries or not self.stages:
            return None
        return self.stages[0].stays_until

    @cached_property
    def days_counted(self) -> bool:
        """Whether `StageDay`, `StageLength` and `StageEntryDay` count the stored stays and
        entries in the current time zone."""
        if not self.summaries or not self.stages:
            return False
        return self.stages[0].days_zone == timezone.get_current_timezone_name()

    @cached_property
    def closed_stage_ids(self) -> list[int]:
        return [stage.pk for stage in self.stages if stage.kind != StageKind.OPEN]

    @cached_property
    def entries_until(self) -> datetime | None:
        """The entries summary's mark, if it was worked out with the stages as they are."""
        if not self.summaries or not self.stages:
            return None
        return self.stages[0].entries_until

    @cached_property
    def funnel_by_stage(self) -> dict[int, history.StageFunnel]:
        rows = history.funnel(
            self.scope, entries_until=self.entries_until, entries_counted=self.days_counted
        )
        return {row.stage_id: row for row in rows}

    @cached_property
    def times(self) -> tuple[dict[int, history.StageTimes], dict[int, history.StageTimes]]:
        done, waiting = history.time_in_stage(
            self.scope,
            stays_until=self.stays_until,
            stage_ids=[stage.pk for stage in self.open_stages],
            lengths_counted=self.days_counted,
        )
        return {t.stage_id: t for t in done}, {t.stage_id: t for t in waiting}

    # --- panels -----------------------------------------------------------------------------

    def pipeline(self) -> Panel:
        by_stage: dict[int, list[queries.StageMoney]] = defaultdict(list)
        for row in queries.pipeline_now(self.scope):
            by_stage[row.stage_id].append(row)
        cur = self.currency
        rows: list[list[Cell]] = []
        bars = []
        for stage in self.open_stages:
            lines = by_stage[stage.pk]
            main = [line for line in lines if line.currency == cur]
            value = sum((line.value for line in main), Decimal("0.00"))
            weighted = sum((line.weighted for line in main), Decimal("0.00"))
            stalled_value = sum((line.stalled_value for line in main), Decimal("0.00"))
            count = sum(line.deals for line in lines)
            stalled = sum(line.stalled for line in lines)
            others = "; ".join(
                f"{line.currency} {line.value:,.2f} (weighted {line.weighted:,.2f}, "
                f"stalled {line.stalled_value:,.2f})"
                for line in lines
                if line.currency != cur
            )
            rows.append([stage.name, count, value, weighted, stalled, stalled_value, others])
            text = f"{count} deals · {cur} {value:,.2f} · weighted {weighted:,.2f}"
            if stalled:
                text += f" · {stalled} stalled ({cur} {stalled_value:,.2f})"
            for line in lines:
                if line.currency != cur:
                    text += f" · + {line.currency} {line.value:,.2f}"
            bars.append(charts.Bar(stage.name, (count,), text))
        return Panel(
            slug="pipeline",
            title="Pipeline now",
            help=(
                f"Open deals in each stage today. Weighted value = amount {TIMES} win probability "
                "(the deal's own, else the stage's). Stalled = a stalled rule fires and the "
                "flag is not snoozed."
            ),
            header=[
                "Stage",
                "Deals",
                f"Value ({cur})",
                f"Weighted value ({cur})",
                "Stalled deals",
                f"Stalled value ({cur})",
                "Other currencies",
            ],
            rows=rows,
            chart=charts.bar_chart(
                chart_id="chart-pipeline", title="Open deals per stage now", bars=bars
            ),
        )

    def funnel(self) -> Panel:
        rows: list[list[Cell]] = []
        bars = []
        for stage in self.stages:
            if stage.kind == StageKind.LOST:
                continue
            row = self.funnel_by_stage.get(stage.pk)
            entered = row.entered if row else 0
            if stage.kind == StageKind.WON:
                rows.append([stage.name, entered, None, None])
                bars.append(charts.Bar(stage.name, (entered,), f"{entered} won"))
                continue
            converted = row.converted if row else 0
            rate = percent(converted, entered)
            rows.append([stage.name, entered, converted, rate])
            text = f"{entered} entered · {converted} went on"
            if rate is not None:
                text += f" ({rate:.1f}%)"
            bars.append(charts.Bar(stage.name, (entered,), text))
        return Panel(
            slug="funnel",
            title="Funnel and stage conversion",
            help=(
                "Deals that entered each stage in the period, and the share of them that "
                "later entered a later open stage or won (a deal counts once per stage)."
            ),
            header=["Stage", "Entered in period", "Went on", "Conversion %"],
            rows=rows,
            chart=charts.bar_chart(
                chart_id="chart-funnel", title="Deals entering each stage", bars=bars
            ),
        )

    def time(self) -> Panel:
        done, waiting = self.times
        rows: list[list[Cell]] = []
        bars = []
        for stage in self.open_stages:
            stays = done.get(stage.pk)
            now = waiting.get(stage.pk)
            median = days(stays.median) if stays else None
            p75 = days(stays.p75) if stays else None
            count = now.count if now else 0
            age = days(now.median) if now else None
            oldest = days(now.longest) if now else None
            rows.append([stage.name, stays.count if stays else 0, median, p75, count, age, oldest])
            if median is None:
                text = "no completed stays"
            else:
                text = f"median {median:.1f} d · p75 {p75:.1f} d"
            if count:
                text += f" · {count} waiting, oldest {oldest:.1f} d"
            bars.append(charts.Bar(stage.name, (median or 0,), text, marker=p75))
        return Panel(
            slug="time",
            title="Time in stage",
            help=(
                "Median and 75th percentile of stays that ended in the period (days from "
                "entering the stage to the next move). Deals still waiting are shown "
                "separately, with their age today."
            ),
            header=[
                "Stage",
                "Completed stays",
                "Median days",
                "P75 days",
                "Waiting now",
                "Median age of waiting (days)",
                "Oldest waiting (days)",
            ],
            rows=rows,
            chart=charts.bar_chart(
                chart_id="chart-time",
                title="Median days in stage (the tick marks the 75th percentile)",
                bars=bars,
            ),
        )

    @cached_property
    def bottleneck_stages(self) -> list[BottleneckStage]:
        done, waiting = self.times
        plain = []
        for stage in self.open_stages:
            count = waiting[stage.pk].count if stage.pk in waiting else 0
            median = days(done[stage.pk].median) if stage.pk in done else None
            funnel = self.funnel_by_stage.get(stage.pk)
            entered = funnel.entered if funnel else 0
            plain.append(
                BottleneckStage(
                    stage=stage,
                    waiting=count,
                    median=median,
                    # The shown (rounded) median, so the chart's product reads true.
                    score=None if median is None else round(count * median, 1),
                    entered=entered,
                    conversion=percent(funnel.converted, entered) if funnel else None,
                )
            )
        by_score = _ranks(plain, lambda s: s.score, reverse=True)
        by_conversion = _ranks(plain, lambda s: s.conversion, reverse=False)
        return [
            replace(s, score_rank=by_score[i], conversion_rank=by_conversion[i])
            for i, s in enumerate(plain)
        ]

    @cached_property
    def worst(self) -> BottleneckStage | None:
        """Highest waiting x median; with no completed stays anywhere, lowest conversion."""
        scored = [s for s in self.bottleneck_stages if s.score]
        if scored:
            return min(scored, key=lambda s: s.score_rank or 0)
        converting = [s for s in self.bottleneck_stages if s.conversion is not None]
        if converting:
            return min(converting, key=lambda s: s.conversion_rank or 0)
        return None

    def board_url(self, stage: Stage) -> str:
        """The board, filtered to the deals waiting in `stage` for this dashboard's people."""
        params: dict[str, Any] = {"pipeline": stage.pipeline_id, "stage": stage.pk}
        scope = self.scope
        if scope.owner is not None:
            params["owner"] = scope.owner.pk
        elif policy.numbers_scope(scope.user) == "own":
            params["owner"] = scope.user.pk
        if scope.team is not None:
            params["team"] = scope.team.pk
        return f"{reverse('board')}?{urlencode(params)}"

    def bottleneck(self) -> Panel:
        worst = self.worst
        rows: list[list[Cell]] = []
        bars = []
        for s in self.bottleneck_stages:
            rows.append(
                [
                    s.stage.name,
                    s.waiting,
                    s.median,
                    s.score,
                    s.score_rank,
                    s.conversion,
                    s.conversion_rank,
                ]
            )
            if s.score is None:
                text = f"{s.waiting} waiting · no completed stays"
            else:
                text = f"{s.waiting} waiting, typically {s.median:.0f} days each"
            if s.conversion is not None:
                text += f" · converts {s.conversion:.1f}%"
            is_worst = worst is not None and s.stage.pk == worst.stage.pk
            bars.append(charts.Bar(s.stage.name, (s.score or 0,), text, highlight=is_worst))
        extra: dict[str, Any] = {"worst": worst}
        if worst is not None:
            extra["board_url"] = self.board_url(worst.stage)
            extra["stuck"] = queries.stuck_deals(self.scope, worst.stage.pk)
        return Panel(
            slug="bottleneck",
            title="Bottleneck",
            help=(
                f"Stages ranked by deals waiting now {TIMES} median days in the stage (highest "
                "first), and by lowest conversion in the period. The worst is highlighted."
            ),
            header=[
                "Stage",
                "Waiting now",
                "Median days",
                f"Waiting {TIMES} median",
                f"Rank by waiting {TIMES} median",
                "Conversion %",
                "Rank by lowest conversion",
            ],
            rows=rows,
            chart=charts.bar_chart(
                chart_id="chart-bottleneck",
                title=f"Deals waiting {TIMES} median days in stage",
                bars=bars,
            ),
            extra=extra,
        )

    def velocity(self) -> Panel:
        data = queries.outcomes(self.scope)
        cur = _velocity_figures(data["cur"], self.currency)
        prev = _velocity_figures(data["prev"], self.currency)
        cycles = history.cycle_times(self.scope)

        def cycle(measure: str, kind: str) -> list[Cell]:
            figures = [cycles.get((name, kind)) for name in ("cur", "prev")]
            return [days(getattr(f, measure)) if f else None for f in figures]

        rows: list[list[Cell]] = [
            ["Won deals", cur["won"], prev["won"]],
            ["Lost deals", cur["lost"], prev["lost"]],
            ["Win rate %", cur["win_rate"], prev["win_rate"]],
            ["Average cycle (days, won deals)", cur["cycle"], prev["cycle"]],
            ["Median cycle (days, won deals)", *cycle("median", "won")],
            ["Average cycle (days, all closed deals)", *cycle("mean", "closed")],
            ["Median cycle (days, all closed deals)", *cycle("median", "closed")],
        ]
        neutral = len(rows)
        others = set(cur["by_currency"]) | set(prev["by_currency"])
        currencies = [self.currency, *sorted(others - {self.currency})]
        empty = {"won_value": Decimal("0.00"), "avg_won": None, "open": 0, "velocity": None}
        for code in currencies:
            now = cur["by_currency"].get(code, empty)
            before = prev["by_currency"].get(code, empty)
            rows += [
                [f"Won value ({code})", now["won_value"], before["won_value"]],
                [f"Average won amount ({code})", now["avg_won"], before["avg_won"]],
                [f"Number of open {code} deals at period end", now["open"], before["open"]],
                [f"Sales velocity per day ({code})", now["velocity"], before["velocity"]],
            ]
        return Panel(
            slug="velocity",
            title="Win rate and velocity",
            help=(
                "Win rate = won ÷ (won + lost), deals closed in the period. Cycle = days "
                "from creation to close, of won deals and of all closed deals. Velocity = "
                "open deals "
                f"{TIMES} win rate {TIMES} average won amount ÷ average cycle days, per currency."
            ),
            header=["Measure", "This period", "Previous period"],
            rows=rows,
            # Tiles: the currency-neutral measures and the main currency's.
            extra={
                "tiles": [
                    (row[0], display(row[1]), display(row[2])) for row in rows[: neutral + 4]
                ]
            },
        )

    def backtest(self) -> Panel:
        cur = self.currency
        by_month: dict[date, list[backtest.MonthBacktest]] = defaultdict(list)
        for cell in backtest.backtest(self.scope, stored=self.summaries):
            by_month[cell.month].append(cell)
        rows: list[list[Cell]] = []
        bars = []
        for month in backtest.months_of(self.scope):
            cells = by_month.get(month, [])
            main = next(
                (c for c in cells if c.currency == cur), backtest.MonthBacktest(month, cur)
            )
            others = "; ".join(
                f"{c.currency} weighted {c.weighted:,.2f}, won {c.won_value:,.2f}"
                for c in cells
                if c.currency != cur
            )
            label = f"{month:%Y-%m}"
            rows.append(
                [
                    label,
                    main.forecast_deals,
                    main.weighted,
                    main.commit,
                    main.best_case,
                    main.pipeline,
                    main.won_deals,
                    main.won_value,
                    main.won_value - main.weighted,
                    others,
                ]
            )
            bars.append(
                charts.Bar(
                    label,
                    (float(main.won_value),),
                    f"forecast {cur} {main.weighted:,.2f} · won {cur} {main.won_value:,.2f}",
                    marker=float(main.weighted),
                )
            )
        return Panel(
            slug="backtest",
            title="Forecast backtest",
            help=(
                "For each month: the weighted forecast as it stood on the month's first day, "
                "worked out from the stage history (deals then open, by expected close date), "
                "beside what was won in the month. Works for imported history."
            ),
            header=[
                "Month",
                "Deals forecast",
                f"Weighted forecast ({cur})",
                f"Commit ({cur})",
                f"Best case ({cur})",
                f"Pipeline ({cur})",
                "Won deals",
                f"Won value ({cur})",
                f"Won {chr(0x2212)} forecast ({cur})",
                "Other currencies",
            ],
            rows=rows,
            chart=charts.bar_chart(
                chart_id="chart-backtest",
                title="Won per month (bar) and the forecast on its first day (tick)",
                bars=bars[-BACKTEST_BARS:],
            ),
        )

    def movement(self) -> Panel:
        counts = queries.movement(
            self.scope,
            stays_until=self.stays_until if self.days_counted else None,
            entries_until=self.entries_until,
        )
        labels = [
            ("new", "New"),
            ("advanced", "Advanced"),
            ("regressed", "Regressed"),
            ("won", "Won"),
            ("lost", "Lost"),
        ]
        rows: list[list[Cell]] = [[label, counts[key] or 0] for key, label in labels]
        bars = [charts.Bar(str(label), (float(n or 0),), f"{n}") for label, n in rows]
        return Panel(
            slug="movement",
            title="Movement in the period",
            help=(
                "Stage changes in the period: new deals; moves to a later or an earlier open "
                "stage (reopening a closed deal counts as regressed); moves to won or lost."
            ),
            header=["Movement", "Stage changes"],
            rows=rows,
            chart=charts.bar_chart(
                chart_id="chart-movement", title="Stage changes in the period", bars=bars
            ),
        )

    def flow(self) -> Panel:
        scope = self.scope
        last = min(scope.period.last_day, scope.today)
        span = (last - scope.period.first_day).days + 1
        day_list = [scope.period.first_day + timedelta(days=i) for i in range(max(span, 0))]
        flow = (
            history.cumulative_flow(
                scope,
                stays_until=self.stays_until,
                counted_except=self.closed_stage_ids if self.days_counted else None,
            )
            if day_list
            else {}
        )
        ordered = self.open_stages + [s for s in self.stages if s.kind != StageKind.OPEN]
        series = [(stage.name, _carry(flow.get(stage.pk, {}), day_list)) for stage in ordered]
        rows: list[list[Cell]] = [
            [day.isoformat(), *(counts[i] for _, counts in series)]
            for i, day in enumerate(day_list)
        ]
        # A long period's chart and table show every n-th day (and the last), so the page
        # stays light; the CSV keeps every day.
        every = -(-len(day_list) // FLOW_POINTS) if day_list else 1
        shown = [i for i in range(len(day_list)) if i % every == 0 or i == len(day_list) - 1]
        return Panel(
            slug="flow",
            title="Cumulative flow",
            help=(
                "Deals in each stage at the end of each day. Won and lost count the deals "
                "closed since the period began."
            ),
            header=["Day", *(name for name, _ in series)],
            rows=rows,
            page_rows=None if every == 1 else [rows[i] for i in shown],
            chart=charts.flow_chart(
                chart_id="chart-flow",
                title="Deals per stage per day",
                days=[day_list[i] for i in shown],
                series=[(name, [counts[i] for i in shown]) for name, counts in series],
            ),
        )

    def gate(self) -> Panel:
        rows: list[list[Cell]] = []
        bars = []
        for row in queries.gate_report(self.scope):
            stage = self.stage_names.get(row.stage_id, "")
            rows.append([stage, row.requirement, row.blocked, row.overridden, row.deals])
            bars.append(
                charts.Bar(
                    f"{stage}: {row.requirement}",
                    (row.blocked, row.overridden),
                    f"{row.blocked} blocked · {row.overridden} overridden",
                )
            )
        return Panel(
            slug="gate",
            title="Gate report",
            help=(
                "Entry criteria that stopped moves in the period: blocked attempts and "
                "manager overrides, from the gate telemetry."
            ),
            header=["Stage", "Requirement", "Blocked attempts", "Overrides", "Deals"],
            rows=rows,
            chart=charts.bar_chart(
                chart_id="chart-gate",
                title="Blocked attempts (dark) and overrides (light) per criterion",
                bars=bars,
            ),
        )

    def reps(self) -> Panel:
        cur = self.currency
        people: dict[int, dict[str, Any]] = {}

        def person(owner_id: int, name: str) -> dict[str, Any]:
            return people.setdefault(
                owner_id,
                {
                    "name": name,
                    "open": Decimal("0.00"),
                    "weighted": Decimal("0.00"),
                    "won": 0,
                    "won_value": Decimal("0.00"),
                    "lost": 0,
                    "stalled": 0,
                    "activities": 0,
                    "others": [],
                },
            )

        for line in queries.rep_deals(self.scope):
            entry = person(line.owner_id, line.name)
            entry["won"] += line.won
            entry["lost"] += line.lost
            entry["stalled"] += line.stalled
            if line.currency == cur:
                entry["open"] += line.open_value
                entry["weighted"] += line.weighted
                entry["won_value"] += line.won_value
            else:
                entry["others"].append(
                    f"{line.currency} open {line.open_value:,.2f}, weighted "
                    f"{line.weighted:,.2f}, won {line.won_value:,.2f}"
                )
        for owner_id, (name, done) in queries.rep_activities(self.scope).items():
            person(owner_id, name)["activities"] = done
        rows: list[list[Cell]] = [
            [
                p["name"],
                p["open"],
                p["weighted"],
                p["won"],
                p["won_value"],
                percent(p["won"], p["won"] + p["lost"]),
                p["stalled"],
                p["activities"],
                "; ".join(p["others"]),
            ]
            for p in sorted(people.values(), key=lambda p: p["name"].lower())
        ]
        return Panel(
            slug="reps",
            title="Per rep",
            help=(
                "Open and weighted value today; won deals, won value and win rate for "
                "the period; stalled deals today; activities completed in the period."
            ),
            header=[
                "Rep",
                f"Open value ({cur})",
                f"Weighted value ({cur})",
                "Won deals",
                f"Won value ({cur})",
                "Win rate %",
                "Stalled deals",
                "Activities done",
                "Other currencies",
            ],
            rows=rows,
        )

    # --- registry ---------------------------------------------------------------------------

    def panel(self, slug: str) -> Panel:
        return PANELS[slug](self)

    def panels(self, *, budget: float | None = None) -> list[Panel | Deferred]:
        """Every panel in page order. With a `budget` (seconds), the panels not begun
        when it has run out come back as `Deferred`: the page answers with what is
        ready, and each deferred panel is fetched by a request of its own (so a team of
        a million deals never runs a page past the web server's timeout)."""
        started = time.monotonic()
        result: list[Panel | Deferred] = []
        for slug, builder in PANELS.items():
            if budget is not None and time.monotonic() - started > budget:
                result.append(Deferred(slug, TITLES[slug]))
            else:
                result.append(builder(self))
        return result


@dataclass(frozen=True)
class Deferred:
    """A panel left for its own request (see `Dashboard.panels`)."""

    slug: str
    title: str
    deferred: bool = True


# What a deferred panel's placeholder is headed with (each panel's own title).
TITLES = {
    "bottleneck": "Bottleneck",
    "pipeline": "Pipeline now",
    "funnel": "Funnel and stage conversion",
    "time": "Time in stage",
    "velocity": "Win rate and velocity",
    "backtest": "Forecast backtest",
    "movement": "Movement in the period",
    "gate": "Gate report",
    "flow": "Cumulative flow",
    "reps": "Per rep",
}

# Page order: where the pipeline is stuck first, then the figures that explain it.
PANELS: dict[str, Callable[[Dashboard], Panel]] = {
    "bottleneck": Dashboard.bottleneck,
    "pipeline": Dashboard.pipeline,
    "funnel": Dashboard.funnel,
    "time": Dashboard.time,
    "velocity": Dashboard.velocity,
    "backtest": Dashboard.backtest,
    "movement": Dashboard.movement,
    "gate": Dashboard.gate,
    "flow": Dashboard.flow,
    "reps": Dashboard.reps,
}


def _ranks(
    items: Sequence[BottleneckStage],
    key: Callable[[BottleneckStage], float | None],
    *,
    reverse: bool,
) -> list[int | None]:
    """1-based ranks by `key` (ties share a rank); items without a value get no rank."""
    values = sorted({v for item in items if (v := key(item)) is not None}, reverse=reverse)
    position = {}
    rank = 1
    for value in values:
        position[value] = rank
        rank += sum(1 for item in items if key(item) == value)
    return [None if key(item) is None else position[key(item)] for item in items]


def _carry(changes: dict[date, int], day_list: list[date]) -> list[int]:
    """Counts for every day from the days on which they changed."""
    counts = []
    current = 0
    for day in day_list:
        current = changes.get(day, current)
        counts.append(current)
    return counts


def _velocity_figures(lines: list[queries.Outcomes], main: str) -> dict[str, Any]:
    won = sum(line.won for line in lines)
    lost = sum(line.lost for line in lines)
    cycle_total = sum((line.cycle_total for line in lines), timedelta(0))
    rate = Fraction(won, won + lost) if won + lost else None
    micros = cycle_total // timedelta(microseconds=1)
    cycle = Fraction(micros, 86_400_000_000 * won) if won else None
    by_currency: dict[str, dict[str, Any]] = {}
    for line in lines:
        avg_won = Fraction(line.won_value) / line.won_with_amount if line.won_with_amount else None
        velocity = None
        if rate is not None and avg_won is not None and cycle:
            velocity = _cents(line.open_at_end * rate * avg_won / cycle)
        by_currency[line.currency] = {
            "won_value": line.won_value,
            "avg_won": None if avg_won is None else _cents(avg_won),
            "open": line.open_at_end,
            "velocity": velocity,
        }
    return {
        "won": won,
        "lost": lost,
        "win_rate": None if rate is None else Percent(float(rate) * 100),
        "cycle": None if cycle is None else round(float(cycle), 1),
        "by_currency": by_currency,
        "main": main,
    }


def _cents(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(queries.CENT)
