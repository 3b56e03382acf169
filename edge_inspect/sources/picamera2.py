"""The Raspberry Pi CSI camera through picamera2 (libcamera).

picamera2 is imported inside ``open()``, so this module imports on any machine. The main stream is
``RGB888``, which picamera2 lays out as [B, G, R] bytes, i.e. OpenCV's BGR with no conversion. The
optional low-resolution stream is ``YUV420`` (the only lores format a Pi 4 offers), converted with
``cv2.COLOR_YUV2BGR_I420`` when it is the stream inspected.

Capture time: libcamera's ``SensorTimestamp`` (ns, start of sensor readout). libcamera documents it
as CLOCK_BOOTTIME, but on the Raspberry Pi stack it is taken from the V4L2 buffer, i.e. CLOCK_MONOTONIC
-- picamera2 itself compares it with ``time.monotonic_ns()`` in ``capture_request(flush=True)``. The two
clocks only differ after a system suspend. So a timestamp whose age against ``time.monotonic()`` is
plausible is used as is, one plausible as CLOCK_BOOTTIME is converted, and anything else falls back to
``time.monotonic()`` when the request arrived (counted in ``timestamp_fallbacks``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Any

import cv2
import numpy as np

from ..config.models import Picamera2SourceConfig
from ..errors import CameraError
from .base import Frame, FrameSource

log = logging.getLogger(__name__)

PICAMERA2_MISSING = (
    "picamera2 is not installed: on Raspberry Pi OS `sudo apt install python3-picamera2` and create "
    "the venv with --system-site-packages"
)
STALLED_AFTER_S = 3.0
"""No frame for this long means the camera has stopped (libcamera front-end timeout, cable)."""

_TIMEOUTS = (TimeoutError, concurrent.futures.TimeoutError)  # the same class from Python 3.11 on


def sensor_ts_to_monotonic(
    sensor_ns: int | None, now_s: float, boottime_minus_monotonic_s: float | None, max_age_s: float
) -> float | None:
    """``SensorTimestamp`` on the ``time.monotonic()`` clock, or None if it fits neither clock.

    ``now_s`` is ``time.monotonic()`` just after the request arrived; a frame is plausible if it is
    between 0 and ``max_age_s`` old (a few frame periods: the frames libcamera may have queued).
    """
    if sensor_ns is None:
        return None
    sensor_s = sensor_ns / 1e9
    if 0.0 <= now_s - sensor_s <= max_age_s:
        return sensor_s
    if boottime_minus_monotonic_s is not None:
        as_monotonic_s = sensor_s - boottime_minus_monotonic_s
        if 0.0 <= now_s - as_monotonic_s <= max_age_s:
            return as_monotonic_s
    return None


def _boottime_minus_monotonic_s() -> float | None:
    clock = getattr(time, "CLOCK_BOOTTIME", None)  # Linux only
    if clock is None:
        return None
    return time.clock_gettime(clock) - time.monotonic()


def camera_controls(config: Picamera2SourceConfig) -> dict[str, Any]:
    """The libcamera controls for the config: frame rate, and fixed exposure/gain when given."""
    controls: dict[str, Any] = {"FrameRate": config.frames_per_second}
    if config.exposure_time_us is not None:
        controls["ExposureTime"] = config.exposure_time_us
    if config.analogue_gain is not None:
        controls["AnalogueGain"] = config.analogue_gain
    return controls


class Picamera2Source(FrameSource):
    """Frames from a CSI camera, one completed request per ``read()``, its buffer returned at once.

    ``read(timeout_s)`` waits for the request asynchronously: on timeout the pending request is kept
    and collected by the next ``read()``, so a timeout never strands a camera buffer.
    """

    name = "picamera2"

    def __init__(self, config: Picamera2SourceConfig, stalled_after_s: float = STALLED_AFTER_S) -> None:
        self.config = config
        self.stalled_after_s = stalled_after_s
        self.timestamp_fallbacks = 0
        self.stream_size_px: tuple[int, int] | None = None
        self._camera: Any = None
        self._pending: Any = None
        self._sequence = 0
        self._last_frame_s = 0.0
        frame_period_s = 1.0 / config.frames_per_second
        self._max_age_s = max(1.0, (config.buffer_count + 2) * frame_period_s)

    # ------------------------------------------------------------------ FrameSource

    def open(self) -> None:
        if self._camera is not None:
            return
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError(PICAMERA2_MISSING) from None
        index = self.config.camera_index
        try:
            camera = Picamera2(index)
        except Exception as error:
            raise CameraError(
                f"picamera2 source: cannot open CSI camera {index} ({error}): check the ribbon cable, "
                "`rpicam-hello --list-cameras`, and that no other program is using the camera"
            ) from error
        try:
            self._start(camera)
        except Exception as error:
            self._close_quietly(camera)
            raise CameraError(f"picamera2 source: camera {index} refused the configuration: {error}") from error
        self._camera = camera
        self._pending = None
        self._sequence = 0
        self._last_frame_s = time.monotonic()

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        camera = self._camera
        if camera is None:
            raise CameraError("picamera2 source: read() before open()")
        job = self._pending if self._pending is not None else camera.capture_request(wait=False)
        try:
            request = camera.wait(job, timeout=timeout_s)
        except _TIMEOUTS:
            self._pending = job
            self._raise_if_stalled()
            return None
        except Exception as error:
            self._pending = None
            raise CameraError(f"picamera2 source: capture failed: {error}") from error
        self._pending = None
        arrived_s = time.monotonic()
        try:
            array = request.make_array(self.config.inference_stream)
            metadata = request.get_metadata()
        finally:
            request.release()
        self._last_frame_s = arrived_s
        frame = Frame(self._sequence, self._capture_ts(metadata, arrived_s), self._to_bgr(array), self.name)
        self._sequence += 1
        return frame

    def close(self) -> None:
        camera, self._camera, self._pending = self._camera, None, None
        if camera is not None:
            self._close_quietly(camera)

    # ------------------------------------------------------------------ helpers

    def _start(self, camera: Any) -> None:
        config = self.config
        lores = None
        if config.lores_size_px is not None:
            lores = {"size": tuple(config.lores_size_px), "format": "YUV420"}
        video_config = camera.create_video_configuration(
            main={"size": tuple(config.main_size_px), "format": "RGB888"},
            lores=lores,
            buffer_count=config.buffer_count,
            controls=camera_controls(config),
        )
        camera.configure(video_config)
        # libcamera may align sizes; crop to what was granted, not to what was asked.
        granted = camera.camera_configuration()[config.inference_stream]
        self.stream_size_px = (int(granted["size"][0]), int(granted["size"][1]))
        camera.start()

    def _to_bgr(self, array: np.ndarray) -> np.ndarray:
        if self.config.inference_stream == "main":
            return array  # RGB888: already [B, G, R] bytes
        # YUV420 arrives as (height * 3/2, stride) with row padding; convert, then drop the padding.
        width = self.stream_size_px[0] if self.stream_size_px else array.shape[1]
        return np.ascontiguousarray(cv2.cvtColor(array, cv2.COLOR_YUV2BGR_I420)[:, :width])

    def _capture_ts(self, metadata: dict[str, Any], arrived_s: float) -> float:
        ts = sensor_ts_to_monotonic(
            metadata.get("SensorTimestamp"), arrived_s, _boottime_minus_monotonic_s(), self._max_age_s
        )
        if ts is None:
            self.timestamp_fallbacks += 1
            return arrived_s
        return ts

    def _raise_if_stalled(self) -> None:
        silent_s = time.monotonic() - self._last_frame_s
        if silent_s >= self.stalled_after_s:
            raise CameraError(
                f"picamera2 source: no frame from camera {self.config.camera_index} for {silent_s:.1f} s "
                "(check the ribbon cable and `dmesg` for unicam/rp1-cfe errors)"
            )

    @staticmethod
    def _close_quietly(camera: Any) -> None:
        for step in ("stop", "close"):
            try:
                getattr(camera, step)()
            except Exception as error:  # closing must finish: report, carry on
                log.warning("picamera2 source: %s failed: %s", step, error)
