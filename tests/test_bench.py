"""The benchmark's accounting (not its speed: speed is measured, never asserted)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import make_config

from edge_inspect.bench import median_round, pulse_start_errors_ms, run_pipeline
from edge_inspect.classify import OnnxClassifier
from edge_inspect.cli import main
from edge_inspect.events import PartResult
from edge_inspect.outputs.simulated import Actuation
from edge_inspect.procstat import steal_ticks

REQUIRED = ("ceiling_fps", "pipeline_fps", "naive_fps", "e2e_p99_ms", "reject_error_p99_ms", "peak_rss_mb")


def test_pipeline_accounting(model_path: Path, replay_folder: Path) -> None:
    config = make_config(model_path, replay_folder)
    seen: list[PartResult] = []
    figures = run_pipeline(config, OnnxClassifier(model_path, warmup_runs=0), 200.0, 1.5, 0.3, seen.append)
    assert figures["all_parts_counted_once"]
    assert figures["parts"] == figures["decided"] + figures["failsafe"]
    assert figures["decided"] > 0 and figures["rejects"] > 0
    ids = [r.part_id for r in seen]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert all(r.latency_ms is None or r.latency_ms >= 0 for r in seen)
    assert all(r.fired_ts_s is None or r.fired_ts_s >= r.scheduled_fire_ts_s for r in seen)
    for key in ("e2e_latency_ms", "reject_error_ms"):
        summary = figures[key]
        assert 0 <= summary["p50"] <= summary["p99"] <= summary["max"]
    # one pulse may cover every measured reject (a loaded machine fail-safes a run of parts): then none
    assert figures["pulses"] <= figures["rejects"]
    if figures["pulses"]:
        starts = figures["pulse_start_error_ms"]
        assert 0 <= starts["p50"] <= starts["p99"] <= starts["max"]


def test_the_writer_processs_cpu_and_memory_are_reported_apart(
    model_path: Path, replay_folder: Path, tmp_path: Path
) -> None:
    """With the log in its own process the inspection process's CPU no longer includes it: say it apart."""
    config = make_config(
        model_path, replay_folder, defect_log={"enabled": True, "data_dir": str(tmp_path / "log"), "mode": "process"}
    )
    figures = run_pipeline(config, OnnxClassifier(model_path, warmup_runs=0), 100.0, 1.0, 0.3)
    assert figures["defect_log_cpu_percent"] is not None and figures["defect_log_cpu_percent"] >= 0
    assert figures["defect_log_rss_mb"] is not None and figures["defect_log_rss_mb"] > 1
    thread = config.model_copy(update={"defect_log": config.defect_log.model_copy(update={"mode": "thread"})})
    figures = run_pipeline(thread, OnnxClassifier(model_path, warmup_runs=0), 100.0, 1.0, 0.3)
    assert figures["defect_log_cpu_percent"] is None and figures["defect_log_rss_mb"] is None


def test_a_pulse_start_is_timed_against_the_first_part_it_serves() -> None:
    """Merged parts report their due moment (error 0); the rising edge is what the scheduler had to time."""
    pulses = [Actuation(9.99, 9.9999), Actuation(10.0004, 10.0154), Actuation(10.05, 10.06), Actuation(10.1002, None)]
    fires = [  # (due, fired)
        (9.9995, 9.9995),  # merged into a pulse begun in the warm-up for a part not measured: no figure
        (10.0, 10.00041),  # started the second pulse, 0.4 ms late
        (10.002, 10.002), (10.01, 10.01),  # merged into it
        # the third pulse served no part of the run
        (10.1, 10.10021),  # started the last, still on at the end of the run
        (10.105, 10.105),
    ]
    errors = pulse_start_errors_ms(pulses, fires)
    assert errors == [pytest.approx(0.4), pytest.approx(0.2)]


def test_the_median_round_is_the_middle_ratio_and_the_lower_middle_of_an_even_count() -> None:
    rounds = [{"pipeline_vs_ceiling": v, "n": i} for i, v in enumerate((0.61, 0.40, 0.55))]
    assert median_round(rounds)["n"] == 2
    assert median_round([*rounds, {"pipeline_vs_ceiling": 0.9, "n": 3}])["n"] == 2
    assert median_round(rounds[:1])["n"] == 0


def test_bench_refuses_zero_rounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--rounds", "0"]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_command_writes_the_json(tmp_path: Path, model_path: Path, replay_folder: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[source]\ntype = "replay"\npath = "{replay_folder}"\n[model]\npath = "{model_path}"\n'
        "[line]\ntravel_delay_ms = 100\n",
        encoding="utf-8",
    )
    out = tmp_path / "bench.json"
    assert main(["bench", "--config", str(config), "--seconds", "1", "--rounds", "2", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    rounds = figures["throughput_rounds"]
    assert figures["rounds"] == 2 and len(rounds) == 2
    assert all(r["ceiling_fps"] > 0 and r["naive_fps"] > 0 and r["pipeline_fps"] > 0 for r in rounds)
    for phase in ("ceiling", "naive", "pipeline"):  # what the host stole meanwhile: 0 on bare metal, never missing
        assert all(0.0 <= r[f"{phase}_steal_cores"] <= os.cpu_count() for r in rounds), phase
    ratios = sorted(r["pipeline_fps"] / r["ceiling_fps"] for r in rounds)
    assert figures["pipeline_vs_ceiling"] == pytest.approx(sum(ratios) / 2)  # the median of two
    for key in REQUIRED:
        assert isinstance(figures[key], float) and figures[key] >= 0, key
    assert figures["pipeline_saturated"]["all_parts_counted_once"]
    assert figures["pipeline_80pct"]["all_parts_counted_once"]
    for phase in ("pipeline_saturated", "pipeline_80pct"):
        assert figures[phase]["viewer"].endswith("/stream.mjpg"), "one client watches the live stream"
        assert "defect_log" in figures[phase]["dropped"], "defect logging is on"



def test_steal_comes_from_the_cpu_lines_eighth_field() -> None:
    assert steal_ticks("cpu  100 0 50 900 0 0 0 37 0 0") == 37
    assert steal_ticks("cpu  100 0 50 900 0 0 0") == 0  # an old kernel's line without steal: none stolen
    with pytest.raises(ValueError, match="not a /proc/stat cpu line"):
        steal_ticks("intr 1 2 3")
