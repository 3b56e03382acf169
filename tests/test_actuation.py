"""The reject scheduler for real: its own process, its channel, and the fail-safe it applies by itself."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import build_inspector, make_config, thread_mode

from edge_inspect.actuation import SchedulerClient, SchedulerSpec
from edge_inspect.actuation import channel as wire
from edge_inspect.actuation.channel import Decoder, Message, encode
from edge_inspect.actuation.loop import BATCH_S, IDLE_WAKE_S, OutputBank, SchedulerLoop
from edge_inspect.actuation.schedule import make_tracker, reason_of, verdict_code, verdict_of
from edge_inspect.config import AppConfig
from edge_inspect.errors import ConfigError, OutputError
from edge_inspect.events import FailsafeReason, PartResult, RunState, Verdict
from edge_inspect.outputs import SimulatedOutput
from edge_inspect.report import collect


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.fixture
def config(model_path: Path, replay_folder: Path) -> AppConfig:
    return make_config(model_path, replay_folder)


def test_the_framing_round_trips_every_field_and_survives_split_reads() -> None:
    messages = [
        Message(wire.PART, 3, 17, 1.5, 2.25, 1.75),
        Message(wire.OUTPUT_ERROR, 1, text="ready output: chip gone é"),
        Message(wire.RESOLVED, verdict_code(Verdict.FAILSAFE), 9, math.inf, 2.0, 3.0, reason=1),
    ]
    data = b"".join(encode(m) for m in messages)
    decoder = Decoder()
    received = [m for i in range(0, len(data), 7) for m in decoder.feed(data[i : i + 7])]
    assert received == messages
    assert verdict_of(received[2].code) is Verdict.FAILSAFE and reason_of(received[2].reason) is FailsafeReason.DEADLINE


def test_the_process_mode_inspector_rejects_through_the_scheduler_process(config: AppConfig) -> None:
    inspector = build_inspector(config)
    subscription = inspector.subscribe("test", max_items=1000)
    inspector.start(max_parts=16)
    try:
        assert inspector.wait_until_done(30)
        process = inspector._scheduler.process
        assert process is not None and process.pid != os.getpid()  # a separate interpreter drove the line
        rss_mb = inspector._scheduler.rss_mb()
    finally:
        inspector.stop()
    results = collect(subscription)
    rejected = [r for r in results if r.is_rejected]
    assert len(results) == 16 and rejected
    assert all(r.fired_ts_s is not None for r in rejected)
    assert inspector.scheduler_realtime  # the scheduler said what scheduling it got
    assert rss_mb is not None and rss_mb > 0
    # The mirror holds the scheduler's edges with its own timestamps: one pulse per reject (or merged ones).
    assert isinstance(inspector.reject, SimulatedOutput)
    actuations = inspector.reject.actuations()
    assert actuations and all(a.off_ts_s is not None for a in actuations)
    fired = sorted(r.fired_ts_s for r in rejected if r.fired_ts_s is not None)
    assert actuations[0].on_ts_s == pytest.approx(fired[0], abs=1e-3)
    assert not inspector.reject.is_active and process.poll() is not None  # safe, and ended with the run


def _spec(**changes: object) -> SchedulerSpec:
    values: dict[str, object] = {
        "travel_delay_s": 0.15, "latency_budget_s": 0.1, "pulse_width_s": 0.005, "failsafe_rejects": True,
        "heartbeat_period_s": 0.0, "outputs": {"reject": {"type": "simulated", "active_high": True},
                                               "ready": {"type": "simulated", "active_high": True}, "alarm": None},
        "realtime": False,
    }
    values.update(changes)
    return SchedulerSpec(**values)  # type: ignore[arg-type]


def _read_until(
    client: SchedulerClient, done: Callable[[list[Message]], bool], timeout_s: float = 10.0
) -> list[Message]:
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while not done(messages):
        assert time.monotonic() < deadline, f"timed out; got {messages}"
        messages += client.receive(0.05)
    return messages


@pytest.mark.parametrize("sender_ends", [False, True], ids=["sender-silent", "sender-gone"])
def test_parts_whose_verdict_never_comes_are_rejected_by_the_scheduler(sender_ends: bool) -> None:
    """What a SIGSTOPped or killed inspection process leaves: parts announced, no verdicts, maybe no channel."""
    lines = {"reject": SimulatedOutput(name="reject"), "ready": None, "alarm": None}
    client = SchedulerClient(_spec(), "process", lines)  # type: ignore[arg-type]
    client.start()
    try:
        now = time.monotonic()
        due = [now + 0.2 + 0.05 * i for i in range(4)]
        for i, fire_ts in enumerate(due):
            client.send(Message(wire.PART, 0, i + 1, fire_ts - 0.15, fire_ts, fire_ts - 0.05))
        client.send(Message(wire.VERDICT, verdict_code(Verdict.GOOD), 2, now))  # only part 2 got its verdict
        if sender_ends:
            assert client.endpoint is not None
            os.close(client.endpoint.write_fd)  # as kill -9 would: the scheduler sees its channel end
            client.endpoint.write_fd = -1  # closed here: join must not close that number again
        messages = _read_until(client, lambda ms: sum(m.kind == wire.RESOLVED for m in ms) == 4)
        resolved = {m.part_id: m for m in messages if m.kind == wire.RESOLVED}
        assert verdict_of(resolved[2].code) is Verdict.GOOD and math.isnan(resolved[2].a)
        for part_id in (1, 3, 4):
            assert verdict_of(resolved[part_id].code) is Verdict.FAILSAFE
            assert reason_of(resolved[part_id].reason) is FailsafeReason.DEADLINE
            assert not math.isnan(resolved[part_id].a)  # fired
            assert resolved[part_id].a >= due[part_id - 1]  # never early
        if sender_ends:
            assert client.process is not None
            client.process.wait(10)  # with nothing left in flight it went safe and ended on its own
    finally:
        client.join()


def test_process_mode_refuses_an_output_it_cannot_drive(config: AppConfig) -> None:
    class Failing(SimulatedOutput):
        pass

    with pytest.raises(ConfigError, match='mode = "thread"'):
        build_inspector(config, reject=Failing(name="reject"))
    build_inspector(thread_mode(config), reject=Failing(name="reject")).close()


def test_a_dead_scheduler_process_is_a_fault_and_outputs_go_safe(config: AppConfig) -> None:
    inspector = build_inspector(config)
    subscription = inspector.subscribe("test", max_items=1000)
    inspector.start()
    try:
        wait_for(lambda: inspector.state is RunState.RUNNING and inspector.parts_finished > 2, what="parts")
        assert isinstance(inspector.ready, SimulatedOutput) and inspector.ready.is_active
        process = inspector._scheduler.process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        wait_for(lambda: inspector.state is RunState.FAULT, what="FAULT")
        reason = inspector.status().fault_reason or ""
        assert "reject scheduler stopped" in reason and "signal 9" in reason
        assert not inspector.ready.is_active
        assert isinstance(inspector.alarm, SimulatedOutput) and inspector.alarm.is_active
        started = inspector.parts_started
        time.sleep(0.3)
        assert inspector.parts_started == started  # no more parts taken: none could be rejected
    finally:
        inspector.stop()
    results = collect(subscription)
    assert inspector.parts_started == inspector.parts_finished == len(results)


def test_the_pause_test_every_part_in_flight_is_rejected_while_inspection_is_frozen(
    model_path: Path, replay_folder: Path
) -> None:
    """A real child inspection process, SIGSTOPped for 200 ms: its scheduler rejects every part in flight."""
    from edge_inspect.pause_test import run_pause_test

    config = make_config(model_path, replay_folder, line={"travel_delay_ms": 150.0, "pulse_width_ms": 2.0})
    figures = run_pause_test(config, rate_fps=60.0, pause_s=0.2, warmup_s=0.5)
    assert figures["parts_in_flight"] > 0 and figures["due_during_pause"] > 0
    assert figures["rejected"] == figures["parts_in_flight"]  # every one fired, none passed unchecked
    assert figures["by_verdict"] + figures["by_failsafe"] == figures["parts_in_flight"]
    # (parts whose verdict was frozen in the stopped process: see the verdict-never-comes test above)


def test_encoder_tracking_in_the_scheduler_process_keeps_its_fault_handling(
    model_path: Path, replay_folder: Path
) -> None:
    """The scheduler process opens the encoder (gpiozero mock pins there: no pulse ever comes): the stall
    fault reaches the inspection side as FAULT, and every part fires fail-safe at the nominal time."""
    config = make_config(
        model_path, replay_folder,
        line={"travel_delay_ms": None, "camera_to_diverter_mm": 100.0, "belt_speed_mm_s": 500.0,
              "tracking": "encoder"},
        encoder={"type": "gpiozero", "pin_a": 5, "pin_factory": "mock", "pulses_per_mm": 1.0},
    )
    inspector = build_inspector(config)
    subscription = inspector.subscribe("test", max_items=1000)
    seen: list[PartResult] = []

    def has_failsafe_part() -> bool:
        seen.extend(collect(subscription))
        return any(r.failsafe_reason is FailsafeReason.ENCODER_FAULT for r in seen)

    inspector.start()
    try:
        wait_for(lambda: inspector.state is RunState.FAULT, what="the encoder FAULT")
        assert "encoder" in str(inspector._fault_sources)
        wait_for(has_failsafe_part, what="fail-safe parts")
    finally:
        inspector.stop()
    results = seen + collect(subscription)
    failsafe = [r for r in results if r.failsafe_reason is FailsafeReason.ENCODER_FAULT]
    assert failsafe and all(r.is_rejected and r.fired_ts_s is not None for r in failsafe)


def test_a_scheduler_that_cannot_open_its_lines_fails_the_start_with_the_reason(
    model_path: Path, replay_folder: Path
) -> None:
    config = make_config(model_path, replay_folder, outputs={"reject": {"type": "jetson", "pin": 7}})
    inspector = build_inspector(config)  # a mirror here; the scheduler process opens the Jetson pin
    with pytest.raises(OutputError, match=r"reject scheduler: .*Jetson"):
        inspector.start()
    assert inspector.state is RunState.STOPPED
    inspector.close()


def test_an_edge_reported_before_the_latest_command_does_not_move_the_mirror() -> None:
    """Raise then clear ALARM at once: the scheduler's report of the raise arrives after the clear was commanded
    and must not turn the inspection side's mirror back on (CI saw ALARM read active after clear_alarm)."""
    alarm = SimulatedOutput(name="alarm")
    lines = {"reject": SimulatedOutput(name="reject"), "ready": None, "alarm": alarm}
    client = SchedulerClient(_spec(outputs={"reject": {"type": "simulated", "active_high": True}, "ready": None,
                                            "alarm": {"type": "simulated", "active_high": True}}),
                             "process", lines)  # type: ignore[arg-type]
    client.start()
    try:
        client.command_line(2, True)
        client.command_line(2, False)
        assert not alarm.is_active
        messages = _read_until(client, lambda ms: sum(m.kind == wire.EDGE and m.code == 2 for m in ms) == 2)
        edges = [m for m in messages if m.kind == wire.EDGE and m.code == 2]
        assert [m.b for m in edges] == [1.0, 0.0] and [m.part_id for m in edges] == [1, 2]
        client.on_edge(edges[0])  # the raise, reported late: stale
        assert not alarm.is_active
        client.on_edge(edges[1])
        assert not alarm.is_active
        client.command_line(2, True)
        edge = _read_until(client, lambda ms: any(m.kind == wire.EDGE and m.code == 2 for m in ms))
        client.on_edge(next(m for m in edge if m.kind == wire.EDGE))  # current: accepted
        assert alarm.is_active
    finally:
        client.send(Message(wire.STOP))
        client.join()


