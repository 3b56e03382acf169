"""The PLC handshake as plain state: control bits in, result FIFO, status bits and data words out.

No I/O and no clock of its own (times are passed in), so the whole handshake is tested without a
network; the Modbus server (modbus_server.py) only validates addresses and calls these methods.
Sequence and rules: docs/PLC.md ("The handshake").
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..events import PartResult, RunState, StatusSnapshot, Verdict
from . import registers as reg
from .registers import FAILSAFE_CODES, RESULT_CODES, ErrorCode

WORD = 0xFFFF
UINT32 = 0xFFFFFFFF


def wrap16(number: int) -> int:
    """An id in 1..65535 (0 stays "none"): counts up and wraps past 65535 to 1."""
    return (number - 1) % 65535 + 1 if number > 0 else 0


@dataclass(frozen=True)
class ResultEntry:
    """One result as the PLC sees it (all fields already in register units)."""

    inspection_id: int
    acquisition_id: int
    result_code: int
    failsafe_reason: int
    defect_score: int  # x 10000
    latency: int  # 0.1 ms units, 0 = no verdict
    rejected: int

    @classmethod
    def from_result(cls, result: PartResult, acquisition_id: int) -> ResultEntry:
        score = max((r.defect_score for r in result.regions), default=0.0)
        latency = 0 if result.latency_ms is None else min(max(round(result.latency_ms * 10.0), 1), WORD)
        return cls(
            inspection_id=wrap16(result.part_id),
            acquisition_id=acquisition_id,
            result_code=int(RESULT_CODES[result.verdict]),
            failsafe_reason=FAILSAFE_CODES[result.failsafe_reason] if result.failsafe_reason else 0,
            defect_score=min(max(round(score * 10000.0), 0), 10000),
            latency=latency,
            rejected=int(result.is_rejected),
        )


class ResultFifo:
    """Results waiting for the PLC. The front one is presented while ``is_valid``; an ack pops it.

    Full: the oldest result *not* being presented is dropped (the presented one may be mid-read, and
    the newest is never lost); with a single slot the newest replaces the presented one.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: deque[ResultEntry] = deque()
        self.is_valid = False
        self.is_ack_high = False
        self.dropped = 0

    def push(self, entry: ResultEntry) -> bool:
        """Queue a result; False when one had to be dropped (overrun)."""
        overrun = len(self.entries) >= self.max_entries
        if overrun:
            self.dropped += 1
            del self.entries[1 if self.is_valid and len(self.entries) > 1 else 0]
        self.entries.append(entry)
        if not self.is_ack_high:
            self.is_valid = True
        return not overrun

    def acknowledge(self, is_high: bool) -> None:
        """The PLC's results_ack level: a rising edge pops the presented result, falling presents the next."""
        if is_high and not self.is_ack_high:
            if self.is_valid and self.entries:
                self.entries.popleft()
            self.is_valid = False
        elif not is_high and self.is_ack_high:
            self.is_valid = bool(self.entries)
        self.is_ack_high = is_high

    @property
    def presented(self) -> ResultEntry | None:
        return self.entries[0] if self.is_valid and self.entries else None


class PlcActions(Protocol):
    """What the handshake asks of the appliance (the server binds these to the Inspector)."""

    def fire_trigger(self, edge_ts_s: float) -> ErrorCode | None:
        """Start a part for this edge; the refusal's code, or None when accepted."""

    def reset_counters(self) -> None: ...

    def select_model(self, number: int) -> bool:
        """Start loading model ``number``; False when no such model is configured."""


@dataclass(frozen=True)
class ApplianceView:
    """What the registers show of the appliance, refreshed periodically (never read in a request)."""

    status: StatusSnapshot | None = None
    parts_in_flight: int = 0
    model_id: int = 0
    is_model_loading: bool = False
    model_failures: int = 0  # model loads that failed so far (each one latches error_code 5)
    events_dropped: int = 0


_RUN_STATE_CODES = {RunState.STOPPED: 0, RunState.STARTING: 1, RunState.RUNNING: 2, RunState.FAULT: 3}
_COILS = [s.name for s in reg.signals("coil")]


