"""The fault/alarm state machine: FAULT stops the line's trust (READY off, ALARM on), an alarm only warns.

State and reason are one frozen :class:`RunPhase` swapped under ``_phase_lock``; outputs are
commanded before the state changes, so whoever sees FAULT sees ALARM on. Listeners hear every change.
"""

from __future__ import annotations

from ..actuation import channel as wire
from ..events import RunPhase, RunState
from .state import InspectorState, log


class FaultsMixin(InspectorState):
    def _notify(self, kind: str, key: str, reason: str | None) -> None:
        for listener in self.condition_listeners:
            try:
                listener(kind, key, reason)
            except Exception:  # a listener's bug must not stop the line
                log.exception("condition listener failed")

    def _set_phase(self, state: RunState) -> None:
        with self._phase_lock:
            self._phase = RunPhase(state, self._phase.fault_reason)

    def _raise_fault(self, key: str, reason: str) -> None:
        self._notify("fault", key, reason)
        with self._phase_lock:  # outputs first, then the state: whoever sees FAULT sees ALARM on
            self._fault_sources[key] = reason
            was_fault = self._phase.state is RunState.FAULT
            self._command(wire.LINES.index("alarm"), True)
            self._command(wire.LINES.index("ready"), False)
            self._phase = RunPhase(RunState.FAULT, "; ".join(self._fault_sources.values()))
        if not was_fault:
            log.error("FAULT: %s", reason)

    def raise_alarm(self, key: str, reason: str) -> None:
        """Assert ALARM and show ``reason`` without stopping the line (a consumer's problem, not the loop's)."""
        if key not in self._alarms:
            log.warning("ALARM: %s", reason)
        self._notify("alarm", key, reason)
        self._alarms[key] = reason
        self._command(wire.LINES.index("alarm"), True)

    def clear_alarm(self, key: str) -> None:
        if self._alarms.pop(key, None) is None:
            return
        self._notify("alarm", key, None)
        if not self._alarms and self._phase.state is not RunState.FAULT:
            self._command(wire.LINES.index("alarm"), False)

    def _clear_fault(self, key: str) -> None:
        if key not in self._fault_sources:  # the common case, every frame: no lock
            return
        with self._phase_lock:
            if key not in self._fault_sources:
                return
            del self._fault_sources[key]
            reason = "; ".join(self._fault_sources.values()) or None
            is_running = not self._fault_sources and self._running.is_set()
            if is_running:
                self._command(wire.LINES.index("alarm"), bool(self._alarms))
                self._command(wire.LINES.index("ready"), True)
            self._phase = RunPhase(RunState.RUNNING if is_running else self._phase.state, reason)
        self._notify("fault", key, None)
        log.warning("recovered: %s", key)

    @property
    def state(self) -> RunState:
        return self._phase.state

    def phase(self) -> RunPhase:
        """The run state with its fault reason, read together."""
        return self._phase