def test_reject_edges_still_reach_the_mirror_after_the_reject_line_was_commanded_off() -> None:
    """Outputs go safe at stop (reject commanded off here, not sent); after a restart the scheduler's reject
    edges must still be mirrored, or the report would count no pulse."""
    reject = SimulatedOutput(name="reject")
    client = SchedulerClient(_spec(outputs={"reject": {"type": "simulated", "active_high": True}, "ready": None,
                                            "alarm": None}),
                             "process", {"reject": reject, "ready": None, "alarm": None})  # type: ignore[arg-type]
    client.command_line(0, False)
    client.start()
    try:
        client.command_line(0, False)
        fire_ts = time.monotonic() + 0.2
        client.send(Message(wire.PART, 0, 1, fire_ts - 0.15, fire_ts, fire_ts - 0.05))
        client.send(Message(wire.VERDICT, verdict_code(Verdict.DEFECT), 1, time.monotonic()))
        messages = _read_until(client, lambda ms: sum(m.kind == wire.EDGE and m.code == 0 for m in ms) == 2)
        for message in messages:
            if message.kind == wire.EDGE:
                client.on_edge(message)
        assert len(reject.actuations()) == 1 and not reject.is_active
    finally:
        client.send(Message(wire.STOP))
        client.join()


@contextmanager
def _loop_on_a_fake_clock(**spec_changes: object) -> Iterator[tuple[SchedulerLoop, list[float], int]]:
    """A scheduler loop on a clock the test moves (``now[0]``), one simulated reject line, and the read end
    of the pipe its reports go to."""
    now = [100.0]
    spec = _spec(**spec_changes)
    bank = OutputBank({"reject": SimulatedOutput(name="reject")}, lambda *_: None, lambda *_: None, lambda: now[0])
    read_fd, write_fd = os.pipe()
    endpoint = wire.Endpoint(read_fd, write_fd)
    try:
        yield SchedulerLoop(endpoint, spec, make_tracker(spec, None), bank, clock=lambda: now[0]), now, read_fd
    finally:
        endpoint.close()


