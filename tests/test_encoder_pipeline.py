"""The real Inspector with encoder tracking: the reject waits for the belt, and encoder faults fail safe."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from conftest import make_config, thread_mode

from edge_inspect.classify import OnnxClassifier
from edge_inspect.encoders.simulated import SimulatedEncoder
from edge_inspect.events import FailsafeReason, PartResult, RunState
from edge_inspect.outputs import SimulatedOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.report import collect
from edge_inspect.sources import create_source
from edge_inspect.triggers import SoftwareTrigger


def wait_for(predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _inspector(model_path: Path, replay_folder: Path) -> tuple[Inspector, SimulatedEncoder, SoftwareTrigger]:
    config = thread_mode(make_config(  # in-process devices: the thread scheduler

        model_path,
        replay_folder,
        trigger={"mode": "triggered", "input": {"type": "software"}},
        # top speed 100 mm/s: a 3 s verdict budget and fail-safe fallback, generous on a loaded machine
        line={"travel_delay_ms": None, "camera_to_diverter_mm": 300.0, "belt_speed_mm_s": 100.0, "tracking": "encoder"},
        encoder={"type": "simulated", "pulses_per_mm": 1.0},
    ))
    assert config.encoder is not None and config.encoder.type == "simulated"
    encoder = SimulatedEncoder(config.encoder)
    trigger = SoftwareTrigger()
    source = create_source(config.source)
    source.open()
    inspector = Inspector(
        config,
        source=source,
        classifier=OnnxClassifier(config.model.path, warmup_runs=1),
        reject=SimulatedOutput(name="reject"),
        ready=SimulatedOutput(name="ready"),
        alarm=SimulatedOutput(name="alarm"),
        trigger=trigger,
        encoder=encoder,
    )
    return inspector, encoder, trigger


def test_the_part_reaches_the_diverter_when_the_belt_has_moved(model_path: Path, replay_folder: Path) -> None:
    inspector, encoder, trigger = _inspector(model_path, replay_folder)
    subscription = inspector.subscribe("test")
    results: list[PartResult] = []
    with inspector:
        inspector.start()
        assert wait_for(lambda: inspector.state is RunState.RUNNING)
        trigger.fire()
        assert wait_for(lambda: inspector.live_view() is not None)  # decided; captured at count 0
        encoder.advance(150)
        # half way, the belt stops: the part waits on the belt while the actuator keeps looking
        moved_s = time.monotonic()
        assert wait_for(lambda: inspector.loop_heartbeats().get("actuator", 0.0) > moved_s + 0.2)
        results.extend(collect(subscription))
        assert results == [] and inspector.state is RunState.RUNNING
        encoder.advance(150)
        arrived = wait_for(lambda: bool(results.extend(collect(subscription)) or results))
        assert arrived, f"no result 15 s after the belt moved on: {inspector.status()}, {inspector.loop_heartbeats()}"
    [result] = results
    assert result.failsafe_reason is None and result.verdict.value in ("good", "defect")
    assert inspector.status().failsafe == 0


def test_a_reversing_belt_is_a_fault_and_fail_safes_the_part(model_path: Path, replay_folder: Path) -> None:
    inspector, encoder, trigger = _inspector(model_path, replay_folder)
    subscription = inspector.subscribe("test")
    alarm = inspector.alarm
    assert isinstance(alarm, SimulatedOutput)
    results: list[PartResult] = []
    with inspector:
        inspector.start()
        assert wait_for(lambda: inspector.state is RunState.RUNNING)
        encoder.advance(100)
        trigger.fire()
        assert wait_for(lambda: inspector.live_view() is not None)
        encoder.advance(-40)  # backwards
        assert wait_for(lambda: inspector.state is RunState.FAULT)
        assert "backwards" in (inspector.status().fault_reason or "") and alarm.is_active
        # fail-safe at the nominal time (capture + 300 mm / 100 mm/s)
        assert wait_for(lambda: bool(results.extend(collect(subscription)) or results))
        encoder.advance(200)  # forward past the furthest point again: trusted again
        assert wait_for(lambda: inspector.state is RunState.RUNNING)
    [result] = results
    assert result.failsafe_reason is FailsafeReason.ENCODER_FAULT and result.is_rejected


def test_the_app_wires_the_encoder_and_a_dead_one_is_a_fault(model_path: Path, replay_folder: Path) -> None:
    from edge_inspect.app import build_inspector, open_devices

    config = thread_mode(make_config(  # in-process devices: the thread scheduler

        model_path,
        replay_folder,
        line={"travel_delay_ms": None, "camera_to_diverter_mm": 100.0, "belt_speed_mm_s": 250.0, "tracking": "encoder"},
        encoder={"type": "simulated", "pulses_per_mm": 1.0},
    ))
    with open_devices(config) as devices:
        assert isinstance(devices.encoder, SimulatedEncoder)
        inspector = build_inspector(config, devices)
        subscription = inspector.subscribe("test")
        inspector.start(max_parts=6)  # free run: frames are parts, and the belt never moves
        assert inspector.wait_until_done(30)
        status = inspector.status()
        inspector.stop()
    results = collect(subscription)
    assert status.state is RunState.FAULT
    assert re.search(r"no pulses while [3-6] parts arrived", status.fault_reason or "")
    assert len(results) == 6
    # the first two parts wait for a belt that never comes until the fault: then all are fail-safe
    assert all(r.failsafe_reason is FailsafeReason.ENCODER_FAULT and r.is_rejected for r in results)
