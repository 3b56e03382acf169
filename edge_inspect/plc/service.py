"""The PLC service: the Modbus TCP and OPC UA servers beside the inspection loop (see docs/PLC.md).

Each server is a consumer with its own bounded bus subscription (a full one drops and counts) and
its own thread; the loop never waits on a PLC. The model switcher is shared, so a model selected
over either protocol is loaded once, off the loop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..bus import Subscription
from ..config.models import AppConfig
from ..events import PartResult, RunState
from ..pipeline import Inspector
from ..triggers.modbus import ModbusTrigger
from ..web.priority import lower_this_thread
from .handshake import ApplianceView, Handshake
from .modbus_server import ModbusServer
from .model_select import ModelSwitcher
from .registers import ErrorCode

log = logging.getLogger(__name__)

MODBUS_SUBSCRIPTION = "plc-modbus"


class InspectorActions:
    """The handshake's requests, carried out through the public Inspector contract."""

    def __init__(self, inspector: Inspector, models: ModelSwitcher) -> None:
        self.inspector = inspector
        self.models = models

    def fire_trigger(self, edge_ts_s: float) -> ErrorCode | None:
        trigger = self.inspector.trigger
        if not isinstance(trigger, ModbusTrigger) or self.inspector.config.trigger.mode != "triggered":
            return ErrorCode.TRIGGER_NOT_FIELDBUS
        if self.inspector.state is RunState.STOPPED or not trigger.fire(edge_ts_s):
            return ErrorCode.TRIGGER_NOT_RUNNING
        return None

    def reset_counters(self) -> None:
        self.inspector.reset_counters()

    def select_model(self, number: int) -> bool:
        return self.models.request(number)


def appliance_view(inspector: Inspector, models: ModelSwitcher, events_dropped: int) -> ApplianceView:
    """What the PLC sees of the appliance now (called off the request path, every refresh period)."""
    return ApplianceView(
        status=inspector.status(),
        parts_in_flight=max(inspector.parts_started - inspector.parts_finished, 0),
        model_id=models.model_id,
        is_model_loading=models.is_loading,
        model_failures=models.failures,
        events_dropped=events_dropped & 0xFFFFFFFF,
    )


@dataclass
class ModbusConsumer:
    """Feeds the handshake: results from the bus subscription, status every refresh period."""

    inspector: Inspector
    models: ModelSwitcher
    handshake: Handshake
    refresh_s: float
    max_items: int = 64
    thread_nice: int = 0
    subscription: Subscription[PartResult] | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()

    def start(self) -> None:
        self.subscription = self.inspector.subscribe(MODBUS_SUBSCRIPTION, self.max_items)
        self.refresh()
        self._thread = threading.Thread(target=self._pump, name="ei-plc-pump", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        dropped = self.subscription.dropped if self.subscription is not None else 0
        self.handshake.update_view(appliance_view(self.inspector, self.models, dropped))

    def _pump(self) -> None:
        lower_this_thread(self.thread_nice)
        assert self.subscription is not None
        next_refresh_s = time.monotonic() + self.refresh_s
        while not self._stop.is_set():
            result = self.subscription.get(timeout_s=min(self.refresh_s, 0.1))
            if result is not None:
                self.handshake.add_result(result)
                self.refresh()  # counters and busy in step with the result just presented
            if time.monotonic() >= next_refresh_s:
                self.refresh()
                next_refresh_s = time.monotonic() + self.refresh_s

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self.subscription is not None:
            self.inspector.bus.unsubscribe(self.subscription)
            self.subscription = None


class PlcService:
    """Starts the servers the config enables; ``close`` stops them (the appliance keeps inspecting)."""

    def __init__(self, config: AppConfig, inspector: Inspector) -> None:
        self.config = config
        self.inspector = inspector
        self.models = ModelSwitcher(inspector, config.plc.models, config.plc.thread_nice)
        self.handshake: Handshake | None = None
        self.modbus: ModbusServer | None = None
        self.opcua: Any = None
        self._consumer: ModbusConsumer | None = None
        self._stack = contextlib.ExitStack()

    def start(self) -> None:
        plc = self.config.plc
        with self._stack as stack:
            self.models.start()
            stack.callback(self.models.close)
            if plc.modbus.enabled:
                window_s = self.config.trigger.max_frame_offset_ms / 1000.0
                actions = InspectorActions(self.inspector, self.models)
                self.handshake = Handshake(actions, plc.modbus.result_fifo_entries, window_s)
                self._consumer = ModbusConsumer(
                    self.inspector, self.models, self.handshake, plc.modbus.status_refresh_ms / 1000.0,
                    plc.event_queue_items, plc.thread_nice,
                )
                self._consumer.start()
                stack.callback(self._consumer.close)
                self.modbus = ModbusServer(plc.modbus, self.handshake, plc.thread_nice)
                self.modbus.start()
                stack.callback(self.modbus.close)
            if plc.opcua.enabled:
                from .opcua_server import OpcuaServer

                self.opcua = OpcuaServer(self.config, self.inspector, self.models)
                self.opcua.start()
                stack.callback(self.opcua.close)
            self._stack = stack.pop_all()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> PlcService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def plc_service(config: AppConfig, inspector: Inspector) -> Iterator[PlcService]:
    """Service factory (see edge_inspect.services): the PLC servers while the appliance runs."""
    with PlcService(config, inspector) as service:
        yield service
