"""The PLC handshake as pure state (no network): result FIFO, ids, trigger ties, the register map."""

from __future__ import annotations

import json
import re

import pytest

from edge_inspect.cli import main
from edge_inspect.config import config_from_dict
from edge_inspect.config.loader import PROJECT_ROOT
from edge_inspect.errors import ConfigError
from edge_inspect.events import FailsafeReason, PartResult, RegionResult, RunState, Verdict
from edge_inspect.plc import registers as reg
from edge_inspect.plc.handshake import ApplianceView, Handshake, ResultEntry, ResultFifo, wrap16
from edge_inspect.plc.registers import ErrorCode


def entry(number: int) -> ResultEntry:
    return ResultEntry(number, 0, 1, 0, 0, 0, 0)


def part(part_id: int, capture_ts_s: float, verdict: Verdict = Verdict.GOOD,
         reason: FailsafeReason | None = None, score: float = 0.2) -> PartResult:
    regions = () if verdict is Verdict.FAILSAFE else (RegionResult("all", 0, 0, 8, 8, score, score > 0.5),)
    return PartResult(part_id, f"run-{part_id}", part_id, capture_ts_s, 1e9 + capture_ts_s, verdict, reason,
                      verdict is not Verdict.GOOD, regions, 0.5, "m", "1", None if reason else 12.34,
                      capture_ts_s + 0.06, None)


class FakeActions:
    def __init__(self, refusal: ErrorCode | None = None) -> None:
        self.refusal = refusal
        self.edges: list[float] = []
        self.resets = 0

    def fire_trigger(self, edge_ts_s: float) -> ErrorCode | None:
        if self.refusal is None:
            self.edges.append(edge_ts_s)
        return self.refusal

    def reset_counters(self) -> None:
        self.resets += 1

    def select_model(self, number: int) -> bool:
        return number in (0, 1)


@pytest.mark.parametrize(("number", "expected"), [(0, 0), (1, 1), (65535, 65535), (65536, 1), (65537, 2)])
def test_ids_count_1_to_65535_and_wrap(number: int, expected: int) -> None:
    assert wrap16(number) == expected


def test_fifo_presents_in_order_and_pops_on_the_ack_edge() -> None:
    fifo = ResultFifo(8)
    for number in (1, 2, 3):
        assert fifo.push(entry(number))
    assert fifo.presented == entry(1) and fifo.is_valid
    fifo.acknowledge(True)
    assert fifo.presented is None and not fifo.is_valid
    fifo.acknowledge(True)  # a level held high is not another ack
    fifo.push(entry(4))  # arrives while ack is high: not presented yet
    assert not fifo.is_valid
    fifo.acknowledge(False)
    assert fifo.presented == entry(2)
    for expected in (2, 3, 4):
        assert fifo.presented == entry(expected)
        fifo.acknowledge(True)
        fifo.acknowledge(False)
    assert not fifo.is_valid and not fifo.entries


@pytest.mark.parametrize(("size", "pushed", "survivors"), [
    (8, 12, [1, 6, 7, 8, 9, 10, 11, 12]),  # presented one kept, oldest unpresented dropped, newest kept
    (3, 4, [1, 3, 4]),
    (1, 3, [3]),  # one slot: the newest replaces the presented one (its id tells the PLC)
])
def test_full_fifo_drops_the_oldest_unpresented_never_the_newest(size: int, pushed: int, survivors: list[int]) -> None:
    fifo = ResultFifo(size)
    results = [fifo.push(entry(n)) for n in range(1, pushed + 1)]
    assert results == [True] * size + [False] * (pushed - size)
    assert [e.inspection_id for e in fifo.entries] == survivors
    assert fifo.dropped == pushed - size