class Handshake:
    """Control bits, the result FIFO, status bits and data words of one Modbus server (thread-safe)."""

    def __init__(self, actions: PlcActions, fifo_entries: int = 8, trigger_window_s: float = 0.04) -> None:
        self.actions = actions
        self.trigger_window_s = trigger_window_s
        self.fifo = ResultFifo(fifo_entries)
        self.lock = threading.Lock()
        self.coils = dict.fromkeys(_COILS, False)
        self.model_select = 0
        self.view = ApplianceView()
        self.acquisitions = 0  # fieldbus triggers accepted (acquisition_id = wrap16 of it)
        self.triggers_refused = 0
        self.trigger_ack = False
        self.missed_acquisition = False
        self.overrun = False
        self.error_code = ErrorCode.NONE
        self.completed_toggle = False
        self.last_part_good = False
        self.last_inspection_id = 0
        self.last_latency = 0
        self._model_failures_seen = 0
        self._version = 0  # bumped by every change: register images are rebuilt only after one
        self._images: dict[str, tuple[int, list[Any]]] = {}
        self._pending: deque[tuple[int, float]] = deque()  # (acquisition id, edge time) awaiting a result

    # ------------------------------------------------------------------ PLC writes

    def write_coils(self, address: int, values: list[bool], now_s: float) -> None:
        """Apply a write of ``values`` starting at coil ``address`` (addresses already validated)."""
        with self.lock:
            self._version += 1
            for offset, value in enumerate(values):
                name = _COILS[address + offset]
                was = self.coils[name]
                self.coils[name] = bool(value)
                self._on_coil(name, was, bool(value), now_s)

    def _on_coil(self, name: str, was: bool, now: bool, now_s: float) -> None:
        rising = now and not was
        if name == "trigger":
            if rising:
                self._trigger(now_s)
            elif not now:
                self.trigger_ack = False
        elif name == "results_ack":
            self.fifo.acknowledge(now)
        elif name == "reset_counters" and rising:
            self.actions.reset_counters()
        elif name == "clear_fault" and rising:
            self.missed_acquisition = self.overrun = False
            self.error_code = ErrorCode.NONE

    def _trigger(self, edge_ts_s: float) -> None:
        refusal = ErrorCode.TRIGGER_DISABLED if not self.coils["trigger_enable"] else None
        if refusal is None:
            refusal = self.actions.fire_trigger(edge_ts_s)
        if refusal is not None:
            self.triggers_refused += 1
            self.missed_acquisition = True
            self.error_code = refusal
            return
        self.acquisitions += 1
        self.trigger_ack = True
        self._pending.append((wrap16(self.acquisitions), edge_ts_s))
        while len(self._pending) > 1024:  # triggers that never became parts (appliance stopped meanwhile)
            self._pending.popleft()

    def write_model_select(self, number: int) -> bool:
        """The PLC selects a model; False (nothing changes) when ``number`` is not configured."""
        with self.lock:
            self._version += 1
            if not self.actions.select_model(number):
                return False
            self.model_select = number
            return True

    # ------------------------------------------------------------------ appliance side

    def add_result(self, result: PartResult) -> None:
        """A finished part: tie it to its fieldbus trigger, queue it, toggle inspection_completed."""
        with self.lock:
            self._version += 1
            entry = ResultEntry.from_result(result, self._acquisition_for(result.capture_ts_s))
            if not self.fifo.push(entry):
                self.overrun = True
                self.error_code = ErrorCode.RESULTS_OVERRUN
            if result.failsafe_reason is not None and result.failsafe_reason.value == "missed_trigger":
                self.missed_acquisition = True
            self.completed_toggle = not self.completed_toggle
            self.last_part_good = result.verdict is Verdict.GOOD
            self.last_inspection_id = entry.inspection_id
            self.last_latency = entry.latency

    def _acquisition_for(self, capture_ts_s: float) -> int:
        """The fieldbus trigger this part served: its frame lies within the matching window of the edge."""
        window_s = self.trigger_window_s + 1e-6
        while self._pending and self._pending[0][1] < capture_ts_s - 2 * window_s:
            self._pending.popleft()  # older than any frame that could serve it: it made no part
        for index, (acquisition_id, edge_ts_s) in enumerate(self._pending):
            if abs(edge_ts_s - capture_ts_s) <= window_s:
                del self._pending[index]
                return acquisition_id
        return 0

    def update_view(self, view: ApplianceView) -> None:
        with self.lock:
            self._version += 1
            self.view = view
            if view.status is not None and view.status.state is RunState.FAULT:
                self.error_code = self.error_code or ErrorCode.APPLIANCE_FAULT
            if view.model_failures > self._model_failures_seen:
                self._model_failures_seen = view.model_failures
                self.error_code = ErrorCode.MODEL_LOAD_FAILED

    # ------------------------------------------------------------------ register images

    def _cached(self, key: str, build: Callable[[], list[Any]]) -> list[Any]:
        with self.lock:
            cached = self._images.get(key)
            if cached is None or cached[0] != self._version:
                cached = (self._version, build())
                self._images[key] = cached
            return cached[1]

    def coil_bits(self) -> list[bool]:
        return self._cached("coils", lambda: [self.coils[name] for name in _COILS])

    def status_bits(self) -> list[bool]:
        return self._cached("status", self._status_bits)

    def _status_bits(self) -> list[bool]:
        status = self.view.status
        state = status.state if status is not None else RunState.STOPPED
        online = state is RunState.RUNNING
        is_loading = self.view.is_model_loading
        bits = {
            "online": online,
            "trigger_ready": online and self.coils["trigger_enable"] and not self.coils["trigger"],
            "trigger_ack": self.trigger_ack,
            "busy": self.view.parts_in_flight > 0 or is_loading,
            "missed_acquisition": self.missed_acquisition,
            "results_valid": self.fifo.is_valid,
            "results_overrun": self.overrun,
            "fault": state is RunState.FAULT,
            "alarm": state is RunState.FAULT or bool(status is not None and status.alarms),
            "last_part_good": self.last_part_good,
            "inspection_completed": self.completed_toggle,
            "model_loading": is_loading,
        }
        return [bits[s.name] for s in reg.signals("discrete_input")]

    def holding_registers(self) -> list[int]:
        with self.lock:
            return [self.model_select]

    def input_registers(self) -> list[int]:
        """The input-register table, address 0 first."""
        return self._cached("input", self._input_registers)

    def _input_registers(self) -> list[int]:
        bits = self._status_bits()
        presented = self.fifo.presented
        status = self.view.status
        values: dict[str, int] = {
            "status_bits": sum(1 << i for i, bit in enumerate(bits) if bit),
            "acquisition_id": wrap16(self.acquisitions),
            "results_pending": len(self.fifo.entries),
            "model_id": self.view.model_id,
            "error_code": int(self.error_code),
            "results_dropped": self.fifo.dropped & WORD,
            "last_inspection_id": self.last_inspection_id,
            "last_latency": self.last_latency,
            "run_state": _RUN_STATE_CODES[status.state] if status is not None else 0,
            "events_dropped": self.view.events_dropped,
        }
        if presented is not None:
            values.update(
                result_inspection_id=presented.inspection_id,
                result_acquisition_id=presented.acquisition_id,
                result_code=presented.result_code,
                result_failsafe_reason=presented.failsafe_reason,
                result_defect_score=presented.defect_score,
                result_latency=presented.latency,
                result_rejected=presented.rejected,
            )
        if status is not None:
            values.update(
                inspected=status.inspected, good=status.good, rejected=status.rejected, failsafe=status.failsafe
            )
        words = [0] * reg.table_size("input_register")
        for signal in reg.signals("input_register"):
            value = values.get(signal.name, 0)
            if signal.width_bits == 32:
                value &= UINT32
                words[signal.address], words[signal.address + 1] = value >> 16, value & WORD
            else:
                words[signal.address] = value & WORD
        return words
