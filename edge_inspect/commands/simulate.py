"""``edge-inspect simulate``: try the line before it exists, in real time, around the real Inspector."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import load_config
from ..report import write_json_atomically


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _not_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate", help="run a simulated line (belt, photo-eye, encoder, diverter) around the real inspector"
    )
    parser.add_argument("--config", type=Path, help="appliance config (TOML) for model and policy; default: demo")
    parser.add_argument("--parts", type=_count, default=60, help="parts on the belt (default 60)")
    parser.add_argument(
        "--speed-profile", default="constant", help="constant, ramp, stop-go, or a CSV of time_s,speed_mm_s"
    )
    parser.add_argument(
        "--speed-mm-s", type=_positive, default=600.0, help="named profiles: top speed; time tracking assumes it (600)"
    )
    parser.add_argument("--tracking", choices=("encoder", "time"), default="encoder", help="due by belt or clock")
    parser.add_argument("--part-length-mm", type=_positive, default=50.0, help="part length along the belt (50)")
    parser.add_argument("--pitch-mm", type=_positive, default=120.0, help="leading edge to leading edge (120)")
    parser.add_argument("--jitter-mm", type=_not_negative, default=10.0, help="pitch jitter, +- mm (10)")
    parser.add_argument("--defect-fraction", type=_fraction, default=0.25, help="share of defective parts (0.25)")
    parser.add_argument("--seed", type=_seed, default=0, help="images, defects and jitter (same seed, same line)")
    parser.add_argument(
        "--camera-to-diverter-mm", type=_positive, help="tracking distance the appliance uses (config's, else 300)"
    )
    parser.add_argument("--diverter-mm", type=_positive, help="where the diverter really acts (default: the same)")
    parser.add_argument("--window-mm", type=_positive, default=60.0, help="diverter reach along the belt (60)")
    parser.add_argument("--actuation-delay-ms", type=_not_negative, default=5.0, help="output to action (5)")
    parser.add_argument("--pulse-width-ms", type=_positive, help="reject pulse (default: the config's)")
    parser.add_argument("--pulses-per-mm", type=_positive, help="encoder resolution (config's [encoder], else 2)")
    parser.add_argument("--latency-budget-ms", type=_positive, help="verdict deadline (default: travel - 2 ms)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report (and every part) as JSON")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="timeline plot (needs the 'plot' extra)")
    parser.add_argument("--plot-seconds", type=_positive, help="plot only the first S seconds (default: all)")
    parser.add_argument("--sweep-speed", action="store_true", help="raise a constant speed to the first wrong divert")
    parser.add_argument("--sweep-max-mm-s", type=_positive, default=20000.0, help="sweep stops here (20000)")
    parser.add_argument("--sweep-step", type=_positive, default=1.25, help="speed factor per sweep step (1.25)")
    parser.set_defaults(func=run)


def options_from(args: argparse.Namespace, config: Any) -> Any:
    from ..linesim import SimOptions

    encoder = config.encoder
    distance = args.camera_to_diverter_mm or config.line.camera_to_diverter_mm or 300.0
    return SimOptions(
        parts=args.parts,
        speed_mm_s=args.speed_mm_s,
        profile=args.speed_profile,
        tracking=args.tracking,
        part_length_mm=args.part_length_mm,
        pitch_mm=args.pitch_mm,
        jitter_mm=args.jitter_mm,
        defect_fraction=args.defect_fraction,
        seed=args.seed,
        camera_to_diverter_mm=distance,
        diverter_mm=args.diverter_mm,
        window_mm=args.window_mm,
        actuation_delay_ms=args.actuation_delay_ms,
        pulse_width_ms=args.pulse_width_ms,
        pulses_per_mm=args.pulses_per_mm or (encoder.pulses_per_mm if encoder is not None else 2.0),
        latency_budget_ms=args.latency_budget_ms,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(figures: dict[str, Any]) -> str:
    """The report an integrator reads: what left the line, and how close the timing came."""
    margin, latency = figures["margin_ms"], figures["latency_ms"]
    rows = [
        ("tracking", figures["tracking"]),
        ("speed profile", f"{figures['speed_profile']} (top {figures['profile_top_speed_mm_s']:.0f} mm/s)"),
        ("parts", figures["parts"]),
        ("defects", figures["defects"]),
        ("defects diverted", figures["defects_diverted"]),
        ("good", figures["good"]),
        ("good diverted", f"{figures['good_diverted']} (collateral {figures['good_collateral']})"),
        ("fail-safe diverted", figures["failsafe_diverted"]),
        ("rejects that missed", figures["rejects_missed"]),
        ("parts without trigger", figures["parts_without_trigger"]),
        ("parts judged on another frame", figures["parts_wrong_frame"]),
        ("model escapes / false rejects", f"{figures['model_escapes']} / {figures['model_false_rejects']}"),
        ("margin in window ms min/p50/max", f"{_ms(margin['min'])} / {_ms(margin['p50'])} / {_ms(margin['max'])}"),
        ("latency ms p50/p99", f"{_ms(latency['p50'])} / {_ms(latency['p99'])}"),
        ("fail-safe reasons", ", ".join(f"{k} {v}" for k, v in figures["failsafe_reasons"].items()) or "none"),
        ("WRONG DIVERTS", figures["wrong_diverts"]),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run(args: argparse.Namespace) -> int:
    from ..linesim import run_simulation
    from ..linesim.sweep import sweep_speed, sweep_table

    config = load_config(args.config)
    options = options_from(args, config)
    if args.plot is not None:
        from ..linesim.plot import require_matplotlib

        require_matplotlib()  # fail before a long run, not after it
    if args.sweep_speed:
        sweep = sweep_speed(config, options, args.sweep_max_mm_s, args.sweep_step, progress=print)
        print(sweep_table(sweep))
        if args.json:
            write_json_atomically(args.json, sweep)
        return 0 if sweep["highest_safe_speed_mm_s"] is not None else 1
    print(
        f"simulating {options.parts} parts, {options.profile} at {options.speed_mm_s:.0f} mm/s, "
        f"{options.tracking} tracking (real time)...",
        flush=True,
    )
    result = run_simulation(config, options, progress=lambda line: print(line, flush=True))
    print(table(result.figures))
    if args.json:
        from ..linesim.report import run_report

        write_json_atomically(args.json, run_report(result))
        print(f"report written to {args.json}")
    if args.plot:
        from ..linesim.plot import plot_run

        plot_run(result, args.plot, max_seconds=args.plot_seconds)
        print(f"plot written to {args.plot}")
    return 0 if result.figures["wrong_diverts"] == 0 else 1
