"""Pure judgement of a simulated run: which parts the diverter actually pushed off, and with what margin.

The diverter acts ``actuation_delay_ms`` after the reject output changes (on and off alike). A part is
inside the diverter's window while its centre is within ``window_mm / 2`` of the diverter; it is
diverted if the diverter is acting at any moment while it is inside. Times are seconds from the start
of the belt (``t = monotonic - t0``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .layout import SimPart
from .profile import SpeedProfile


@dataclass(frozen=True)
class Diverter:
    """Where the diverter acts, how wide its reach is, and how late it follows the output."""

    position_mm: float
    window_mm: float
    actuation_delay_ms: float


@dataclass(frozen=True)
class Window:
    """When a part's centre is within the diverter's reach (exit None: it never left within the run)."""

    enter_s: float | None
    exit_s: float | None


@dataclass(frozen=True)
class PartOutcome:
    """What happened to one simulated part: the appliance's call and what the diverter did."""

    part: SimPart
    trigger_s: float | None
    verdict: str | None  # good, defect, failsafe; None: the appliance never saw the part
    failsafe_reason: str | None
    is_rejected: bool
    fired_s: float | None
    window: Window
    is_diverted: bool
    margin_ms: float | None
    is_wrong_frame: bool = False
    """The appliance judged another frame than this part's exposure (its trigger was paired late)."""


def part_window(part: SimPart, profile: SpeedProfile, diverter: Diverter, limit_s: float) -> Window:
    """When the part's centre enters and leaves the diverter's window."""
    near = part.offset_mm + diverter.position_mm - diverter.window_mm / 2.0
    far = part.offset_mm + diverter.position_mm + diverter.window_mm / 2.0
    enter = profile.time_at_position(near, limit_s=limit_s)
    exit_ = None if enter is None else profile.time_at_position(far, after_s=enter, limit_s=limit_s)
    return Window(enter, exit_)


def acting_intervals(
    actuations: Sequence[tuple[float, float | None]], delay_s: float, end_s: float
) -> list[tuple[float, float]]:
    """The diverter's acting intervals from the reject output's (on, off) times (off None: still on)."""
    return [(on + delay_s, (off if off is not None else end_s) + delay_s) for on, off in actuations]


def overlaps(interval: tuple[float, float], window: Window, end_s: float) -> bool:
    if window.enter_s is None:
        return False
    exit_s = window.exit_s if window.exit_s is not None else end_s
    return interval[0] <= exit_s and interval[1] >= window.enter_s


def margin_ms(hit_s: float, window: Window, end_s: float) -> float | None:
    """How much earlier or later the hit could have come and still landed in the window (negative: missed)."""
    if window.enter_s is None:
        return None
    exit_s = window.exit_s if window.exit_s is not None else end_s
    return min(hit_s - window.enter_s, exit_s - hit_s) * 1000.0


def summarise(outcomes: Sequence[PartOutcome]) -> dict[str, object]:
    """The report's figures from the per-part outcomes."""
    defects = [o for o in outcomes if o.part.is_defect]
    good = [o for o in outcomes if not o.part.is_defect]
    margins = sorted(o.margin_ms for o in outcomes if o.margin_ms is not None)
    defects_diverted = sum(o.is_diverted for o in defects)
    good_diverted = sum(o.is_diverted for o in good)
    figures: dict[str, object] = {
        "parts": len(outcomes),
        "defects": len(defects),
        "defects_diverted": defects_diverted,
        "good": len(good),
        "good_diverted": good_diverted,
        "good_collateral": sum(o.is_diverted and not o.is_rejected for o in good),
        "failsafe_diverted": sum(o.is_diverted and o.verdict == "failsafe" for o in outcomes),
        "parts_without_trigger": sum(o.verdict is None for o in outcomes),
        "parts_wrong_frame": sum(o.is_wrong_frame for o in outcomes),
        "rejects_missed": sum(o.is_rejected and not o.is_diverted for o in outcomes),
        "model_escapes": sum(o.verdict == "good" for o in defects),
        "model_false_rejects": sum(o.verdict == "defect" for o in good),
        "wrong_diverts": (len(defects) - defects_diverted) + good_diverted,
        "margin_ms": {
            "min": margins[0] if margins else None,
            "p50": statistics.median(margins) if margins else None,
            "max": margins[-1] if margins else None,
        },
    }
    return figures
