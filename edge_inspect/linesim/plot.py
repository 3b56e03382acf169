"""The simulator's timeline plot: belt speed, triggers, encoder pulses, reject pulses, diverter windows.

matplotlib is an optional dependency (the ``plot`` extra), imported only here and only when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .runner import SimRun

MATPLOTLIB_MISSING = "matplotlib is not installed: pip install 'edge-inspect[plot]'"


def require_matplotlib() -> Any:
    """The pyplot module with a file-only backend, or a ConfigError saying what to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(MATPLOTLIB_MISSING) from None
    return plt


def plot_run(run: SimRun, path: Path, max_seconds: float | None = None) -> None:
    """Write the timeline of ``run`` to ``path`` (PNG); ``max_seconds`` shows only the start."""
    plt = require_matplotlib()
    timeline = run.timeline
    end_s = min(timeline.end_s, max_seconds) if max_seconds else timeline.end_s
    fig, (ax_speed, ax_parts) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [1, 1.4]}, constrained_layout=True
    )
    steps = max(int(end_s * 200), 2)
    times = [end_s * i / (steps - 1) for i in range(steps)]
    ax_speed.plot(times, [run.profile.speed_at(t) for t in times], color="black", label="belt speed")
    ax_speed.set_ylabel("belt speed (mm/s)")
    ax_pulses = ax_speed.twinx()
    pulses = [(t, n) for t, n in timeline.pulses if t <= end_s]
    if pulses:
        ax_pulses.plot([t for t, _ in pulses], [n for _, n in pulses], color="tab:blue", lw=0.8, label="encoder pulses")
    ax_pulses.set_ylabel("encoder pulses (count)", color="tab:blue")
    for t in timeline.triggers_s:
        if t <= end_s:
            ax_speed.axvline(t, color="tab:gray", lw=0.5, alpha=0.6)
    ax_speed.set_title(
        f"{run.figures['tracking']} tracking, {run.figures['speed_profile']} profile: "
        f"{run.figures['defects_diverted']}/{run.figures['defects']} defects diverted, "
        f"{run.figures['good_diverted']} good diverted (grey lines: photo-eye triggers)"
    )
    for on, off in timeline.actuations:
        if on <= end_s:
            ax_parts.axvspan(on, off, ymin=0.0, ymax=0.12, color="tab:red", alpha=0.8)
    delay_s = run.diverter.actuation_delay_ms / 1000.0
    for o in run.outcomes:
        enter, exit_ = o.window.enter_s, o.window.exit_s if o.window.exit_s is not None else end_s
        if enter is None or enter > end_s:
            continue
        y = 1 if o.part.is_defect else 0
        colour = "tab:orange" if o.part.is_defect else "tab:green"
        ax_parts.plot([enter, exit_], [y + 0.5, y + 0.5], color=colour, lw=6, solid_capstyle="butt")
        if o.fired_s is not None:
            ax_parts.plot(o.fired_s + delay_s, y + 0.5, marker="v", color="tab:red", ms=6)
        wrong = o.is_diverted != o.part.is_defect
        marker = "x" if wrong else ("o" if o.is_diverted else ".")
        ax_parts.plot(exit_, y + 0.8, marker=marker, color="black" if wrong else colour, ms=8 if wrong else 5)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    legend = [
        Patch(color="tab:green", label="good part in window"),
        Patch(color="tab:orange", label="defective part in window"),
        Patch(color="tab:red", label="reject output on"),
        Line2D([], [], color="tab:red", marker="v", ls="", label="hit"),
        Line2D([], [], color="black", marker="x", ls="", label="wrong"),
    ]
    ax_parts.legend(handles=legend, loc="upper right", fontsize=8, ncol=5, framealpha=0.9)
    ax_parts.set_yticks([0.5, 1.5], ["good parts", "defective parts"])
    ax_parts.set_ylim(-0.3, 2.5)
    ax_parts.set_xlabel("time since belt start (s)")
    ax_parts.set_xlim(0, end_s)
    ax_parts.set_title(
        "bars: part inside diverter window; red: reject output asserted; ▼ hit (fire + actuation delay); "
        "o diverted, x wrong",
        fontsize=9,
    )
    fig.savefig(path, dpi=90)
    plt.close(fig)
