"""A simulated output line that records every level change with its monotonic time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import DigitalOutput

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    from ..config.models import SimulatedOutputConfig


@dataclass(frozen=True)
class Actuation:
    """One assertion of the line: when it went active and when it was released (None: still active)."""

    on_ts_s: float
    off_ts_s: float | None

    @property
    def width_ms(self) -> float | None:
        return None if self.off_ts_s is None else (self.off_ts_s - self.on_ts_s) * 1000.0


class SimulatedOutput(DigitalOutput):
    """Drives no pin; keeps the level history so the demo and tests can check timing."""

    def __init__(self, config: SimulatedOutputConfig | None = None, name: str = "simulated") -> None:
        if config is None:
            from ..config.models import SimulatedOutputConfig as _Default  # lazily: no pydantic in the scheduler

            config = _Default()
        self.config = config
        self.name = name
        self._lock = threading.Lock()
        self._is_active = False
        self._actuations: list[Actuation] = []
        self.is_closed = False

    @property
    def is_active(self) -> bool:
        return self._is_active

    def set(self, active: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if active == self._is_active:
                return
            self._is_active = active
            if active:
                self._actuations.append(Actuation(now, None))
            else:
                last = self._actuations[-1]
                self._actuations[-1] = Actuation(last.on_ts_s, now)

    def mirror(self, active: bool, ts_s: float) -> None:
        """Record a level change that happened elsewhere at ``ts_s`` (the scheduler process's edges)."""
        with self._lock:
            if active == self._is_active:
                return
            self._is_active = active
            if active:
                self._actuations.append(Actuation(ts_s, None))
            elif self._actuations:
                last = self._actuations[-1]
                self._actuations[-1] = Actuation(last.on_ts_s, ts_s)

    def actuations(self) -> list[Actuation]:
        """A copy of the recorded assertions, oldest first."""
        with self._lock:
            return list(self._actuations)

    def close(self) -> None:
        self.set(False)
        self.is_closed = True
