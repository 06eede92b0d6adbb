"""Each dashboard panel's lead: one plain sentence on what it shows and what to do about
it. The exact definitions stay in each panel's `help`, shown under "How it is counted"."""

from __future__ import annotations

LEADS = {
    "pipeline": (
        "How many open deals sit in each stage today and what they are worth; a stage that "
        "holds many stalled deals is where to spend this week's follow-ups."
    ),
    "funnel": (
        "How many deals reached each stage in the period and how many went on; the stage "
        "where most deals stop is the one to coach."
    ),
    "time": (
        "How long deals usually stay in each stage; a stage that takes much longer than the "
        "others slows every deal down, so look at what it waits for."
    ),
    "bottleneck": (
        "The stage where the most deals are waiting the longest; open those deals on the "
        "board and agree a next step for each."
    ),
    "velocity": (
        "How many deals you won and lost, how long winning takes and how much revenue a day "
        "the pipeline brings in; compare with the previous period to see the trend."
    ),
    "backtest": (
        "What the forecast said at the start of each month against what was actually won; "
        "if the two drift apart, review the stage probabilities."
    ),
    "movement": (
        "How deals moved in the period: new, moved forward, moved back, won and lost; many "
        "moves back mean deals are advanced too early."
    ),
    "flow": (
        "How many deals were in each stage day by day; a band that keeps widening is work "
        "piling up in that stage."
    ),
    "gate": (
        "Which entry criteria stop deals most often and how often managers override them; "
        "a criterion that is overridden a lot may need to change."
    ),
    "reps": (
        "Each rep's open deals, wins and stalled deals side by side; use it to see who needs "
        "help this week, not to rank people."
    ),
}


def lead(slug: str) -> str:
    return LEADS.get(slug, "")
