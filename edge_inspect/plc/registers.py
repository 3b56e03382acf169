"""The Modbus register map, defined once as data: docs/PLC.md and ``edge-inspect plc map`` render it.

Four Modbus tables, addresses 0-based (as on the wire; a PLC tool counting from 1 adds one):
coils (PLC -> appliance control bits), discrete inputs (status bits), holding registers (PLC ->
appliance values) and input registers (data). 32-bit values take two registers, high word first.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..events import FailsafeReason, Verdict

Table = Literal["coil", "discrete_input", "holding_register", "input_register"]
TABLES: tuple[Table, ...] = ("coil", "discrete_input", "holding_register", "input_register")
TABLE_TITLES = {
    "coil": "Coils (function codes 1, 5, 15): control bits written by the PLC",
    "discrete_input": "Discrete inputs (function code 2): status bits, read-only",
    "holding_register": "Holding registers (function codes 3, 6, 16): values written by the PLC",
    "input_register": "Input registers (function code 4): data, read-only",
}
BIT_TABLE_SIZE = 16  # coils and discrete inputs are served in one 16-bit block: unlisted bits read 0


@dataclass(frozen=True)
class Signal:
    """One entry of the register map."""

    name: str
    table: Table
    address: int
    width_bits: int  # 1 (coil, discrete input), 16 or 32
    type: Literal["bool", "uint16", "uint32"]
    meaning: str

    @property
    def registers(self) -> int:
        """How many 16-bit registers (or bits) the signal occupies."""
        return 2 if self.width_bits == 32 else 1

    @property
    def is_writable(self) -> bool:
        return self.table in ("coil", "holding_register")


class ResultCode(enum.IntEnum):
    """``result_code``: what was decided about the part."""

    NONE = 0
    GOOD = 1
    DEFECT = 2
    FAILSAFE = 3


RESULT_CODES = {Verdict.GOOD: ResultCode.GOOD, Verdict.DEFECT: ResultCode.DEFECT, Verdict.FAILSAFE: ResultCode.FAILSAFE}

FAILSAFE_CODES: dict[FailsafeReason, int] = {reason: number for number, reason in enumerate(FailsafeReason, 1)}
"""``result_failsafe_reason``: 0 none, then FailsafeReason in declaration order (1 deadline, ...)."""


class ErrorCode(enum.IntEnum):
    """``error_code``: the latest problem the PLC interface saw; latched until ``clear_fault``."""

    NONE = 0
    APPLIANCE_FAULT = 1  # the appliance is in FAULT (camera, classifier, reject output): see the web view
    TRIGGER_DISABLED = 2  # a trigger edge while trigger_enable was off
    TRIGGER_NOT_RUNNING = 3  # a trigger edge while inspection was not running (not a part)
    TRIGGER_NOT_FIELDBUS = 4  # a trigger edge but trigger.input is not type "modbus"
    MODEL_LOAD_FAILED = 5  # model select: the file failed to load or its self-test
    RESULTS_OVERRUN = 6  # a result was dropped because the PLC did not acknowledge in time


def _coil(address: int, name: str, meaning: str) -> Signal:
    return Signal(name, "coil", address, 1, "bool", meaning)


def _status(address: int, name: str, meaning: str) -> Signal:
    return Signal(name, "discrete_input", address, 1, "bool", meaning)


def _word(address: int, name: str, meaning: str, table: Table = "input_register") -> Signal:
    return Signal(name, table, address, 16, "uint16", meaning)


def _dword(address: int, name: str, meaning: str) -> Signal:
    return Signal(name, "input_register", address, 32, "uint32", meaning)


REGISTER_MAP: tuple[Signal, ...] = (
    _coil(0, "trigger_enable", "1: trigger edges are accepted; 0: they are refused (error_code 2)."),
    _coil(1, "trigger", "Rising edge (0 -> 1) = a part is under the camera now; drop it to 0 after trigger_ack."),
    _coil(2, "results_ack", "Rising edge: the PLC has read the presented result; drop it to 0 for the next one."),
    _coil(3, "reset_counters", "Rising edge: zero the inspected/good/rejected/fail-safe counters."),
    _coil(4, "clear_fault", "Rising edge: clear missed_acquisition, results_overrun and error_code."),
    _status(0, "online", "Inspecting (state RUNNING, not FAULT)."),
    _status(1, "trigger_ready", "A trigger edge now would be accepted (online, enabled, fieldbus trigger)."),
    _status(2, "trigger_ack", "The last trigger edge was accepted; falls when the PLC drops trigger."),
    _status(3, "busy", "Parts in flight (captured, not yet resolved) or a model being loaded."),
    _status(4, "missed_acquisition", "A trigger was not served (no frame, refused); latched until clear_fault."),
    _status(5, "results_valid", "The result registers hold an unacknowledged result."),
    _status(6, "results_overrun", "A result was dropped (FIFO full, PLC too slow); latched until clear_fault."),
    _status(7, "fault", "The appliance is in FAULT (parts are fail-safed); clears itself with the cause."),
    _status(8, "alarm", "An alarm is raised (e.g. QA disk low) or FAULT; the line keeps running on an alarm."),
    _status(9, "last_part_good", "The newest part (not the presented one) was good."),
    _status(10, "inspection_completed", "Toggles on every finished part, so the PLC never misses an edge."),
    _status(11, "model_loading", "A model selected by number is being loaded and self-tested."),
    _word(0, "model_select", "Model number to inspect with from the next part (0 = model.path); "
          "an unconfigured number is refused (ILLEGAL_DATA_VALUE).", table="holding_register"),
    _word(0, "status_bits", "The discrete inputs as one word: bit n = discrete input n."),
    _word(1, "acquisition_id", "Id of the last accepted fieldbus trigger (1..65535, wraps, 0 = none yet)."),
    _word(2, "result_inspection_id", "Presented result: inspection id (part id, 1..65535, wraps; 0 = none)."),
    _word(3, "result_acquisition_id", "Presented result: the acquisition_id of its trigger (0 = not a "
          "fieldbus trigger)."),
    _word(4, "result_code", "Presented result: 0 none, 1 good, 2 defect, 3 fail-safe."),
    _word(5, "result_failsafe_reason", "Presented result: 0 none, 1 deadline, 2 classifier_error, 3 queue_full, "
          "4 missed_trigger, 5 camera_fault, 6 stopped."),
    _word(6, "result_defect_score", "Presented result: highest region defect score x 10000 (0..10000)."),
    _word(7, "result_latency", "Presented result: capture to verdict, 0.1 ms units (0 = no verdict)."),
    _word(8, "result_rejected", "Presented result: 1 if the reject output fired for it."),
    _word(9, "results_pending", "Results in the FIFO, the presented one included."),
    _word(10, "model_id", "Model number in use (0 = model.path)."),
    _word(11, "error_code", "0 none, 1 appliance fault, 2 trigger disabled, 3 trigger while not running, "
          "4 trigger input not modbus, 5 model load failed, 6 results overrun."),
    _word(12, "results_dropped", "Results dropped by FIFO overrun (wraps at 65536)."),
    _word(13, "last_inspection_id", "Inspection id of the newest part."),
    _word(14, "last_latency", "Newest part: capture to verdict, 0.1 ms units."),
    _word(15, "run_state", "0 stopped, 1 starting, 2 running, 3 fault."),
    _dword(16, "inspected", "Parts inspected since the last counter reset."),
    _dword(18, "good", "Good parts."),
    _dword(20, "rejected", "Parts the reject output fired for (defects and fail-safes)."),
    _dword(22, "failsafe", "Parts given the fail-safe verdict."),
    _dword(24, "events_dropped", "Results the PLC interface could not take from the appliance (queue full)."),
)


def signals(table: Table) -> tuple[Signal, ...]:
    return tuple(s for s in REGISTER_MAP if s.table == table)


def by_name(name: str) -> Signal:
    for signal in REGISTER_MAP:
        if signal.name == name:
            return signal
    raise KeyError(name)


def table_size(table: Table) -> int:
    """Registers (or bits) in ``table``: up to the end of its last signal."""
    return max(s.address + s.registers for s in signals(table))


def map_as_json() -> list[dict[str, Any]]:
    return [{**asdict(s), "access": "read-write" if s.is_writable else "read-only"} for s in REGISTER_MAP]


def map_as_markdown() -> str:
    """The map as Markdown tables, one per Modbus table (embedded in docs/PLC.md)."""
    lines: list[str] = []
    for table in TABLES:
        lines += [f"#### {TABLE_TITLES[table]}", "",
            "| address | name | width | type | meaning |", "|---|---|---|---|---|"]
        for s in signals(table):
            address = f"{s.address}-{s.address + 1}" if s.registers == 2 else str(s.address)
            lines.append(f"| {address} | `{s.name}` | {s.width_bits} bit | {s.type} | {s.meaning} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
