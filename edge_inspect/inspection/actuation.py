"""The inspection side of the reject scheduler: send it parts and commands, hear what it did.

The ``ei-actuation`` thread reads the scheduler's reports (resolved parts, output edges, encoder
faults, output errors), keeps it told this process is alive, and turns a dead scheduler into a FAULT.
"""

from __future__ import annotations

import time

from ..actuation import ChannelError
from ..actuation import channel as wire
from ..actuation.schedule import reason_code, verdict_code
from ..errors import OutputError
from ..events import FailsafeReason, Verdict
from ..tracking import mark_failed
from .state import InspectorState, log


class ActuationMixin(InspectorState):
    KEEPALIVE_S = 0.05
    REPORT_BATCH_S = 0.002
    """After a batch of scheduler reports, wait this long before reading the next (one wake per batch, not per
    part). Results reach consumers up to this much later; the reject timing is the scheduler's and unchanged."""

    def scheduler_rss_mb(self) -> float | None:
        """Resident memory of the reject scheduler process (None in thread mode or when it is not running)."""
        return self._scheduler.rss_mb()

    def scheduler_cpu_s(self) -> float | None:
        """CPU seconds the reject scheduler process has used (None in thread mode or when it is not running)."""
        return self._scheduler.cpu_s()

    def _command(self, line: int, active: bool) -> None:
        """READY or ALARM as this process wants it; the scheduler drives the line (and the heartbeat)."""
        try:
            self._scheduler.command_line(line, active)
        except OutputError as error:
            name = wire.LINES[line]
            self._problems.warning(f"write-{name}", f"{name} output: {error}")

    def _safe_outputs(self) -> None:
        for line in (wire.LINES.index("reject"), wire.LINES.index("ready")):
            self._command(line, False)

    def _fail(self, part_id: int, reason: FailsafeReason) -> None:
        with self._flight_lock:
            mark_failed(self._in_flight, part_id, reason)
        self._send(wire.Message(wire.FAIL, reason_code(reason), part_id))

    def _send(self, message: wire.Message) -> None:
        try:
            self._scheduler.send(message)
        except ChannelError as error:
            if "actuation" not in self._fault_sources:  # once is enough: no wait on every later send
                self._scheduler_lost(f"{self._scheduler.exit_detail()}; {error}")

    def _actuation_loop(self) -> None:
        """Publish what the scheduler did; keep it told we are alive; watch inference for stalls."""
        next_keepalive = 0.0
        while True:
            self._loop_beats["actuator"] = self._clock()
            messages = self._scheduler.receive(0.01)
            for message in messages:
                self._on_scheduler(message)
            if messages and self.REPORT_BATCH_S > 0:
                # Nothing here is timing-critical (the scheduler fired already; edges carry its timestamps):
                # let reports gather instead of waking, and taking the interpreter lock, once per part.
                time.sleep(self.REPORT_BATCH_S)
            if self._scheduler_stopped:
                break
            if self._scheduler.is_gone:
                if self._running.is_set():
                    self._scheduler_lost(self._scheduler.exit_detail())
                break
            now = self._clock()
            if now >= next_keepalive and self._running.is_set():
                next_keepalive = now + self.KEEPALIVE_S
                self._send(wire.Message(wire.KEEPALIVE, a=now))
            self._watch_inference(now)
            self._check_done()
        self._check_done()

    def _check_done(self) -> None:
        if not self._accepting.is_set() and self._running.is_set():
            with self._flight_lock:
                idle = not self._in_flight
            if idle and not self._reject_active:
                self._all_done.set()

    def _on_scheduler(self, message: wire.Message) -> None:
        kind = message.kind
        if kind == wire.RESOLVED:
            self._finish(message)
        elif kind == wire.EDGE:
            self._scheduler.on_edge(message)
            if message.code == 0:
                self._reject_active = message.b > 0.5
        elif kind == wire.TRACKING_FAULT:
            if message.text:
                self._raise_fault("encoder", message.text)
            else:
                self._clear_fault("encoder")
        elif kind == wire.OUTPUT_ERROR:
            if message.text.startswith("scheduler start:"):
                self._raise_fault("actuation", f"reject scheduler: {message.text}")
                self._accepting.clear()
            elif message.code == 0:
                # The diverter cannot act: nothing downstream is safe any more. Stop taking parts.
                self._raise_fault("reject-output", f"reject output: {message.text}")
                self._accepting.clear()
            else:
                name = wire.LINES[message.code]
                self._problems.warning(f"write-{name}", f"{name} output: {message.text}")
        elif kind == wire.HELLO:
            self.scheduler_realtime = message.text
            log.info("reject scheduler (%s): %s", self._scheduler.mode, message.text)
        elif kind == wire.STOPPED:
            self._scheduler_stopped = True

    def _scheduler_lost(self, detail: str) -> None:
        """The scheduler died or stopped reading: FAULT, take no more parts, outputs safe (READY off)."""
        if "actuation" in self._fault_sources:
            return
        self._accepting.clear()
        self._raise_fault("actuation", f"reject scheduler stopped ({detail}): parts can no longer be rejected")
        self._command(wire.LINES.index("reject"), False)
        self._finish_left_behind(FailsafeReason.STOPPED)

    def _finish_left_behind(self, reason: FailsafeReason) -> None:
        """Parts the scheduler never reported: fail-safe, counted as not actuated (no pulse was seen)."""
        with self._flight_lock:
            parts = sorted(self._in_flight)
        for part_id in parts:
            self._finish(wire.Message(
                wire.RESOLVED, verdict_code(Verdict.FAILSAFE), part_id, float("nan"), float("nan"), self._clock(),
                reason=reason_code(reason),
            ))
        if parts:
            self._all_done.set()
