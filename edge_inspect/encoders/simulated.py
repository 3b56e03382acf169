"""An encoder driven in software: the line simulator (and tests) move the belt, it counts."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .base import Encoder

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    from ..config.encoder import SimulatedEncoderConfig


class SimulatedEncoder(Encoder):
    """``advance(pulses)`` moves the belt; with ``counter_bits`` the raw count wraps like a hardware counter."""

    name = "simulated"

    def __init__(self, config: SimulatedEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self._lock = threading.Lock()
        self._total = 0
        self.is_started = False

    def start(self) -> None:
        self.is_started = True

    def advance(self, pulses: int, ts_s: float | None = None) -> None:
        """Count ``pulses`` (negative: the belt ran backwards), stamped ``ts_s`` (default: now)."""
        if pulses == 0:
            return
        with self._lock:
            self._total += pulses
            self._record(self._wrap(self._total), ts_s)

    def set_raw(self, counts: int, ts_s: float | None = None) -> None:
        """Force the raw count (a counter reset or a glitch, for fault tests)."""
        with self._lock:
            self._total = counts
            self._record(self._wrap(counts), ts_s)

    def _wrap(self, total: int) -> int:
        bits = self.config.counter_bits
        return total if bits is None else total % (1 << bits)

    def close(self) -> None:
        self.is_started = False
