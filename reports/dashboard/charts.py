"""Charts as server-rendered SVG: readable without JavaScript and allowed by the CSP.

Every chart is an `<svg role="img">` labelled by its `<title>` and `<desc>`; the desc
spells out every value, and the labels and values are drawn as text. Colours come from
classes styled in static/css/dashboard.css, never from style attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Bar charts put each row's label and value on a line of text above its bar, so long
# labels and values stay readable when the chart is scaled down to a narrow panel.
WIDTH = 600
ROW = 40
BAR = 14
PAD = 6
SERIES_CLASSES = 8


@dataclass(frozen=True)
class Bar:
    """One row of a horizontal bar chart. `segments` stacks parts (e.g. blocked, overridden)."""

    label: str
    segments: tuple[float, ...]
    text: str
    highlight: bool = False
    marker: float | None = None

    @property
    def total(self) -> float:
        return sum(self.segments)


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _frame(
    chart_id: str, title: str, desc: str, width: int, height: int, body: SafeString
) -> SafeString:
    return format_html(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'aria-labelledby="{id}-title {id}-desc" preserveAspectRatio="xMinYMin meet">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>{body}</svg>',
        w=width,
        h=height,
        id=chart_id,
        title=title,
        desc=desc,
        body=body,
    )


def bar_chart(*, chart_id: str, title: str, bars: Sequence[Bar]) -> SafeString:
    """Horizontal bars, one per row, each under a line naming it and giving its value."""
    if not bars:
        return SafeString("")
    scale_max = max([bar.total for bar in bars] + [bar.marker or 0 for bar in bars]) or 1
    rows = []
    for index, bar in enumerate(bars):
        top = PAD + index * ROW
        bar_y = top + 18
        x = 0.0
        parts = []
        for part, value in enumerate(bar.segments):
            width = (WIDTH - 2) * value / scale_max
            if width > 0:
                parts.append(
                    format_html(
                        '<rect class="{cls}" x="{x}" y="{y}" width="{w}" height="{h}"/>',
                        cls=f"bar seg{part}" + (" bar-worst" if bar.highlight else ""),
                        x=f"{x:.1f}",
                        y=bar_y,
                        w=f"{width:.1f}",
                        h=BAR,
                    )
                )
            x += width
        marker = ""
        if bar.marker is not None:
            marker = format_html(
                '<line class="marker" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"/>',
                x=f"{(WIDTH - 2) * bar.marker / scale_max + 1:.1f}",
                y1=bar_y - 2,
                y2=bar_y + BAR + 2,
            )
        rows.append(
            format_html(
                '<g class="{row}"><text x="0" y="{ty}"><tspan class="label">{label}</tspan>'
                '<tspan class="value" dx="8">{text}</tspan></text>{parts}{marker}</g>',
                row="row row-worst" if bar.highlight else "row",
                ty=top + 12,
                label=_short(bar.label),
                text=bar.text,
                # Each part was built by format_html, so joining them is safe.
                parts=mark_safe("".join(parts)),
                marker=marker,
            )
        )
    desc = "; ".join(f"{bar.label}: {bar.text}" for bar in bars)
    height = PAD * 2 + ROW * len(bars)
    return _frame(chart_id, title, desc, WIDTH, height, mark_safe("".join(rows)))


FLOW_LEFT = 48
FLOW_RIGHT = 520
FLOW_TOP = 12
FLOW_HEIGHT = 220
FLOW_WIDTH = 720


def flow_chart(
    *, chart_id: str, title: str, days: Sequence[date], series: Sequence[tuple[str, list[int]]]
) -> SafeString:
    """Stacked areas: for each day, the deals in each stage, first series at the bottom."""
    if not days or not series:
        return SafeString("")
    totals = [sum(counts[i] for _, counts in series) for i in range(len(days))]
    top = max(totals) or 1
    span = max(len(days) - 1, 1)

    def x(i: int) -> float:
        return FLOW_LEFT + (FLOW_RIGHT - FLOW_LEFT) * (i / span if len(days) > 1 else 0.5)

    def y(value: float) -> float:
        return FLOW_TOP + FLOW_HEIGHT * (1 - value / top)

    below = [0] * len(days)
    shapes = []
    legend = []
    for index, (label, counts) in enumerate(series):
        above = [b + c for b, c in zip(below, counts, strict=True)]
        upper = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(above)]
        lower = [f"{x(i):.1f},{y(v):.1f}" for i, v in reversed(list(enumerate(below)))]
        if len(days) == 1:  # a single day still gets a visible band
            upper = [f"{x(0) - 20:.1f},{y(above[0]):.1f}", f"{x(0) + 20:.1f},{y(above[0]):.1f}"]
            lower = [f"{x(0) + 20:.1f},{y(below[0]):.1f}", f"{x(0) - 20:.1f},{y(below[0]):.1f}"]
        shapes.append(
            format_html(
                '<polygon class="area s{n}" points="{points}"/>',
                n=index % SERIES_CLASSES,
                points=" ".join(upper + lower),
            )
        )
        ly = FLOW_TOP + 6 + index * 20
        legend.append(
            format_html(
                '<rect class="area s{n}" x="{x}" y="{y}" width="12" height="12"/>'
                '<text class="label" x="{tx}" y="{ty}">{label}: {last}</text>',
                n=index % SERIES_CLASSES,
                x=FLOW_RIGHT + 16,
                y=ly,
                tx=FLOW_RIGHT + 34,
                ty=ly + 10,
                label=_short(label, 20),
                last=counts[-1],
            )
        )
        below = above
    axes = format_html(
        '<line class="axis" x1="{l}" x2="{r}" y1="{b}" y2="{b}"/>'
        '<line class="axis" x1="{l}" x2="{l}" y1="{t}" y2="{b}"/>'
        '<text class="tick" x="{lt}" y="{ty}" text-anchor="end">{top}</text>'
        '<text class="tick" x="{lt}" y="{b}" text-anchor="end">0</text>'
        '<text class="tick" x="{l}" y="{dy}">{first}</text>'
        '<text class="tick" x="{r}" y="{dy}" text-anchor="end">{last}</text>',
        l=FLOW_LEFT,
        r=FLOW_RIGHT,
        t=FLOW_TOP,
        b=FLOW_TOP + FLOW_HEIGHT,
        lt=FLOW_LEFT - 6,
        ty=FLOW_TOP + 8,
        top=top,
        dy=FLOW_TOP + FLOW_HEIGHT + 16,
        first=days[0].isoformat(),
        last=days[-1].isoformat(),
    )
    desc = (
        f"Deals per stage at the end of each day from {days[0].isoformat()} to "
        f"{days[-1].isoformat()}. On the last day: "
        + "; ".join(f"{label}: {counts[-1]}" for label, counts in series)
        + ". Every day's figures are in the table below the chart."
    )
    height = max(FLOW_TOP + FLOW_HEIGHT + 26, FLOW_TOP + 16 + 20 * len(series))
    body = format_html_join("", "{}", ((part,) for part in [*shapes, axes, *legend]))
    return _frame(chart_id, title, desc, FLOW_WIDTH, height, body)
