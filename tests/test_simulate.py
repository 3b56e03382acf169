"""The line simulator: pure profile and judge tables, then the simulator as the oracle of reject tracking."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_inspect.config import load_config
from edge_inspect.errors import ConfigError
from edge_inspect.linesim import SimOptions, run_simulation
from edge_inspect.linesim.judge import Diverter, PartOutcome, Window, margin_ms, overlaps, part_window, summarise
from edge_inspect.linesim.layout import SimPart, lay_out_parts, render_pool
from edge_inspect.linesim.profile import SpeedProfile, constant, from_csv, named_profile, stop_go

# --------------------------------------------------------------------------------------------------
# Speed profiles (pure)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t_s", "speed", "position"),
    [
        (0.0, 400.0, 0.0),
        (1.0, 400.0, 400.0),  # go 1.2 s at 400
        (1.25, 200.0, 480.0 + 15.0),  # braking: half way down after 0.05 s: 0.05 * (400 + 200) / 2
        (1.3, 0.0, 500.0),  # stopped: 480 + 0.1 * 200
        (2.0, 0.0, 500.0),
        (2.2, 400.0, 520.0),  # restarted: 0.1 s ramp adds 20
        (2.2 + 1.0, 400.0, 920.0),  # the next cycle repeats the first
    ],
)
def test_stop_go_speed_and_exact_position(t_s: float, speed: float, position: float) -> None:
    profile = stop_go(400.0, go_s=1.2, stop_s=0.8, ramp_s=0.1)
    assert profile.speed_at(t_s) == pytest.approx(speed)
    assert profile.position_at(t_s) == pytest.approx(position)


def test_time_at_position_inverts_position_through_a_stop() -> None:
    profile = stop_go(400.0, go_s=1.2, stop_s=0.8, ramp_s=0.1)
    assert profile.time_at_position(400.0) == pytest.approx(1.0)
    # 500 mm is reached as the belt comes to rest at 1.3 s, not when it leaves again
    assert profile.time_at_position(500.0) == pytest.approx(1.3, abs=1e-6)
    assert profile.time_at_position(520.0) == pytest.approx(2.2, abs=1e-6)
    never = SpeedProfile(((0.0, 100.0), (1.0, 0.0)))
    assert never.time_at_position(51.0, limit_s=100.0) is None


def test_a_csv_profile_holds_its_last_speed(tmp_path: Path) -> None:
    path = tmp_path / "belt.csv"
    path.write_text("time_s,speed_mm_s\n0,0\n1,100\n2,100\n", encoding="utf-8")
    profile = from_csv(path)
    assert profile.position_at(1.0) == pytest.approx(50.0)
    assert profile.position_at(3.0) == pytest.approx(250.0)
    assert named_profile(str(path), 1.0).position_at(2.0) == pytest.approx(150.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,100\n1,-5\n", "must not be negative"),
        ("0,100\n1,100\n0.5,100\n", "times must rise"),
        ("0,100\n", "at least two points"),
        ("0,100\nfast,100\n", "row 2"),
    ],
)
def test_bad_csv_profiles_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        from_csv(path)


def test_an_unknown_profile_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="constant, ramp, stop-go"):
        named_profile("zigzag", 100.0)


# --------------------------------------------------------------------------------------------------
# The judge (pure)
# --------------------------------------------------------------------------------------------------

DIVERTER = Diverter(position_mm=300.0, window_mm=40.0, actuation_delay_ms=5.0)


def _part(index: int = 0, offset_mm: float = 100.0, defect: str | None = "scratch") -> SimPart:
    return SimPart(index, offset_mm, 50.0, defect, 0)


def test_the_window_is_when_the_centre_is_within_reach() -> None:
    window = part_window(_part(offset_mm=100.0), constant(400.0), DIVERTER, limit_s=10.0)
    # centre reaches 280 mm (300 - 20) after 380 mm of belt, leaves past 320 after 420 mm
    assert window.enter_s == pytest.approx(0.95) and window.exit_s == pytest.approx(1.05)


@pytest.mark.parametrize(
    ("interval", "diverted"),
    [((0.90, 0.91), False), ((0.90, 0.95), True), ((1.00, 1.01), True), ((1.05, 1.2), True), ((1.06, 1.2), False)],
)
def test_a_part_is_diverted_if_the_diverter_acts_while_it_is_inside(
    interval: tuple[float, float], diverted: bool
) -> None:
    assert overlaps(interval, Window(0.95, 1.05), end_s=10.0) is diverted


@pytest.mark.parametrize(("hit_s", "margin"), [(1.0, 50.0), (0.96, 10.0), (1.04, 10.0), (0.9, -50.0)])
def test_the_margin_is_the_distance_to_the_nearer_edge(hit_s: float, margin: float) -> None:
    assert margin_ms(hit_s, Window(0.95, 1.05), end_s=10.0) == pytest.approx(margin)


def _outcome(defect: bool, verdict: str | None, rejected: bool, diverted: bool) -> PartOutcome:
    return PartOutcome(
        _part(defect="pit" if defect else None), 0.0, verdict, None, rejected, None, Window(1.0, 1.1), diverted, None
    )


def test_the_summary_counts_wrong_diverts_by_cause() -> None:
    figures = summarise(
        [
            _outcome(True, "defect", True, True),  # right
            _outcome(True, "defect", True, False),  # the pulse missed: escape
            _outcome(True, "good", False, False),  # model escape
            _outcome(False, "good", False, True),  # collateral: hit by a neighbour's pulse
            _outcome(False, "failsafe", True, True),  # fail-safe reject of a good part
            _outcome(False, "good", False, False),  # right
            _outcome(False, None, False, False),  # never triggered
        ]
    )
    assert figures["defects"] == 3 and figures["defects_diverted"] == 1
    assert figures["good"] == 4 and figures["good_diverted"] == 2 and figures["good_collateral"] == 1
    assert figures["failsafe_diverted"] == 1 and figures["rejects_missed"] == 1
    assert figures["model_escapes"] == 1 and figures["parts_without_trigger"] == 1
    assert figures["wrong_diverts"] == 2 + 2


def test_parts_never_overlap() -> None:
    pool = render_pool(0, 2)
    parts = lay_out_parts(50, 50.0, 80.0, 15.0, 0.3, 1, pool)
    gaps = [b.offset_mm - a.offset_mm for a, b in itertools.pairwise(parts)]
    assert min(gaps) >= 50.0 and sum(p.is_defect for p in parts) == 15
    with pytest.raises(ConfigError, match="overlap"):
        lay_out_parts(5, 50.0, 60.0, 10.0, 0.3, 1, pool)


# --------------------------------------------------------------------------------------------------
# The simulator as the oracle: real Inspector, real threads, real time
# --------------------------------------------------------------------------------------------------

# Short runs on a fast belt; a 120 mm window (150 ms at 800 mm/s) so a loaded machine's firing jitter
# cannot decide these tests: they are about tracking, not latency.
ORACLE = SimOptions(
    parts=24,
    speed_mm_s=800.0,
    pitch_mm=150.0,
    jitter_mm=10.0,
    defect_fraction=0.5,
    window_mm=120.0,
    camera_to_diverter_mm=300.0,
    images_per_class=6,
)


def _run(profile: str, tracking: str, **changes: float) -> dict[str, object]:
    from dataclasses import replace

    return run_simulation(load_config(None), replace(ORACLE, profile=profile, tracking=tracking, **changes)).figures


@pytest.mark.slow
@pytest.mark.parametrize("tracking", ["time", "encoder"])
def test_at_constant_speed_both_trackings_divert_every_defect_and_no_good_part(tracking: str) -> None:
    # At 800 mm/s a hit lands ~68 ms from either edge of the window, and a thread-mode scheduler woken 70 ms
    # late (three suites and stress-ng on 2 cores) missed one defect: that is latency, not tracking. At
    # 400 mm/s the margin is ~140 ms; a tracking error (a part's count or due time wrong) still misses.
    figures = _run("constant", tracking, speed_mm_s=400.0)
    assert figures["model_escapes"] == 0 and figures["model_false_rejects"] == 0, figures
    assert figures["parts_without_trigger"] == 0, figures
    assert figures["defects_diverted"] == figures["defects"] == 12, figures
    assert figures["good_diverted"] == 0 and figures["wrong_diverts"] == 0, figures
    assert figures["tracking"] == tracking


@pytest.mark.slow
def test_under_stop_go_time_tracking_fails_and_encoder_tracking_does_not() -> None:
    by_time = _run("stop-go", "time")
    assert by_time["wrong_diverts"] > 0 and by_time["rejects_missed"] > 0, by_time
    assert by_time["margin_ms"]["min"] < 0, by_time  # type: ignore[index]
    by_encoder = _run("stop-go", "encoder")
    assert by_encoder["defects_diverted"] == by_encoder["defects"], by_encoder
    assert by_encoder["good_diverted"] == 0 and by_encoder["wrong_diverts"] == 0, by_encoder
    assert by_encoder["failsafe_reasons"] == {}, by_encoder
    assert by_encoder["margin_ms"]["min"] > 0, by_encoder  # type: ignore[index]


@pytest.mark.slow
def test_the_command_writes_report_and_plot(tmp_path: Path) -> None:
    report, plot = tmp_path / "sim.json", tmp_path / "sim.png"
    command = [
        sys.executable,
        "-m",
        "edge_inspect.cli",
        "simulate",
        "--parts",
        "8",
        "--speed-mm-s",
        "1000",
        "--pitch-mm",
        "150",
        "--window-mm",
        "120",
        "--json",
        str(report),
        "--plot",
        str(plot),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    figures = json.loads(report.read_text(encoding="utf-8"))
    # the exit code says whether anything was diverted wrongly (whether it was is the oracle tests' job)
    assert done.returncode == (1 if figures["wrong_diverts"] else 0), done.stdout + done.stderr
    assert "WRONG DIVERTS" in done.stdout and "margin in window" in done.stdout
    assert figures["parts"] == 8 and len(figures["parts_detail"]) == 8
    assert figures["defects"] + figures["good"] == 8 and figures["tracking"] == "encoder"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed-profile", "zigzag"], "choose constant, ramp, stop-go"),
        (["--pitch-mm", "40"], "parts would overlap"),
        (["--speed-profile", "missing.csv"], "missing.csv"),
    ],
)
def test_bad_simulator_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_inspect.cli", "simulate", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_the_simulated_line_keeps_the_configs_model_policy_and_encoder_limits(
    model_path: Path, replay_folder: Path
) -> None:
    from conftest import make_config

    from edge_inspect.linesim.runner import sim_config

    base = make_config(
        model_path,
        replay_folder,
        line={
            "travel_delay_ms": None,
            "camera_to_diverter_mm": 250.0,
            "belt_speed_mm_s": 500.0,
            "tracking": "encoder",
            "failsafe_action": "pass",
        },
        encoder={"type": "gpiozero", "pin_a": 5, "pin_b": 6, "pulses_per_mm": 4.0, "counter_bits": 16},
    )
    options = SimOptions(tracking="time", camera_to_diverter_mm=250.0, speed_mm_s=800.0, pulses_per_mm=4.0)
    config = sim_config(base, options, named_profile("ramp", 800.0))
    assert config.model.path == base.model.path and config.line.failsafe_action == "pass"
    assert config.line.tracking == "time" and config.line.travel_delay_s == pytest.approx(250.0 / 800.0)
    assert config.trigger.mode == "triggered" and config.outputs.reject.type == "simulated"
    assert config.encoder is not None and config.encoder.type == "simulated"
    assert config.encoder.counter_bits == 16 and config.encoder.pulses_per_mm == 4.0
    assert not (config.web.enabled or config.mqtt.enabled or config.defect_log.enabled)


def test_a_negative_seed_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_inspect.cli", "simulate", "--seed", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "must not be negative" in done.stderr
