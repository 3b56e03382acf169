"""Trigger edges fired in software: by tests, by the HTTP API, or by a PLC message handler."""

from __future__ import annotations

import time

from ..config.models import SoftwareTriggerConfig
from ..errors import TriggerError
from .base import TriggerCallback, TriggerInput


class SoftwareTrigger(TriggerInput):
    """``fire()`` reports an edge now (or at a given monotonic time)."""

    name = "software"

    def __init__(self, config: SoftwareTriggerConfig | None = None) -> None:
        self.config = config or SoftwareTriggerConfig()
        self._callback: TriggerCallback | None = None

    def start(self, callback: TriggerCallback) -> None:
        self._callback = callback

    def fire(self, edge_ts_s: float | None = None) -> None:
        if self._callback is None:
            raise TriggerError("software trigger fired before inspection started")
        self._callback(time.monotonic() if edge_ts_s is None else edge_ts_s)

    def close(self) -> None:
        self._callback = None
