"""The simulator's JSON report: the figures and one row per simulated part."""

from __future__ import annotations

from typing import Any

from .runner import SimRun


def run_report(run: SimRun) -> dict[str, Any]:
    """Figures, then every part: ground truth, the appliance's call, its window and what happened."""
    parts = [
        {
            "index": o.part.index,
            "defect_kind": o.part.defect_kind,
            "trigger_s": o.trigger_s,
            "verdict": o.verdict,
            "failsafe_reason": o.failsafe_reason,
            "rejected": o.is_rejected,
            "fired_s": o.fired_s,
            "window_enter_s": o.window.enter_s,
            "window_exit_s": o.window.exit_s,
            "diverted": o.is_diverted,
            "margin_ms": o.margin_ms,
            "wrong_frame": o.is_wrong_frame,
        }
        for o in run.outcomes
    ]
    return {**run.figures, "diverter": vars(run.diverter), "parts_detail": parts}
