"""``--sweep-speed``: raise a constant belt speed until the first wrong divert; the answer before install.

Each step is a full real-time run at one speed. Beside the highest safe speed it reports the bounds
the measured figures predict, so the result can be checked against the physics:

- latency bound: the verdict must come within the travel time: v < distance / (latency p99 + 2 ms);
- window bound: the hit lands (actuation delay + firing lateness) after the due instant, which at
  speed v is v x that time downstream; it must stay inside half the window: v < (window / 2) / time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..classify import load_classifier
from ..config.models import AppConfig
from .profile import named_profile
from .runner import SimOptions, run_simulation, sim_config


def _bounds(options: SimOptions, figures: dict[str, Any]) -> dict[str, float | None]:
    p99 = figures["latency_ms"]["p99"]
    late = figures["reject_late_ms"]["max"] or 0.0
    lag_ms = options.actuation_delay_ms + late
    return {
        "latency_bound_mm_s": None if p99 is None else options.camera_to_diverter_mm / ((p99 + 2.0) / 1000.0),
        "window_bound_mm_s": None if lag_ms <= 0 else (options.window_mm / 2.0) / (lag_ms / 1000.0),
    }


def sweep_speed(
    base: AppConfig,
    options: SimOptions,
    max_speed_mm_s: float,
    step_factor: float = 1.25,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Constant-speed runs at ``options.speed_mm_s`` x ``step_factor``**k until one diverts wrongly."""
    if step_factor <= 1.0:
        raise ValueError(f"the sweep step factor must exceed 1, got {step_factor}")
    first = replace(options, profile="constant")
    classifier = load_classifier(sim_config(base, first, named_profile("constant", first.speed_mm_s)).model)
    steps: list[dict[str, Any]] = []
    highest: float | None = None
    speed = first.speed_mm_s
    while speed <= max_speed_mm_s:
        step_options = replace(first, speed_mm_s=speed)
        figures = run_simulation(base, step_options, classifier).figures
        is_safe = figures["wrong_diverts"] == 0 and figures["parts_without_trigger"] == 0
        step = {
            "speed_mm_s": speed,
            "safe": is_safe,
            "travel_ms": options.camera_to_diverter_mm / speed * 1000.0,
            **{k: figures[k] for k in ("wrong_diverts", "defects", "defects_diverted", "good_diverted")},
            "failsafe_reasons": figures["failsafe_reasons"],
            "latency_ms": figures["latency_ms"],
            "reject_late_ms": figures["reject_late_ms"],
            "margin_ms": figures["margin_ms"],
            **_bounds(step_options, figures),
        }
        steps.append(step)
        if progress is not None:
            progress(
                f"  {speed:8.0f} mm/s: {'safe' if is_safe else 'WRONG'} "
                f"(wrong diverts {figures['wrong_diverts']}, min margin "
                f"{_fmt(figures['margin_ms']['min'])} ms, latency p99 {_fmt(figures['latency_ms']['p99'])} ms)"
            )
        if not is_safe:
            break
        highest = speed
        speed *= step_factor
    return {
        "tracking": options.tracking,
        "highest_safe_speed_mm_s": highest,
        "first_unsafe": None if not steps or steps[-1]["safe"] else steps[-1],
        "steps": steps,
        "options": {k: v for k, v in vars(first).items() if k != "speed_mm_s"},
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def sweep_table(sweep: dict[str, Any]) -> str:
    header = f"{'speed mm/s':>10}  {'travel ms':>9}  {'p99 ms':>7}  {'margin min':>10}  {'wrong':>5}"
    lines = [header + "  bounds (latency, window)"]
    for s in sweep["steps"]:
        lines.append(
            f"{s['speed_mm_s']:10.0f}  {s['travel_ms']:9.1f}  {_fmt(s['latency_ms']['p99']):>7}  "
            f"{_fmt(s['margin_ms']['min']):>10}  {s['wrong_diverts']:5d}  "
            f"{_fmt(s['latency_bound_mm_s'])}, {_fmt(s['window_bound_mm_s'])} mm/s"
        )
    highest = sweep["highest_safe_speed_mm_s"]
    verdict = "none (the first speed already diverted wrongly)" if highest is None else f"{highest:.0f} mm/s"
    lines.append(f"highest safe speed: {verdict}")
    return "\n".join(lines)
