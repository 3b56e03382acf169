"""Encoder seam and encoder tracking: pure due/fault decisions (tables), the backends on their libraries' doubles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_config
from gpiozero.pins.mock import MockFactory
from test_jetson import StandInJetsonGPIO

from edge_inspect.belt_tracking import EncoderPartTracker, crossing_ts, is_due, make_part_tracker
from edge_inspect.config.encoder import GpiozeroEncoderConfig, JetsonEncoderConfig, SimulatedEncoderConfig
from edge_inspect.decision import Decision
from edge_inspect.encoders import create_encoder
from edge_inspect.encoders.gpiozero_encoder import GpiozeroEncoder
from edge_inspect.encoders.jetson import JetsonEncoder
from edge_inspect.encoders.monitor import EncoderLimits, EncoderMonitor, unwrap_delta
from edge_inspect.encoders.quadrature import QuadratureDecoder, quarter_step
from edge_inspect.encoders.simulated import SimulatedEncoder
from edge_inspect.errors import ConfigError
from edge_inspect.events import FailsafeReason, Verdict
from edge_inspect.tracking import PartTracker

# --------------------------------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capture", "now", "distance", "due"),
    [
        (0, 599, 600, False),
        (0, 600, 600, True),
        (1000, 1599, 600, False),
        (1000, 1600, 600, True),
        (-50, 550, 600, True),  # positions are continuous, negative is fine
    ],
)
def test_a_part_is_due_once_the_belt_moved_the_distance(capture: int, now: int, distance: int, due: bool) -> None:
    assert is_due(capture, now, distance) is due


@pytest.mark.parametrize(
    ("now", "then", "bits", "delta"),
    [
        (10, 3, None, 7),
        (3, 10, None, -7),
        (5, 65530, 16, 11),  # wrapped forward past 65535
        (65530, 5, 16, -11),  # wrapped backward
        (40000, 0, 16, -25536),  # more than half the range: read as backwards
        (2**31 + 4, 2**31 - 4, 32, 8),
    ],
)
def test_unwrap_delta(now: int, then: int, bits: int | None, delta: int) -> None:
    assert unwrap_delta(now, then, bits) == delta


@pytest.mark.parametrize(
    ("old", "new", "step"),
    [(0, 1, 1), (1, 3, 1), (3, 2, 1), (2, 0, 1), (1, 0, -1), (0, 2, -1), (0, 0, 0), (0, 3, None), (1, 2, None)],
)
def test_quarter_steps_follow_the_gray_code(old: int, new: int, step: int | None) -> None:
    assert quarter_step(old, new) == step


def test_the_quadrature_decoder_counts_cycles_both_ways_and_missed_edges() -> None:
    decoder = QuadratureDecoder()
    forward = [(0, 1), (1, 1), (1, 0), (0, 0)]  # states 01, 11, 10, 00: one full cycle forward
    for _ in range(3):
        for a, b in forward:
            decoder.update(a, b)
    assert decoder.pulses == 3
    for a, b in reversed([(0, 0), *forward[:-1]]):
        decoder.update(a, b)
    assert decoder.pulses == 2
    decoder.update(1, 1)  # 00 -> 11: both changed, an edge was lost
    assert decoder.missed == 1 and decoder.pulses == 2


LIMITS = EncoderLimits(counts_per_mm=2.0, max_speed_mm_s=1000.0, reverse_tolerance_counts=4, stall_parts=2)


def _monitor(**overrides: object) -> EncoderMonitor:
    values = {**vars(LIMITS), **overrides}
    return EncoderMonitor(EncoderLimits(**values))  # type: ignore[arg-type]


# (raw reading, time s) sequences and whether the monitor ends in fault, and with what
@pytest.mark.parametrize(
    ("readings", "fault"),
    [
        ([(0, 0.0), (100, 0.1), (200, 0.2)], None),  # 1000 counts/s, well within 2000 counts/s
        ([(0, 0.0), (100, 0.1), (97, 0.2)], None),  # 3 counts back: jitter at a standstill
        ([(0, 0.0), (100, 0.1), (90, 0.2)], "backwards by 10 counts"),
        ([(0, 0.0), (100, 0.1), (90, 0.2), (101, 0.3)], None),  # forward past the furthest point again
        ([(0, 0.0), (100, 0.1), (5000, 0.2)], "jumped by 4900"),  # 49,000 counts/s: impossible
        ([(0, 0.0), (100, 0.1), (-65000, 0.2)], "wrapped by -65100"),  # an unknown 16-bit counter wrapped
        ([(0, 0.0), (100, 0.1), (5000, 0.2), (5100, 0.5), (5200, 1.3)], None),  # trusted again after 1 s
    ],
)
def test_the_monitor_flags_reversal_and_jumps(readings: list[tuple[int, float]], fault: str | None) -> None:
    monitor = _monitor()
    for raw, ts in readings:
        monitor.observe(raw, ts)
    if fault is None:
        assert monitor.fault is None
    else:
        assert monitor.fault is not None and fault in monitor.fault


def test_a_known_counter_width_makes_the_wrap_harmless() -> None:
    monitor = _monitor(counter_bits=16)
    for raw, ts in [(65000, 0.0), (65500, 0.25), (464, 0.5), (964, 0.75)]:
        position = monitor.observe(raw, ts)
    assert monitor.fault is None and position == 964 + 65536 - 65000


@pytest.mark.parametrize(
    ("part_positions", "fault"),
    [
        ([0, 240, 480, 720], False),
        ([0, 240, 240], False),  # one part at the same count: a bounce at the photo-eye
        ([0, 240, 240, 240], True),  # three parts, no pulse between: the encoder is dead
        ([0, 0, 240, 240], False),
    ],
)
def test_parts_arriving_without_pulses_are_a_fault(part_positions: list[int], fault: bool) -> None:
    monitor = _monitor()
    monitor.observe(0, 0.0)
    for position in part_positions:
        monitor.on_part(position)
    assert (monitor.fault is not None) is fault
    if fault:
        assert "no pulses while 3 parts arrived" in (monitor.fault or "")
        monitor.observe(250, 0.5)  # pulses again: the fault clears
        assert monitor.fault is None


def test_crossing_time_is_the_first_count_at_the_distance() -> None:
    history = [(1.0, 10), (1.1, 20), (1.2, 30), (1.3, 40)]
    assert crossing_ts(history, 10, 20, None) == 1.2
    assert crossing_ts(history, 10, 31, None) is None
    assert crossing_ts([(2.0, 65530), (2.1, 4)], 65520, 20, 16) == 2.1


# --------------------------------------------------------------------------------------------------
# The encoder part tracker
# --------------------------------------------------------------------------------------------------


def _tracker(encoder: SimulatedEncoder, distance_counts: int = 600) -> EncoderPartTracker:
    return EncoderPartTracker(
        encoder, _monitor(), distance_counts=distance_counts, latency_budget_s=0.2, nominal_travel_s=0.75
    )


def _decision(ts: float) -> Decision:
    return Decision(Verdict.GOOD, (), ts)


def test_a_stopped_belt_holds_the_part_whatever_the_time() -> None:
    encoder = SimulatedEncoder(SimulatedEncoderConfig(pulses_per_mm=2.0))
    tracker = _tracker(encoder)
    list(tracker.pop_due(0.0))
    encoder.advance(100, 0.05)
    part = tracker.add(1, 0.05, 0.0, None)
    tracker.post_decision(1, _decision(0.1))  # within the 0.2 s budget
    encoder.advance(300, 0.3)
    assert list(tracker.pop_due(0.3)) == []
    # the belt stands for a minute: still not due, and no fault (no parts arrive meanwhile)
    assert list(tracker.pop_due(60.0)) == [] and tracker.fault_reason is None
    encoder.advance(299, 60.5)
    assert list(tracker.pop_due(60.5)) == []
    encoder.advance(1, 60.6)
    due = list(tracker.pop_due(60.6))
    assert [p.part_id for p in due] == [1]
    assert due[0] is part and part.fire_ts_s == pytest.approx(60.6) and part.failsafe_reason is None


def test_the_capture_position_is_looked_up_at_the_capture_instant() -> None:
    encoder = SimulatedEncoder(SimulatedEncoderConfig(pulses_per_mm=2.0))
    tracker = _tracker(encoder, distance_counts=100)
    list(tracker.pop_due(0.0))
    for i in range(1, 11):
        encoder.advance(10, i * 0.01)  # 10 counts every 10 ms
    tracker.add(1, 0.035, 0.0, None)  # captured at 30 counts; added only now, at 100
    encoder.advance(29, 0.2)
    assert list(tracker.pop_due(0.2)) == []
    encoder.advance(1, 0.21)
    assert [p.part_id for p in tracker.pop_due(0.21)] == [1]


def test_an_encoder_fault_fail_safes_parts_in_flight_at_their_nominal_time() -> None:
    encoder = SimulatedEncoder(SimulatedEncoderConfig(pulses_per_mm=2.0))
    tracker = _tracker(encoder)
    list(tracker.pop_due(0.0))
    encoder.advance(100, 0.05)
    tracker.add(1, 0.05, 0.0, None)
    encoder.advance(-50, 0.1)  # the belt runs backwards
    assert list(tracker.pop_due(0.1)) == []
    assert tracker.fault_reason is not None and "backwards" in tracker.fault_reason
    assert tracker.next_fire_ts() == pytest.approx(0.80)  # the fail-safe part's nominal time
    due = list(tracker.pop_due(0.80))  # capture 0.05 + nominal travel 0.75
    assert [(p.part_id, p.failsafe_reason) for p in due] == [(1, FailsafeReason.ENCODER_FAULT)]


def test_a_part_fail_safed_for_a_late_verdict_still_rides_the_belt_and_costs_no_busy_polling() -> None:
    """A deadline fail-safe is rejected when the belt brings it to the diverter, however slow the belt; its
    nominal time is no reason to look at the encoder every instant after it."""
    encoder = SimulatedEncoder(SimulatedEncoderConfig(pulses_per_mm=2.0))
    tracker = _tracker(encoder)  # due after 600 counts (top speed 2000 counts/s), nominal travel 0.75 s
    list(tracker.pop_due(0.0))
    tracker.add(1, 0.0, 0.0, None)
    tracker.fail(1, FailsafeReason.DEADLINE)  # no verdict by its deadline
    encoder.advance(300, 0.5)
    assert list(tracker.pop_due(0.5)) == []
    encoder.advance(100, 1.0)  # past its nominal time, the belt (slower than nominal) still short of the diverter
    assert list(tracker.pop_due(1.0)) == []
    assert tracker.next_fire_ts() == pytest.approx(1.0 + 200 / 2000)  # the next look is ahead, not in the past
    encoder.advance(200, 1.3)
    due = list(tracker.pop_due(1.3))
    assert [(p.part_id, p.failsafe_reason) for p in due] == [(1, FailsafeReason.DEADLINE)]
    assert due[0].fire_ts_s == pytest.approx(1.3)  # at the diverter, not at its nominal time


def test_the_actuator_sleeps_until_the_nearest_part_could_be_due_at_top_speed() -> None:
    encoder = SimulatedEncoder(SimulatedEncoderConfig(pulses_per_mm=2.0))
    tracker = _tracker(encoder)  # due after 600 counts; top speed 1000 mm/s = 2000 counts/s
    list(tracker.pop_due(1.0))
    tracker.add(1, 1.0, 0.0, None)
    assert tracker.next_fire_ts() == pytest.approx(1.0 + 600 / 2000)
    encoder.advance(599, 1.2)
    list(tracker.pop_due(1.2))
    assert tracker.next_fire_ts() == pytest.approx(1.2 + 0.001)  # one count left: poll every ms


def test_stop_pops_every_part() -> None:
    encoder = SimulatedEncoder(SimulatedEncoderConfig(pulses_per_mm=2.0))
    tracker = _tracker(encoder)
    for part_id in (1, 2):
        tracker.add(part_id, 0.0, 0.0, None)
    assert [p.part_id for p in tracker.pop_due(float("inf"))] == [1, 2] and len(tracker) == 0


def test_the_config_chooses_the_tracker(model_path: Path, replay_folder: Path) -> None:
    time_config = make_config(model_path, replay_folder)
    assert isinstance(make_part_tracker(time_config, None), PartTracker)
    config = make_config(
        model_path,
        replay_folder,
        line={"travel_delay_ms": None, "camera_to_diverter_mm": 300.0, "belt_speed_mm_s": 400.0, "tracking": "encoder"},
        encoder={"type": "simulated", "pulses_per_mm": 2.5},
    )
    encoder = create_encoder(config.encoder)
    tracker = make_part_tracker(config, encoder)
    assert isinstance(tracker, EncoderPartTracker) and tracker.distance_counts == 750
    assert tracker.nominal_travel_s == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="encoder input"):
        make_part_tracker(config, None)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"line": {"tracking": "encoder"}}, "camera_to_diverter_mm"),
        (
            {
                "line": {
                    "travel_delay_ms": None,
                    "camera_to_diverter_mm": 300.0,
                    "belt_speed_mm_s": 400.0,
                    "tracking": "encoder",
                }
            },
            "needs an \\[encoder\\] section",
        ),
        ({"encoder": {"type": "simulated", "pulses_per_mm": 0}}, "pulses_per_mm"),
        ({"encoder": {"type": "bogus", "pulses_per_mm": 1}}, "encoder"),
        ({"encoder": {"type": "simulated", "pulses_per_mm": 1, "pulses_per_inch": 3}}, "unknown key"),
    ],
)
def test_bad_encoder_config_names_the_problem(
    model_path: Path, replay_folder: Path, sections: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(model_path, replay_folder, **sections)


# --------------------------------------------------------------------------------------------------
# Backends: simulated, gpiozero on MockFactory, Jetson on the stand-in
# --------------------------------------------------------------------------------------------------


def test_the_simulated_encoder_wraps_like_a_fixed_width_counter() -> None:
    encoder = SimulatedEncoder(SimulatedEncoderConfig(pulses_per_mm=1.0, counter_bits=8))
    encoder.advance(250, 1.0)
    encoder.advance(10, 2.0)
    assert encoder.position_counts() == 4
    assert encoder.position_at(1.5) == 250 and encoder.position_at(0.5) == 250
    assert encoder.history_since(1.5) == [(2.0, 4)]


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.reset()


def _quadrature(factory: MockFactory, a: int, b: int, cycles: int, forward: bool = True) -> None:
    """Drive one encoder cycle per loop on pins a and b (pulled up, so idle is high: 11)."""
    pin_a, pin_b = factory.pin(a), factory.pin(b)
    sequence = [(0, 1), (0, 0), (1, 0), (1, 1)] if forward else [(1, 0), (0, 0), (0, 1), (1, 1)]
    for _ in range(cycles):
        for level_a, level_b in sequence:
            (pin_a.drive_high if level_a else pin_a.drive_low)()
            (pin_b.drive_high if level_b else pin_b.drive_low)()


def test_gpiozero_quadrature_counts_both_directions(factory: MockFactory) -> None:
    config = GpiozeroEncoderConfig(pulses_per_mm=1.0, pin_a=20, pin_b=21)
    encoder = GpiozeroEncoder(config, pin_factory=factory)
    encoder.start()
    before = time.monotonic()
    _quadrature(factory, 20, 21, 25)
    assert encoder.position_counts() == 25
    assert before <= encoder.history_since(before)[0][0] <= time.monotonic()
    _quadrature(factory, 20, 21, 5, forward=False)
    assert encoder.position_counts() == 20
    encoder.close()
    encoder.close()
    assert factory.pin(20).state is True  # released, pulled up


def test_gpiozero_single_channel_counts_every_pulse(factory: MockFactory) -> None:
    config = GpiozeroEncoderConfig(pulses_per_mm=1.0, pin_a=20, pull_up=False)
    encoder = GpiozeroEncoder(config, pin_factory=factory)
    encoder.start()
    pin = factory.pin(20)
    for _ in range(40):
        pin.drive_high()
        pin.drive_low()
    assert encoder.position_counts() == 40 and encoder.pulses_seen == 40
    encoder.close()


def test_gpiozero_bad_pin_is_an_encoder_error(factory: MockFactory) -> None:
    from edge_inspect.errors import EncoderError

    with pytest.raises(EncoderError, match="GPIO encoder on pins 'GPIO99'"):
        GpiozeroEncoder(GpiozeroEncoderConfig(pulses_per_mm=1.0, pin_a="GPIO99"), pin_factory=factory)


def test_jetson_quadrature_and_single_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    gpio = StandInJetsonGPIO()
    encoder = JetsonEncoder(JetsonEncoderConfig(pulses_per_mm=1.0, pin_a=15, pin_b=16), gpio_module=gpio)
    encoder.start()
    assert gpio.events[15]["edge"] == gpio.BOTH and gpio.events[16]["edge"] == gpio.BOTH
    for _ in range(10):
        for a, b in [(0, 1), (1, 1), (1, 0), (0, 0)]:
            gpio.drive(15, a)
            gpio.drive(16, b)
    assert encoder.position_counts() == 10 and encoder.missed_edges == 0
    encoder.close()
    assert 15 in gpio.cleaned and 16 in gpio.cleaned and not gpio.events

    gpio = StandInJetsonGPIO()
    single = JetsonEncoder(JetsonEncoderConfig(pulses_per_mm=1.0, pin_a=15), gpio_module=gpio)
    single.start()
    for _ in range(7):
        gpio.drive(15, gpio.HIGH)
        gpio.drive(15, gpio.LOW)
    assert single.position_counts() == 7
    single.close()


def test_jetson_bad_pin_is_an_encoder_error() -> None:
    from edge_inspect.errors import EncoderError

    with pytest.raises(EncoderError, match="invalid"):
        JetsonEncoder(JetsonEncoderConfig(pulses_per_mm=1.0, pin_a=1), gpio_module=StandInJetsonGPIO())