def test_trigger_edges_ack_and_tie_results_to_acquisitions() -> None:
    actions = FakeActions()
    handshake = Handshake(actions, 8, trigger_window_s=0.04)
    handshake.write_coils(1, [True], now_s=10.0)  # trigger_enable is off: refused
    assert actions.edges == [] and handshake.missed_acquisition
    assert handshake.error_code is ErrorCode.TRIGGER_DISABLED
    handshake.write_coils(1, [False], now_s=10.1)
    handshake.write_coils(4, [True], now_s=10.2)  # clear_fault
    assert not handshake.missed_acquisition and handshake.error_code is ErrorCode.NONE
    handshake.write_coils(0, [True, True], now_s=11.0)  # enable and trigger in one write
    assert actions.edges == [11.0] and handshake.trigger_ack
    handshake.write_coils(1, [True], now_s=11.01)  # still high: no new edge
    assert actions.edges == [11.0]
    handshake.write_coils(1, [False], now_s=11.02)
    assert not handshake.trigger_ack
    handshake.write_coils(1, [True], now_s=12.0)
    handshake.write_coils(1, [False], now_s=12.01)
    handshake.add_result(part(7, 11.015))  # frame 15 ms after the first edge
    handshake.add_result(part(8, 12.0, Verdict.FAILSAFE, FailsafeReason.MISSED_TRIGGER))
    handshake.add_result(part(9, 20.0))  # not from the fieldbus (e.g. the HTTP trigger)
    assert [(e.inspection_id, e.acquisition_id) for e in handshake.fifo.entries] == [(7, 1), (8, 2), (9, 0)]
    assert handshake.missed_acquisition  # the missed trigger is signalled
    failsafe = handshake.fifo.entries[1]
    assert (failsafe.result_code, failsafe.failsafe_reason, failsafe.latency) == (3, 4, 0)


def test_register_images_follow_the_map() -> None:
    handshake = Handshake(FakeActions(), 8)
    from edge_inspect.events import LatencySummary, StatusSnapshot

    status = StatusSnapshot(RunState.RUNNING, None, 70000, 69999, 1, 0, 1, 0, 0, 0, {}, {}, 99.9, 60.0,
                            LatencySummary(None, None, None, 0), "m", "1", 0.5, 1.0)
    handshake.update_view(ApplianceView(status=status, parts_in_flight=2, model_id=3))
    handshake.add_result(part(70000, 1.0, Verdict.DEFECT, score=0.87654))
    words = handshake.input_registers()
    assert len(words) == reg.table_size("input_register")
    at = {s.name: s.address for s in reg.signals("input_register")}
    assert words[at["inspected"]] == 70000 >> 16 and words[at["inspected"] + 1] == 70000 & 0xFFFF
    assert words[at["result_inspection_id"]] == wrap16(70000) == 4465
    assert words[at["result_defect_score"]] == 8765 and words[at["result_code"]] == 2
    assert words[at["result_latency"]] == 123 and words[at["model_id"]] == 3 and words[at["run_state"]] == 2
    bits = handshake.status_bits()
    names = [s.name for s in reg.signals("discrete_input")]
    on = {name for name, bit in zip(names, bits) if bit}
    assert on == {"online", "busy", "results_valid", "inspection_completed"}
    assert words[at["status_bits"]] == sum(1 << names.index(n) for n in on)


def test_model_select_refuses_unconfigured_numbers() -> None:
    handshake = Handshake(FakeActions(), 8)
    assert handshake.write_model_select(1) and handshake.holding_registers() == [1]
    assert not handshake.write_model_select(5) and handshake.holding_registers() == [1]


def test_map_has_no_overlaps_and_fits_its_tables() -> None:
    for table in reg.TABLES:
        used: set[int] = set()
        for signal in reg.signals(table):
            cells = set(range(signal.address, signal.address + signal.registers))
            assert not used & cells, f"{signal.name} overlaps"
            used |= cells
    assert reg.table_size("coil") <= reg.BIT_TABLE_SIZE and reg.table_size("discrete_input") <= reg.BIT_TABLE_SIZE
    assert len({s.name for s in reg.REGISTER_MAP}) == len(reg.REGISTER_MAP)


def test_docs_show_the_current_register_map() -> None:
    doc = (PROJECT_ROOT / "docs" / "PLC.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- register-map:begin -->\n(.*?)<!-- register-map:end -->", doc, re.S)
    assert found, "docs/PLC.md lacks the register-map markers"
    assert found.group(1) == reg.map_as_markdown(), "docs/PLC.md is stale: paste `edge-inspect plc map` in"


def test_plc_map_command_prints_the_map_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plc", "map", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == reg.map_as_json()
    assert {"name", "table", "address", "width_bits", "type", "meaning", "access"} <= set(printed[0])


def test_modbus_trigger_needs_the_modbus_server() -> None:
    with pytest.raises((ConfigError, ValueError), match=r"needs \[plc.modbus\] enabled"):
        config_from_dict({"trigger": {"mode": "triggered", "input": {"type": "modbus"}}})
    config = config_from_dict({"trigger": {"mode": "triggered", "input": {"type": "modbus"}},
                               "plc": {"modbus": {"enabled": True}, "models": {"2": "models/b.onnx"}}})
    assert config.plc.enabled and config.plc.models[2].name == "b.onnx"
    with pytest.raises((ConfigError, ValueError), match=r"outside 1\.\.65535"):
        config_from_dict({"plc": {"models": {"0": "a.onnx"}}})
