"""The model-time estimate that keeps the model off parts it cannot finish by their deadline."""

from __future__ import annotations

from edge_inspect.inspection.model_time import RECENT_RUNS, ModelTimeEstimate


def test_before_any_run_only_a_part_already_past_its_deadline_would_miss() -> None:
    estimate = ModelTimeEstimate()
    assert estimate.expected_s == 0.0
    assert not estimate.would_miss(now_s=10.0, deadline_ts_s=10.0)
    assert estimate.would_miss(now_s=10.001, deadline_ts_s=10.0)


def test_a_part_with_less_time_left_than_the_model_takes_would_miss() -> None:
    estimate = ModelTimeEstimate()
    for _ in range(5):
        estimate.record(0.035)
    assert estimate.expected_s == 0.035
    assert estimate.would_miss(now_s=1.0, deadline_ts_s=1.020)  # 20 ms left, the model takes 35
    assert not estimate.would_miss(now_s=1.0, deadline_ts_s=1.050)


def test_one_slow_run_does_not_move_the_estimate_but_a_slower_model_does() -> None:
    estimate = ModelTimeEstimate()
    for _ in range(RECENT_RUNS - 1):
        estimate.record(0.005)
    estimate.record(0.400)  # a garbage-collector pause, a preempted core
    assert estimate.expected_s == 0.005
    for _ in range(RECENT_RUNS // 2 + 1):
        estimate.record(0.050)  # the model really got slower (another load on the box)
    assert estimate.expected_s == 0.050


def test_the_estimate_follows_the_recent_runs_only() -> None:
    estimate = ModelTimeEstimate(runs=3)
    for duration_s in (0.1, 0.1, 0.1, 0.002, 0.002):
        estimate.record(duration_s)
    assert estimate.expected_s == 0.002
    estimate.record(-1.0)  # a clock that stepped back counts as instant, never as time gained
    assert estimate.expected_s == 0.002
    assert not estimate.would_miss(now_s=0.0, deadline_ts_s=0.002)
