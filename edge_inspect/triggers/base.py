"""The part-present trigger seam: something that reports "a part is under the camera now"."""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType

TriggerCallback = Callable[[float], None]
"""Called with the trigger edge's ``time.monotonic()`` timestamp, in seconds."""


class TriggerInput(abc.ABC):
    """A source of trigger edges (photo-eye on a GPIO input, PLC line, software)."""

    name: str = "trigger"

    @abc.abstractmethod
    def start(self, callback: TriggerCallback) -> None:
        """Begin calling ``callback(edge_ts_s)`` on every trigger edge. Raises TriggerError."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop reporting edges and free the input. Safe to call twice."""

    def __enter__(self) -> TriggerInput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
