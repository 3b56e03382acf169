"""Helpers for the PLC tests: a PLC played by a real pymodbus client, and a triggered appliance."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from conftest import build_inspector, make_config, solid_image

from edge_inspect.config import AppConfig
from edge_inspect.events import PartResult
from edge_inspect.pipeline import Inspector
from edge_inspect.plc import registers as reg
from edge_inspect.plc.service import PlcService
from edge_inspect.triggers.modbus import ModbusTrigger

WAIT_S = 20.0  # generous: the machine is shared


def wait_for(condition: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)


def level_folder(path: Path, level: int, frames: int = 4) -> Path:
    """A replay folder whose frames all score the same way with the brightness model."""
    path.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        cv2.imwrite(str(path / f"f{i:02d}.png"), solid_image(level))
    return path


def plc_config(model: Path, frames: Path, **sections: dict[str, Any]) -> AppConfig:
    """A triggered appliance whose trigger is the Modbus coil, Modbus server on a free port."""
    plc = {"modbus": {"enabled": True, "port": 0, "status_refresh_ms": 10.0}}
    plc.update(sections.pop("plc", {}))
    # a budget a loaded machine meets: these tests check what the PLC reads, so a part's verdict must not
    # become a deadline fail-safe (CI-class machines with both cores busy missed the 60 ms default)
    sections.setdefault("line", {"travel_delay_ms": 400.0, "latency_budget_ms": 350.0, "pulse_width_ms": 10.0})
    return make_config(
        model, frames,
        trigger={"mode": "triggered", "input": {"type": "modbus"}},
        plc=plc,
        **sections,
    )


class Plc:
    """A PLC: a real pymodbus TCP client with the register map's names."""

    def __init__(self, port: int, unit_id: int = 1) -> None:
        from pymodbus.client import ModbusTcpClient

        self.unit_id = unit_id
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
        assert self.client.connect()

    def close(self) -> None:
        self.client.close()

    def set(self, name: str, value: bool) -> Any:
        signal = reg.by_name(name)
        assert signal.table == "coil"
        return self.client.write_coil(signal.address, value, device_id=self.unit_id)

    def status(self) -> dict[str, bool]:
        response = self.client.read_discrete_inputs(0, count=reg.BIT_TABLE_SIZE, device_id=self.unit_id)
        assert not response.isError(), response
        return {s.name: response.bits[s.address] for s in reg.signals("discrete_input")}

    def coils(self) -> dict[str, bool]:
        response = self.client.read_coils(0, count=len(reg.signals("coil")), device_id=self.unit_id)
        assert not response.isError(), response
        return {s.name: response.bits[s.address] for s in reg.signals("coil")}

    def words(self) -> dict[str, int]:
        response = self.client.read_input_registers(0, count=reg.table_size("input_register"), device_id=self.unit_id)
        assert not response.isError(), response
        words = response.registers
        out = {}
        for s in reg.signals("input_register"):
            value = words[s.address]
            if s.width_bits == 32:
                value = (value << 16) | words[s.address + 1]
            out[s.name] = value
        return out

    def trigger(self) -> int:
        """Pulse the trigger with the handshake: raise, wait for trigger_ack, drop; the acquisition id."""
        assert not self.set("trigger", True).isError()
        wait_for(lambda: self.status()["trigger_ack"], what="trigger_ack")
        acquisition_id = self.words()["acquisition_id"]
        assert not self.set("trigger", False).isError()
        wait_for(lambda: not self.status()["trigger_ack"], what="trigger_ack to fall")
        return acquisition_id

    def take_result(self) -> dict[str, int]:
        """Wait for results_valid, read the result, acknowledge it (raise ack, drop ack)."""
        wait_for(lambda: self.status()["results_valid"], what="results_valid")
        words = self.words()
        assert not self.set("results_ack", True).isError()
        wait_for(lambda: not self.status()["results_valid"], what="results_valid to fall")
        assert not self.set("results_ack", False).isError()
        return words


@dataclass
class Appliance:
    """A running triggered Inspector with the PLC service, and a subscription that sees every part."""

    inspector: Inspector
    service: PlcService
    results: Any

    @property
    def port(self) -> int:
        assert self.service.modbus is not None and self.service.modbus.port is not None
        return self.service.modbus.port

    def parts(self, count: int) -> list[PartResult]:
        """The next ``count`` finished parts (waits for each)."""
        out = []
        for _ in range(count):
            result = self.results.get(timeout_s=WAIT_S)
            assert result is not None, "no part finished in time"
            out.append(result)
        return out

    def assert_accounting(self) -> None:
        """started = finished = good + defect + fail-safe, once nothing is in flight."""
        inspector = self.inspector
        wait_for(lambda: inspector.parts_started == inspector.parts_finished, what="parts in flight to finish")
        status = inspector.status()
        assert inspector.parts_started == inspector.parts_finished
        assert inspector.parts_finished == status.good + status.defect + status.failsafe


@contextlib.contextmanager
def running_appliance(config: AppConfig, classifier: Any = None) -> Iterator[Appliance]:
    trigger = ModbusTrigger()
    inspector = build_inspector(config, classifier, trigger=trigger)
    results = inspector.subscribe("test", max_items=1000)
    service = PlcService(config, inspector)
    service.start()
    inspector.start()
    try:
        wait_for(lambda: inspector.status().state.value == "RUNNING", what="RUNNING")
        yield Appliance(inspector, service, results)
    finally:
        inspector.stop()
        service.close()
        inspector.close()
