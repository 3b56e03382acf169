"""The reject scheduler's loop: wait on the channel until just before the next due moment, spin, fire.

One thread owns the output lines. It receives parts, verdicts and line commands from the inspection
side, resolves each part at its fire time (its verdict if that came by the deadline, otherwise the
fail-safe: a verdict that never comes is a reject here, whatever the inspection process is doing),
asserts the reject line for the pulse width, toggles the READY heartbeat, and reports every resolution
and output edge back. The same code runs in the scheduler process (the default) or as a thread.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import time
from collections.abc import Callable

from ..decision import extend_pulse
from ..errors import OutputError
from ..events import FailsafeReason
from ..outputs.base import DigitalOutput
from ..tracking import TrackedPart
from . import channel
from .channel import Endpoint, Message
from .schedule import SchedulerSpec, Tracker, reason_code, reason_of, resolve_part, verdict_code, verdict_decision
from .schedule import verdict_of as _verdict_of

log = logging.getLogger(__name__)

Clock = Callable[[], float]
IDLE_WAKE_S = 0.05
"""Longest wait on the channel: keep-alive and encoder checks come round at least this often."""
GC_QUIET_S = 0.02
"""The scheduler process collects garbage itself, only when nothing is due for this long."""
GC_EVERY_S = 1.0
BATCH_S = 0.002
"""After each round the loop neither reads the channel nor resolves a part that moves no line for this
long (at most a quarter of the travel delay), unless a moment that may move a line comes first: the
messages and the settled parts of those 2 ms are handled in one wake-up. Nothing is lost by the wait: a
verdict counts by its own decision time, a settled part's resolution drives no edge, a reject merged
into the asserted pulse extends it from its own due moment, and everything that came is read before any
fire. At overload (a message and a resolution every fraction of a millisecond) one wake-up per message
and per part took a third of a core at real-time priority from the inspection process."""


class OutputBank:
    """The reject, READY and ALARM lines; every level change is reported with its time.

    ``lock`` serialises writes when the inspection thread commands READY/ALARM directly (thread mode).
    """

    def __init__(
        self, lines: dict[str, DigitalOutput | None], on_edge: Callable[[int, bool, float, int], None],
        on_error: Callable[[int, str], None], clock: Clock = time.monotonic,
    ) -> None:
        self.devices = [lines.get(name) for name in channel.LINES]
        self.levels = [False, False, False]
        self.command_seq = [0, 0, 0]
        """Per line, the sequence number of the last READY/ALARM command applied; every edge report carries it,
        so the inspection side's mirror can tell an edge that predates its latest command from a current one."""
        self.lock = threading.Lock()
        self._on_edge, self._on_error, self._clock = on_edge, on_error, clock

    def write(self, line: int, active: bool) -> bool:
        """Drive ``line``; False (and an error report) if the device refused."""
        device = self.devices[line]
        if device is None:
            return True
        with self.lock:
            try:
                device.set(active)
            except OutputError as error:
                self._on_error(line, str(error))
                return False
            ts_s = self._clock()
            changed = self.levels[line] != active
            self.levels[line] = active
            seq = self.command_seq[line]
        if changed:
            self._on_edge(line, active, ts_s, seq)
        return True

    def has(self, line: int) -> bool:
        return self.devices[line] is not None