def test_the_scheduler_spins_only_for_moments_that_may_move_a_line() -> None:
    """A part settled as a pass wakes the loop (it is resolved at its time) but is no moment to spin for."""
    with _loop_on_a_fake_clock(heartbeat_period_s=0.0) as (loop, now, read_fd):
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.0 + IDLE_WAKE_S), math.inf)
        for part_id, capture_ts in ((1, 99.88), (2, 99.89)):  # due 100.03, 100.04; deadlines 99.98, 99.99
            loop._handle(Message(wire.PART, 0, part_id, capture_ts, capture_ts + 0.15, capture_ts + 0.1))
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.03), pytest.approx(100.03))  # may be a reject
        loop._handle(Message(wire.VERDICT, verdict_code(Verdict.GOOD), 1, 99.95))
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.03), pytest.approx(100.04))  # 1 is a settled pass
        loop._handle(Message(wire.VERDICT, verdict_code(Verdict.GOOD), 2, 99.96))
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.03), math.inf)
        now[0] = 100.035
        loop.step(now[0])  # part 1 resolved at its time, not fired
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.04), math.inf)
        resolved = Decoder().feed(os.read(read_fd, 4096))
        assert [(m.kind, m.part_id, math.isnan(m.a)) for m in resolved] == [(wire.RESOLVED, 1, True)]


