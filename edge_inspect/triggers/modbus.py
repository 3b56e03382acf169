"""Trigger edges written by a PLC over Modbus TCP (the ``trigger`` coil of docs/PLC.md).

The Modbus server (edge_inspect.plc) finds this backend as the Inspector's trigger and calls
``fire()`` from its request handler with the edge stamped on arrival of the write request (before
any other work), so a fieldbus trigger goes through the same trigger matching, missed-trigger and
fail-safe accounting as a photo-eye on a GPIO input. The stamp is late by the network transfer and
pymodbus's request decoding (well under a millisecond on loopback, see docs/PLC.md for figures).
"""

from __future__ import annotations

import threading

from ..config.plc import ModbusTriggerConfig
from .base import TriggerCallback, TriggerInput


class ModbusTrigger(TriggerInput):
    """Reports trigger edges that the Modbus server received; armed between ``start`` and ``close``."""

    name = "modbus"

    def __init__(self, config: ModbusTriggerConfig | None = None) -> None:
        self.config = config or ModbusTriggerConfig()
        self.edges_seen = 0
        self.edges_unarmed = 0
        self._callback: TriggerCallback | None = None
        self._lock = threading.Lock()

    def start(self, callback: TriggerCallback) -> None:
        with self._lock:
            self._callback = callback

    @property
    def is_armed(self) -> bool:
        """True once the Inspector listens (inspection started in triggered mode)."""
        return self._callback is not None

    def fire(self, edge_ts_s: float) -> bool:
        """Report an edge stamped ``edge_ts_s`` (monotonic s); False when nothing listens yet."""
        with self._lock:
            callback = self._callback
            if callback is None:
                self.edges_unarmed += 1
                return False
            self.edges_seen += 1
        callback(edge_ts_s)  # the Inspector only queues the stamp: never blocks the server
        return True

    def close(self) -> None:
        with self._lock:
            self._callback = None
