"""The frame-source seam: one small interface, one backend per file."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    import numpy as np



@dataclass(frozen=True)
class Frame:
    """One captured image.

    ``image`` is an 8-bit BGR array of shape (height, width, 3) (OpenCV's order; picamera2's
    ``RGB888`` format has the same byte order). ``sequence`` rises by one per frame the source
    delivered; ``capture_ts_s`` is ``time.monotonic()`` at capture, the clock every deadline uses.
    """

    sequence: int
    capture_ts_s: float
    image: np.ndarray = field(repr=False)
    source_name: str = ""


class FrameSource(abc.ABC):
    """A camera, or something that behaves like one.

    ``open()`` acquires the device (raising :class:`~edge_inspect.errors.CameraError` with a message
    an operator can act on), ``read(timeout_s)`` blocks for the next frame and returns ``None`` on
    timeout, ``close()`` releases it. Sources pace themselves (a camera at its frame rate, replay at
    its configured rate); callers never sleep between reads.
    """

    name: str = "source"
    #: Frames the source lost (a camera overwrote its buffers, a reader fell behind). One name for every
    #: backend: the pipeline reports it as ``dropped["camera_frames"]`` in the API, metrics and MQTT.
    frames_dropped: int = 0

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the device; raise CameraError if it cannot be opened."""

    @abc.abstractmethod
    def read(self, timeout_s: float = 1.0) -> Frame | None:
        """Return the next frame, or None if none arrived within ``timeout_s``.

        Raises CameraError when the device has failed (unplugged, stream ended for good).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device. Safe to call twice."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
