"""Modbus TCP server for the register map, on pymodbus's asyncio server in a thread of its own.

pymodbus (3.15+) serves a ``SimDevice``; its ``action`` hook sees every request before the answer
is built. Ours validates each write against the register map (a read-only or unlisted address:
ILLEGAL_DATA_ADDRESS; a value the map does not allow: ILLEGAL_DATA_VALUE; either way nothing
changes), applies it to the :class:`Handshake`, and refreshes the block a read is about to copy from
the handshake, so every read is one consistent image. Requests never touch the inspection loop
beyond queueing a trigger stamp, and no client can delay a part.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from ..config.plc import PlcModbusConfig
from ..errors import FieldbusError
from ..web.priority import lower_this_thread
from . import registers as reg
from .handshake import Handshake

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
_READ_TABLES: dict[int, reg.Table] = {1: "coil", 2: "discrete_input", 3: "holding_register", 4: "input_register"}
_WRITE_TABLES: dict[int, reg.Table] = {5: "coil", 15: "coil", 6: "holding_register", 16: "holding_register",
                                       22: "holding_register", 23: "holding_register"}
_BIT_SIZE = reg.BIT_TABLE_SIZE


def _pack_bits(bits: list[bool]) -> list[int]:
    """Bits as pymodbus keeps them: 16 per register, bit 0 first (least significant)."""
    padded = bits + [False] * (-len(bits) % 16)
    return [sum(1 << i for i, bit in enumerate(padded[k:k + 16]) if bit) for k in range(0, len(padded), 16)]


class RequestGate:
    """Validates requests against the register map and moves data between requests and the handshake."""

    def __init__(self, handshake: Handshake) -> None:
        self.handshake = handshake
        self.refused_writes = 0
        self.requests = 0
        self._coils = len(reg.signals("coil"))
        self._holding = reg.table_size("holding_register")

    async def action(
        self, func_code: int, start_address: int, address: int, count: int, registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> Any:
        """pymodbus ``SimDevice.action``: None lets the request proceed, an ExcCodes member refuses it."""
        now_s = time.monotonic()  # first: a trigger edge is stamped on arrival
        from pymodbus.constants import ExcCodes

        self.requests += 1
        if set_values is not None and func_code in _WRITE_TABLES:
            code = self._write(_WRITE_TABLES[func_code], address, list(set_values), now_s)
            if code is not None:
                self.refused_writes += 1
                return ExcCodes.ILLEGAL_ADDRESS if code == "address" else ExcCodes.ILLEGAL_VALUE
        table = _READ_TABLES.get(func_code) or _WRITE_TABLES.get(func_code)
        if table is not None:
            self._refresh(table, start_address, registers)
        return None

    def _write(self, table: reg.Table, address: int, values: list[Any], now_s: float) -> str | None:
        """Apply a write, or say why it is refused ("address" / "value") having changed nothing."""
        if table == "coil":
            if address < 0 or address + len(values) > self._coils:
                return "address"
            self.handshake.write_coils(address, [bool(v) for v in values], now_s)
            return None
        if address < 0 or address + len(values) > self._holding:
            return "address"
        if not self.handshake.write_model_select(int(values[0])):
            return "value"
        return None

    def _refresh(self, table: reg.Table, start_address: int, registers: list[int]) -> None:
        """Copy the handshake's current image of ``table`` into pymodbus's block (in place)."""
        if table == "coil":
            words = _pack_bits(self.handshake.coil_bits())
        elif table == "discrete_input":
            words = _pack_bits(self.handshake.status_bits())
        elif table == "holding_register":
            words = self.handshake.holding_registers()
        else:
            words = self.handshake.input_registers()
        offset = -start_address
        for index, word in enumerate(words):
            if 0 <= index + offset < len(registers):
                registers[index + offset] = word


def build_device(unit_id: int, gate: RequestGate) -> Any:
    """The pymodbus SimDevice: four separate tables sized by the register map, all through ``gate``."""
    from pymodbus.simulator import DataType, SimData, SimDevice

    def bits(size: int) -> list[Any]:
        return [SimData(0, values=[False] * size, datatype=DataType.BITS)]

    def words(size: int) -> list[Any]:
        return [SimData(0, values=[0] * size, datatype=DataType.REGISTERS)]

    return SimDevice(
        id=unit_id,
        simdata=(bits(_BIT_SIZE), bits(_BIT_SIZE), words(reg.table_size("holding_register")),
                 words(reg.table_size("input_register"))),
        action=gate.action,
    )


class ModbusServer:
    """Runs the Modbus TCP server on its own thread and asyncio loop; ``start`` returns once it listens."""

    def __init__(self, config: PlcModbusConfig, handshake: Handshake, thread_nice: int = 0) -> None:
        self.config = config
        self.thread_nice = thread_nice
        self.gate = RequestGate(handshake)
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.connections = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        try:
            import pymodbus  # noqa: F401
        except ImportError:
            raise FieldbusError("plc.modbus needs pymodbus: pip install 'edge-inspect[plc]'") from None
        self._thread = threading.Thread(target=self._run, name="ei-plc-modbus", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise FieldbusError("Modbus server did not start within 10 s")
        if self._error is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
            raise FieldbusError(
                f"plc.modbus: cannot listen on {self.config.host}:{self.config.port}: {self._error}"
            ) from None
        log.info("Modbus TCP: serving unit %d on %s:%d", self.config.unit_id, self.config.host, self.port)

    def _run(self) -> None:
        lower_this_thread(self.thread_nice)
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to start(); the thread ends
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        from pymodbus.server import ModbusTcpServer

        def on_connect(is_connected: bool) -> None:
            self.connections += 1 if is_connected else -1

        self._server = ModbusTcpServer(
            build_device(self.config.unit_id, self.gate),
            address=(self.config.host, self.config.port),
            trace_connect=on_connect,
        )
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]
        self._ready.set()
        await self._server.serving

    def close(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if self._server is not None and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self._server.shutdown(), loop).result(timeout=5.0)
            except (RuntimeError, TimeoutError, asyncio.TimeoutError, OSError) as error:
                log.warning("Modbus server: shutdown: %s", error)
        thread.join(timeout=5.0)
        self._thread = None

    def __enter__(self) -> ModbusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
