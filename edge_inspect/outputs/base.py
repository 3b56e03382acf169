"""The digital-output seam: reject, ready (heartbeat) and alarm lines.

One interface, one backend per file. A backend drives a single output line; "active" means the line is
asserted (diverter fires, alarm on), whatever the electrical polarity: ``active_high=False`` inverts
the level on the pin, and that inversion lives in the backend, not in callers.
"""

from __future__ import annotations

import abc
from types import TracebackType


class DigitalOutput(abc.ABC):
    """One output line. ``set(True)`` asserts it; ``close()`` leaves it inactive (its safe state)."""

    name: str = "output"

    @abc.abstractmethod
    def set(self, active: bool) -> None:
        """Assert (True) or release (False) the line. Raises OutputError if it cannot be written."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the line to its inactive, safe state and free the pin. Safe to call twice."""

    def __enter__(self) -> DigitalOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