def test_after_a_round_a_part_that_moves_no_line_waits_for_the_batch_and_one_that_may_does_not() -> None:
    """At overload one wake-up per message and per settled part took a third of a core at real-time priority:
    after each round the loop holds off for BATCH_S, except for a moment that may move a line."""
    with _loop_on_a_fake_clock(heartbeat_period_s=0.0) as (loop, now, read_fd):
        assert loop.batch_s == pytest.approx(BATCH_S)
        for part_id, capture_ts in ((1, 99.88), (2, 99.8805)):  # due 100.03 and 100.0305
            loop._handle(Message(wire.PART, 0, part_id, capture_ts, capture_ts + 0.15, capture_ts + 0.1))
        loop._handle(Message(wire.VERDICT, verdict_code(Verdict.GOOD), 1, 99.95))  # 1: a settled pass
        loop._hold_until_ts_s = 100.029 + BATCH_S  # a round ended at 100.029
        # part 2 has no verdict yet (it may be a reject): its moment is not held
        assert loop._next_wake_ts(100.029) == (pytest.approx(100.0305), pytest.approx(100.0305))
        loop._handle(Message(wire.VERDICT, verdict_code(Verdict.GOOD), 2, 99.96))
        # both settled: resolved together once the hold is over, no spin
        assert loop._next_wake_ts(100.029) == (pytest.approx(100.029 + BATCH_S), math.inf)
        now[0] = 100.029 + BATCH_S
        loop.step(now[0])
        assert [m.part_id for m in _resolved(read_fd)] == [1, 2]
    with _loop_on_a_fake_clock(travel_delay_s=0.004) as (loop, _, _):
        assert loop.batch_s == pytest.approx(0.001)  # never more than a quarter of the travel delay


