"""Counters a plant needs to see: camera frame drops, unmatched frames, rejects that never fired, and
the run state published together with its reason."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import build_inspector, make_config, thread_mode
from prometheus_client import CollectorRegistry, generate_latest

from edge_inspect.errors import OutputError
from edge_inspect.events import FailsafeReason, RunState
from edge_inspect.integrations.messages import stats_message
from edge_inspect.integrations.metrics import InspectorCollector
from edge_inspect.outputs import SimulatedOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.report import build_report, collect
from edge_inspect.sources import Frame, FrameSource, create_source
from edge_inspect.tracking import TriggerMatcher
from edge_inspect.triggers import SoftwareTrigger


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class DroppingSource(FrameSource):
    """A replay source standing in for a camera that loses one frame in every four (its ``frames_dropped``)."""

    name = "dropping"

    def __init__(self, inner: FrameSource) -> None:
        self.inner = inner
        self.frames_dropped = 0
        self._reads = 0

    def open(self) -> None:
        self.inner.open()

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        self._reads += 1
        if self._reads % 4 == 0:
            self.frames_dropped += 1
        return self.inner.read(timeout_s)

    def close(self) -> None:
        self.inner.close()


def test_camera_frame_drops_reach_status_metrics_mqtt_and_report(model_path: Path, replay_folder: Path) -> None:
    config = make_config(model_path, replay_folder)
    source = DroppingSource(create_source(config.source))
    inspector = build_inspector(config, source=source)
    subscription = inspector.subscribe("test")
    inspector.start(max_parts=12)
    try:
        assert inspector.wait_until_done(30)
    finally:
        inspector.stop()
    dropped = source.frames_dropped
    assert dropped >= 2
    assert inspector.status().dropped["camera_frames"] == dropped
    message = stats_message(inspector.status(), "line-1", time.time(), {})
    assert message["dropped"]["camera_frames"] == dropped
    registry = CollectorRegistry()
    registry.register(InspectorCollector(inspector))
    exposition = generate_latest(registry).decode()
    assert f'edge_inspect_dropped_total{{consumer="camera_frames"}} {float(dropped)}' in exposition
    assert build_report(inspector, collect(subscription))["dropped"]["camera_frames"] == dropped


def test_replay_reports_its_dropped_frames_under_the_same_name(model_path: Path, replay_folder: Path) -> None:
    config = make_config(model_path, replay_folder, source={"frames_per_second": 1000.0})
    source = create_source(config.source)
    source.open()
    try:
        assert source.read(1.0) is not None
        time.sleep(0.05)  # a reader that fell behind by tens of frame periods, on purpose
        frame = source.read(1.0)
        assert frame is not None and frame.sequence > 1
        assert source.frames_dropped == frame.sequence - 1
    finally:
        source.close()


def _frame(sequence: int, ts_s: float) -> Frame:
    return Frame(sequence, ts_s, np.zeros((2, 2, 3), np.uint8))


def test_the_trigger_matcher_counts_frames_no_trigger_used() -> None:
    matcher = TriggerMatcher(max_offset_s=0.010, history_frames=4)
    matcher.add_trigger(0.0205)
    matches = []
    for sequence in range(10):
        matches += matcher.add_frame(_frame(sequence, sequence * 0.010))
    assert [m.frame.sequence for m in matches if m.frame is not None] == [2]
    # Frames 0..5 have left the four-frame history; frame 2 served the edge, the other five served nothing.
    assert matcher.frames_unmatched == 5


def test_triggered_mode_counts_unmatched_frames_in_status_and_api(model_path: Path, replay_folder: Path) -> None:
    config = make_config(model_path, replay_folder, trigger={"mode": "triggered", "input": {"type": "software"}})
    trigger = SoftwareTrigger()
    inspector = build_inspector(config, trigger=trigger)
    inspector.start()
    try:
        wait_for(lambda: inspector.latest_frame() is not None)
        trigger.fire()
        wait_for(lambda: inspector.status().inspected == 1)
        wait_for(lambda: inspector.status().unmatched_frames >= 20)  # the photo-eye fired once, the camera ran on
    finally:
        inspector.stop()
    status = inspector.status()
    assert status.inspected == 1 and status.missed_triggers == 0
    message = stats_message(status, "line-1", time.time(), {})
    assert message["unmatched_frames"] == status.unmatched_frames


def test_free_run_counts_no_unmatched_frames(model_path: Path, replay_folder: Path) -> None:
    inspector = build_inspector(make_config(model_path, replay_folder))
    inspector.start(max_parts=16)
    try:
        assert inspector.wait_until_done(30)
    finally:
        inspector.stop()
    assert inspector.status().unmatched_frames == 0


class FailingReject(SimulatedOutput):
    def set(self, active: bool) -> None:
        if active:
            raise OutputError("write failed on GPIO17")
        super().set(active)


def test_a_reject_whose_write_failed_is_counted_as_not_actuated(model_path: Path, replay_folder: Path) -> None:
    config = thread_mode(make_config(model_path, replay_folder))  # the failing output lives in this process
    inspector = build_inspector(config, reject=FailingReject(name="reject"))
    subscription = inspector.subscribe("test")
    inspector.start()
    try:
        wait_for(lambda: inspector.state is RunState.FAULT)
        assert inspector.wait_until_done(30)
    finally:
        inspector.stop()
    results = collect(subscription)
    should_fire = [r for r in results if r.is_rejected]
    assert should_fire and all(r.fired_ts_s is None for r in should_fire)
    status = inspector.status()
    assert status.rejected == 0
    assert status.reject_not_actuated == len(should_fire)
    registry = CollectorRegistry()
    registry.register(InspectorCollector(inspector))
    exposition = generate_latest(registry).decode()
    assert f"edge_inspect_reject_not_actuated_total {float(len(should_fire))}" in exposition
    report = build_report(inspector, results)
    assert report["reject_not_actuated"] == len(should_fire) and report["rejected"] == 0


def test_parts_drained_at_stop_are_rejects_that_never_fired(model_path: Path, replay_folder: Path) -> None:
    config = make_config(model_path, replay_folder, line={"travel_delay_ms": 30_000.0, "latency_budget_ms": 500.0})
    inspector = build_inspector(config)
    subscription = inspector.subscribe("test")
    inspector.start()
    wait_for(lambda: inspector.parts_started >= 3)
    inspector.stop(drain_timeout_s=0.0)
    results = collect(subscription)
    stopped = [r for r in results if r.failsafe_reason is FailsafeReason.STOPPED]
    assert len(stopped) == len(results) >= 3
    status = inspector.status()
    assert status.reject_not_actuated == len(stopped)
    assert status.rejected == 0
    reject = inspector.reject
    assert isinstance(reject, SimulatedOutput) and reject.actuations() == []


@pytest.fixture
def fast_switching() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to expose torn reads
    yield
    sys.setswitchinterval(interval)


def test_state_and_fault_reason_are_never_seen_apart(
    model_path: Path, replay_folder: Path, fast_switching: None
) -> None:
    inspector: Inspector = build_inspector(make_config(model_path, replay_folder))
    inspector.start()
    wait_for(lambda: inspector.state is RunState.RUNNING)
    torn: list[tuple[RunState, str | None]] = []
    is_done = threading.Event()

    def reader() -> None:
        while not is_done.is_set():
            status = inspector.status()
            if (status.state is RunState.FAULT) != (status.fault_reason is not None):
                torn.append((status.state, status.fault_reason))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(3000):  # the fault a driver raises and the recovery the loop sees, as fast as possible
            inspector._raise_fault("test", "test: flapping input")
            inspector._clear_fault("test")
    finally:
        is_done.set()
        thread.join()
        inspector.stop()
    assert torn == []
