"""The reject pulse on a real gpiozero device over gpiozero's own MockFactory pins.

Order and width are asserted with a tolerance that holds on a loaded machine; precision is measured by
``edge-inspect bench``, not here.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import make_config, thread_mode
from gpiozero.pins.mock import MockFactory

from edge_inspect.classify import OnnxClassifier
from edge_inspect.config import GpiozeroOutputConfig
from edge_inspect.events import Verdict
from edge_inspect.outputs.gpiozero_output import GpiozeroOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.report import collect
from edge_inspect.sources import create_source

TOLERANCE_S = 0.250  # a correctness bound on a loaded machine (stress-ng --cpu 2): precision is benchmarked


def absolute_changes(pin: object) -> list[tuple[float, bool]]:
    """MockPin keeps (time since previous change, level); turn that into (monotonic time, level)."""
    states = pin.states  # type: ignore[attr-defined]
    last = pin._last_change  # type: ignore[attr-defined]  # monotonic time of the newest change
    times = []
    for i in range(len(states)):
        times.append(last - sum(s.timestamp for s in states[i + 1 :]))
    return [(t, bool(s.state)) for t, s in zip(times, states, strict=True)]


@pytest.mark.parametrize("active_high", [True, False])
def test_reject_pulse_on_gpiozero_mock_pin(model_path: Path, replay_folder: Path, active_high: bool) -> None:
    # a 300 ms budget: every part decided even on a loaded machine, so every pulse is a defect's
    config = thread_mode(make_config(  # in-process devices: the thread scheduler
       model_path, replay_folder, line={"travel_delay_ms": 300.0, "pulse_width_ms": 12.0}))
    factory = MockFactory()
    reject = GpiozeroOutput(GpiozeroOutputConfig(pin=17, active_high=active_high), pin_factory=factory)
    source = create_source(config.source)
    source.open()
    inspector = Inspector(config, source=source, classifier=OnnxClassifier(model_path, warmup_runs=1), reject=reject)
    subscription = inspector.subscribe("test")
    inspector.start(max_parts=16)
    assert inspector.wait_until_done(20)
    inspector.close()
    results = collect(subscription)
    rejected = [r for r in results if r.is_rejected]
    assert rejected and all(r.verdict is Verdict.DEFECT for r in rejected)

    pin = factory.pin(17)
    changes = absolute_changes(pin)
    idle = not active_high
    # A fresh MockPin reads low; an active-low output is driven high (inactive) when it is set up.
    first_idle = next(i for i, (_, level) in enumerate(changes) if level is idle)
    assert first_idle == (0 if active_high else 1)
    changes = changes[first_idle:]
    assert changes[-1][1] is idle  # left inactive after close()
    pulses = [(a, b) for a, b in itertools.pairwise(changes) if a[1] is not idle and b[1] is idle]
    # one pulse per reject; a late actuator (loaded machine) merges overlapping ones, never adds any
    assert 1 <= len(pulses) <= len(rejected)
    levels = [level for _, level in changes]
    assert all(x != y for x, y in itertools.pairwise(levels))  # strictly alternating: no glitches
    for part in rejected:
        due = part.capture_ts_s + 0.300
        assert part.fired_ts_s is not None
        assert 0.0 <= part.fired_ts_s - due < TOLERANCE_S, "pulse must start at capture time + travel delay"
        on_t, off_t = next((a[0], b[0]) for a, b in pulses if a[0] - 0.002 <= part.fired_ts_s <= b[0])
        assert 0.012 <= off_t - on_t < 0.012 + TOLERANCE_S * len(rejected), "pulse must last the configured width"