class SchedulerLoop:
    """Runs until STOP (or the inspection side's end of the channel closes and nothing is left in flight)."""

    def __init__(
        self, endpoint: Endpoint, spec: SchedulerSpec, tracker: Tracker, bank: OutputBank,
        clock: Clock = time.monotonic, spin_s: float | None = None, hello: str = "",
    ) -> None:
        self.hello = hello
        self.endpoint, self.spec, self.tracker, self.bank, self._clock = endpoint, spec, tracker, bank, clock
        self.spin_s = spec.spin_s if spin_s is None else spin_s
        self._pulse_until_ts_s: float | None = None
        self._pulse_on_ts_s = 0.0
        """When the reject line went on for the pulse now asserted (valid while ``_pulse_until_ts_s`` is set)."""
        self._ready_wanted = False
        self._heartbeat_level = False
        self._next_heartbeat_ts_s = 0.0
        self._last_heard_ts_s = clock()
        self._tracker_fault: str | None = None
        self._stopping = False
        self.collects_garbage = False  # the scheduler process disables automatic GC and calls it between fires
        self._last_gc_ts_s = clock()
        self.batch_s = min(BATCH_S, spec.travel_delay_s / 4.0)
        self._hold_until_ts_s = -math.inf
        """Until then, only a moment that may move a line wakes the loop (set after each round: BATCH_S)."""

    # ------------------------------------------------------------------ messages

    def _handle(self, message: Message) -> None:
        self._last_heard_ts_s = self._clock()
        kind = message.kind
        if kind == channel.PART:
            part = self.tracker.add(message.part_id, message.a, 0.0, None)
            if self.spec.tracking == "time" and not math.isnan(message.b):
                part.fire_ts_s = message.b  # the inspection side's clock offset is the one it reported
            reason = reason_of(message.code)
            if reason is not None:
                self.tracker.fail(message.part_id, reason)
        elif kind == channel.VERDICT:
            self.tracker.post_decision(message.part_id, verdict_decision(_verdict_of(message.code), message.a))
        elif kind == channel.FAIL:
            reason = reason_of(message.code)
            if reason is not None:
                self.tracker.fail(message.part_id, reason)
        elif kind == channel.LINE:
            active = message.a > 0.5
            if message.code == 1:
                self._ready_wanted = active
                self._heartbeat_level = active
                self._next_heartbeat_ts_s = self._clock() + self.spec.heartbeat_period_s / 2.0
            if 0 <= message.code < len(self.bank.command_seq):
                self.bank.command_seq[message.code] = message.part_id
            self.bank.write(message.code, active)
        elif kind == channel.STOP:
            self._stopping = True

    # ------------------------------------------------------------------ timing

    def _next_wake_ts(self, now: float) -> tuple[float, float]:
        """(when to look next, the next moment an output may change, which is worth spinning for).

        The first is the earlier of the second and the times that change no line: the idle wake and the
        fire time of a part already settled as a pass (its resolution drives no edge, so waking a little
        late for it costs nothing, where spinning for every part at thousands of parts a second would
        take a core from the inspection process)."""
        precise = [math.inf]
        fire = self.tracker.next_may_fire_ts()
        if fire is not None and not self._covered_by_pulse(fire):
            precise.append(fire)
        if self._pulse_until_ts_s is not None:
            precise.append(self._pulse_until_ts_s)
        if self._ready_wanted and self.spec.heartbeat_period_s > 0 and self.bank.has(1):
            precise.append(self._next_heartbeat_ts_s)
        precise_ts = min(precise)
        wake = [now + IDLE_WAKE_S, precise_ts]
        settled = self.tracker.next_fire_ts()
        if settled is not None:
            wake.append(max(settled, self._hold_until_ts_s))
        return min(wake), precise_ts

    def _covered_by_pulse(self, fire_ts_s: float) -> bool:
        """True when the reject pulse already asserted is on at ``fire_ts_s`` (time tracking only).

        A reject due inside it moves no line: the line is on at its due moment and its resolution only
        extends the pulse, from that moment. At overload, where fail-safe rejects come every fraction of a
        millisecond, spinning for each of them took half a core at real-time priority from the inspection
        process. Encoder tracking keeps spinning: its fire times are estimates from the belt's speed."""
        until = self._pulse_until_ts_s
        return self.spec.tracking == "time" and until is not None and fire_ts_s < until and self.bank.levels[0]

    def _wait_until(self, wake_ts_s: float, precise_ts_s: float) -> None:
        """Sleep in select() on the channel until the wake time, or until ``spin_s`` before the next precise
        moment (an output that may change), then spin to that one."""
        spin_from_ts_s = precise_ts_s - self.spin_s
        hold_s = min(wake_ts_s, spin_from_ts_s, self._hold_until_ts_s) - self._clock()
        if hold_s > 0:
            time.sleep(hold_s)  # what arrives meanwhile waits in the pipe, to be read in one go
        timeout_s = min(wake_ts_s, spin_from_ts_s) - self._clock()
        if timeout_s > 0 and self.endpoint.is_peer_gone:
            time.sleep(timeout_s)
        elif timeout_s > 0:
            for message in self.endpoint.receive(timeout_s):
                self._handle(message)
            now = self._clock()
            if now < spin_from_ts_s and now < wake_ts_s:
                return  # woken early by a message: recompute the next wake
        for message in self.endpoint.read_available() if not self.endpoint.is_peer_gone else []:
            self._handle(message)  # what came since the last read, before anything is resolved
        if self._clock() < spin_from_ts_s:
            return  # a wake that moves no line (a settled pass, a covered reject, the idle wake): no spin
        while self._clock() < precise_ts_s:
            pass

    # ------------------------------------------------------------------ one round

    def run(self) -> None:
        self.endpoint.post(Message(channel.HELLO, a=float(os.getpid()), text=self.hello))
        while not self._stopping:
            wake_ts_s, precise_ts_s = self._next_wake_ts(self._clock())
            self._collect_garbage_if_quiet(min(precise_ts_s, self._clock() + IDLE_WAKE_S))
            self._wait_until(wake_ts_s, precise_ts_s)
            self.step(self._clock())
            self.endpoint.flush()
            self._hold_until_ts_s = self._clock() + self.batch_s
            if self.endpoint.is_peer_gone and len(self.tracker) == 0 and self._pulse_until_ts_s is None:
                break  # the inspection side is gone and every part it sent has been resolved
        self.shutdown()

    def _collect_garbage_if_quiet(self, wake_ts_s: float) -> None:
        """A collection never lands on a fire: only when the next due moment is GC_QUIET_S away."""
        now = self._clock()
        if self.collects_garbage and wake_ts_s - now > GC_QUIET_S and now - self._last_gc_ts_s > GC_EVERY_S:
            gc.collect()
            self._last_gc_ts_s = self._clock()

    def step(self, now: float) -> None:
        for part in list(self.tracker.pop_due(now)):
            self._fire(part, now)
        fault = self.tracker.fault_reason
        if fault != self._tracker_fault:
            self._tracker_fault = fault
            self.endpoint.post(Message(channel.TRACKING_FAULT, text=fault or ""))
        if self._pulse_until_ts_s is not None and self._clock() >= self._pulse_until_ts_s:
            self._pulse_until_ts_s = None
            self.bank.write(0, False)
        self._beat(self._clock())

    def _fire(self, part: TrackedPart, now: float, forced: FailsafeReason | None = None, fire: bool = True) -> None:
        outcome = resolve_part(part, self.spec.failsafe_rejects, forced)
        fired_ts: float | None = None
        if outcome.is_rejected and fire:
            if self._pulse_until_ts_s is None:
                if self.bank.write(0, True):
                    fired_ts = self._pulse_on_ts_s = self._clock()
            elif self._covered_by_pulse(part.fire_ts_s):
                # merged into the pulse already asserted: the line was on at its due moment (or from when the
                # pulse began, if that was later), and its own pulse width runs from there
                fired_ts = max(part.fire_ts_s, self._pulse_on_ts_s)
            else:
                fired_ts = now  # encoder tracking, or due after the pulse's end, which this step has not released yet
            if fired_ts is not None:
                self._pulse_until_ts_s = extend_pulse(self._pulse_until_ts_s, fired_ts, self.spec.pulse_width_s)
        self.endpoint.post(Message(
            channel.RESOLVED, verdict_code(outcome.verdict), part.part_id,
            channel.nan_if_none(fired_ts), part.fire_ts_s, now, reason=reason_code(outcome.failsafe_reason),
        ))

    def _beat(self, now: float) -> None:
        """READY: held or toggled as commanded, but dropped while the inspection side is silent."""
        if not self.bank.has(1) or not self._ready_wanted:
            return
        is_heard = self.endpoint.is_peer_gone is False and now - self._last_heard_ts_s <= self.spec.parent_timeout_s
        if not is_heard:
            if self.bank.levels[1]:
                self.bank.write(1, False)
            return
        if self.spec.heartbeat_period_s <= 0:
            if not self.bank.levels[1]:
                self.bank.write(1, True)
            return
        if now >= self._next_heartbeat_ts_s:
            self._heartbeat_level = not self._heartbeat_level
            self.bank.write(1, self._heartbeat_level)
            self._next_heartbeat_ts_s = now + self.spec.heartbeat_period_s / 2.0

    def shutdown(self) -> None:
        """Parts left get 'stopped' (not fired: they may not be at the diverter), outputs go safe."""
        now = self._clock()
        for part in list(self.tracker.pop_due(math.inf)):
            self._fire(part, now, forced=FailsafeReason.STOPPED, fire=False)
        self._pulse_until_ts_s = None
        self.bank.write(0, False)
        self.bank.write(1, False)
        self.endpoint.post(Message(channel.STOPPED))
        deadline = self._clock() + 1.0
        while self.endpoint.has_outbox and not self.endpoint.is_write_closed and self._clock() < deadline:
            time.sleep(0.001)
            self.endpoint.flush()
