"""The stats page's yield chart: matplotlib on the server, as SVG with labelled axes and units.

The time axis spans the data within the chosen range (an hour of data over a 7-day range is not one
dot at the right edge), and the resolution is the log's quarter hour when that span is under two days,
else the hour.
"""

from __future__ import annotations

import io
from datetime import datetime

from .stats import PeriodCounts, Stats

FINE_SPAN_S = 2 * 86400.0
PAD_S = 900.0


def _series(stats: Stats) -> tuple[list[PeriodCounts], str]:
    quarters = [q for q in stats.quarters if q.inspected]
    if quarters and quarters[-1].end_s - quarters[0].start_s <= FINE_SPAN_S:
        return quarters, "per quarter hour"
    return [h for h in stats.hours if h.inspected], "per hour"


def yield_chart_svg(stats: Stats, since_s: float, until_s: float, theme: str = "dark") -> bytes:
    """Yield % and reject rate % per period against local time; an empty range says so on the chart."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure

    fg, bg, grid = ("#f2f4f7", "#1c2128", "#3a4350") if theme == "dark" else ("#111111", "#ffffff", "#cccccc")
    periods, resolution = _series(stats)
    figure = Figure(figsize=(9.0, 2.8), dpi=100, facecolor=bg)
    axes = figure.add_subplot(1, 1, 1, facecolor=bg)
    if periods:
        start = max(since_s, periods[0].start_s - PAD_S)
        end = min(until_s, periods[-1].end_s + PAD_S)
        middles = [date2num(datetime.fromtimestamp((p.start_s + p.end_s) / 2)) for p in periods]
        axes.plot(middles, [100.0 * p.good / p.inspected for p in periods], color="#2fbf4f", linewidth=2, marker="o",
                  markersize=3, label="yield %")
        axes.plot(middles, [100.0 * p.rejected / p.inspected for p in periods], color="#ef3b3b", linewidth=1.5,
                  marker="o", markersize=2.5, label="rejected %")
        legend = axes.legend(loc="lower left", fontsize=8, facecolor=bg, edgecolor=grid, ncols=2)
        for text in legend.get_texts():
            text.set_color(fg)
    else:
        start, end = since_s, until_s
        axes.text(0.5, 0.5, "no parts counted in this range", transform=axes.transAxes, ha="center", color=fg)
    axes.set_xlim(date2num(datetime.fromtimestamp(start)), date2num(datetime.fromtimestamp(end)))
    axes.xaxis_date()
    axes.set_ylim(0, 100)
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_ylabel(f"% of parts {resolution}", color=fg)
    axes.set_xlabel("local time", color=fg)
    axes.tick_params(colors=fg)
    for spine in axes.spines.values():
        spine.set_color(grid)
    axes.grid(True, color=grid, linewidth=0.5)
    figure.tight_layout()
    out = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: small, crisp, searchable
        figure.savefig(out, format="svg", facecolor=bg)
    return out.getvalue()