def _resolved(read_fd: int) -> list[Message]:
    return [m for m in Decoder().feed(os.read(read_fd, 65536)) if m.kind == wire.RESOLVED]


def test_a_reject_due_inside_the_asserted_pulse_is_no_moment_to_spin_for_and_is_on_at_its_due_time() -> None:
    """At overload, rejects come every fraction of a millisecond inside one merged pulse: the line is on at
    their due moments already, so the loop wakes for them without spinning and reports them fired then."""
    with _loop_on_a_fake_clock(pulse_width_s=0.005) as (loop, now, read_fd):
        # due 100.030, 100.031, 100.0335 (inside the first pulse as it grows) and 100.045 (after it ends)
        for part_id, capture_ts in ((1, 99.88), (2, 99.881), (3, 99.8835), (4, 99.895)):
            loop._handle(Message(wire.PART, 0, part_id, capture_ts, capture_ts + 0.15, capture_ts + 0.1))
            loop._handle(Message(wire.VERDICT, verdict_code(Verdict.DEFECT), part_id, capture_ts + 0.05))
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.03), pytest.approx(100.03))  # no pulse yet: spin
        now[0] = 100.03
        loop.step(now[0])
        assert loop.bank.levels[0] and loop._pulse_until_ts_s == pytest.approx(100.035)
        # part 2 wakes the loop at its time, but the precise moment is the pulse's end
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.031), pytest.approx(100.035))
        now[0] = 100.0318  # woken 0.8 ms late from select(): the line was on all along
        loop.step(now[0])
        assert loop._pulse_until_ts_s == pytest.approx(100.036)  # its own width, from its due moment
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.0335), pytest.approx(100.036))
        now[0] = 100.034
        loop.step(now[0])
        assert loop._pulse_until_ts_s == pytest.approx(100.0385)
        # part 4 falls after the pulse's end: the pulse end is spun for, then part 4's new pulse
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.0385), pytest.approx(100.0385))
        now[0] = 100.0385
        loop.step(now[0])
        assert not loop.bank.levels[0]
        assert loop._next_wake_ts(now[0]) == (pytest.approx(100.045), pytest.approx(100.045))
        fired = {m.part_id: (m.a, m.b) for m in _resolved(read_fd)}
        assert fired == {
            1: (pytest.approx(100.03), pytest.approx(100.03)),
            2: (pytest.approx(100.031), pytest.approx(100.031)),
            3: (pytest.approx(100.0335), pytest.approx(100.0335)),
        }


def test_a_merged_reject_due_before_its_pulse_began_is_reported_from_when_the_line_went_on() -> None:
    with _loop_on_a_fake_clock(pulse_width_s=0.005) as (loop, now, read_fd):
        for part_id, capture_ts in ((1, 99.88), (2, 99.881)):  # due 100.030 and 100.031, no verdict: fail-safe
            loop._handle(Message(wire.PART, 0, part_id, capture_ts, capture_ts + 0.15, capture_ts + 0.1))
        now[0] = 100.0312  # the loop came late to both
        loop.step(now[0])
        fired = {m.part_id: m.a for m in _resolved(read_fd)}
        assert fired == {1: pytest.approx(100.0312), 2: pytest.approx(100.0312)}  # never earlier than the line
        assert loop._pulse_until_ts_s == pytest.approx(100.0362)
