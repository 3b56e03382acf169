"""A camera through OpenCV: a V4L2/USB index, an RTSP/HTTP URL, a video file, or a GStreamer pipeline.

One thread owns the ``cv2.VideoCapture`` for its whole life (open, settings, grab, release), because a
capture must not be used from two threads and because ``grab()`` on a network stream or a wedged USB
camera can block for a long time. ``open()`` and ``read()`` wait on that thread with their own
timeouts, so the inspection loop never hangs on the camera.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..config.models import OpenCVSourceConfig
from ..errors import CameraError
from .base import Frame, FrameSource

MAX_FAILED_GRABS = 5
"""Consecutive failed grabs after which the stream counts as lost (one failure is only a hiccup)."""

_API_CODES = {
    "v4l2": cv2.CAP_V4L2,
    "gstreamer": cv2.CAP_GSTREAMER,
    "ffmpeg": cv2.CAP_FFMPEG,
}


def is_gstreamer_pipeline(device: int | str) -> bool:
    """True for a GStreamer pipeline description (what api 'auto' sends to the GStreamer backend)."""
    return isinstance(device, str) and ("appsink" in device or "!" in device)


def resolve_device(device: int | str) -> int | str:
    """A V4L2 index as int (also when written as "0"), anything else unchanged."""
    if isinstance(device, str) and device.strip().isdigit():
        return int(device.strip())
    return device


def api_preference(config: OpenCVSourceConfig) -> int:
    """The cv2.CAP_* backend for the config's ``api`` ('auto': GStreamer for pipelines, else any)."""
    if config.api != "auto":
        return _API_CODES[config.api]
    return cv2.CAP_GSTREAMER if is_gstreamer_pipeline(config.device) else cv2.CAP_ANY


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Grayscale and 4-channel frames as 3-channel BGR; 3-channel frames unchanged."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def describe_device(device: int | str) -> str:
    """How the device is named in messages: what it is and what to check."""
    if isinstance(device, int):
        return (
            f"camera index {device} (/dev/video{device}): check the cable, `v4l2-ctl --list-devices`, "
            "that no other program holds it, and that this user is in the 'video' group"
        )
    if is_gstreamer_pipeline(device):
        return (
            f"GStreamer pipeline {device!r}: check it with gst-launch-1.0 (ending in fakesink) and that "
            "this OpenCV build has GStreamer (cv2.getBuildInformation())"
        )
    if "://" in device:
        return f"stream {device!r}: check the address, credentials, network and that the camera is streaming"
    return f"video file {device!r}: check that the path exists and is a readable video"


@dataclass
class _Slot:
    """One grabbed frame, handed from the capture thread to ``read()``."""

    sequence: int
    capture_ts_s: float
    image: np.ndarray


class _Session:
    """What one capture thread shares with ``read()``; a new ``open()`` gets a new one, so a thread
    left behind by a wedged driver can never write into the next session."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.slot: _Slot | None = None
        self.error: str | None = None
        self.stop = threading.Event()
        self.opened = threading.Event()
        self.open_error: str | None = None  # why opening failed; an error of the stream after it is not one
        self.thread: threading.Thread | None = None

    def mark_opened(self) -> None:
        """Opening is over: what went wrong so far is the open's error (set before ``opened``, read after)."""
        if not self.opened.is_set():
            with self.cond:
                self.open_error = self.error
            self.opened.set()

    def fail(self, message: str) -> None:
        with self.cond:
            if self.error is None:
                self.error = message
            self.cond.notify_all()


class OpenCVSource(FrameSource):
    """Frames from ``cv2.VideoCapture`` with an open timeout and a read timeout that hold.

    A live camera is grabbed continuously and ``read()`` returns the newest frame, so a slow reader
    gets fresh frames rather than stale driver buffers; frames it missed are counted in
    ``frames_dropped`` and show as gaps in ``Frame.sequence`` (the camera's frame count). A video file
    is handed over frame by frame, none dropped. ``capture_ts_s`` is ``time.monotonic()`` taken right
    after ``grab()`` returned, i.e. when the frame reached the host (exposure ended a little earlier).
    ``is_live`` (False for an existing file) chooses between the two hand-over rules.
    """

    name = "opencv"

    def __init__(self, config: OpenCVSourceConfig, max_failed_grabs: int = MAX_FAILED_GRABS) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.max_failed_grabs = max_failed_grabs
        self.frames_dropped = 0
        self.actual_size_px: tuple[int, int] | None = None
        self.actual_frames_per_second: float | None = None
        self.is_live = not (isinstance(self.device, str) and Path(self.device).is_file())
        self._session: _Session | None = None

    # ------------------------------------------------------------------ FrameSource

    def open(self) -> None:
        current = self._session
        if current is not None and not current.stop.is_set() and current.error is None:
            return
        session = _Session()
        session.thread = threading.Thread(target=self._run, args=(session,), name="ei-opencv", daemon=True)
        self._session = session
        session.thread.start()
        if not session.opened.wait(self.config.open_timeout_s):
            session.stop.set()  # the thread releases the capture if the open ever completes
            raise CameraError(
                f"opencv source: could not open {describe_device(self.device)} "
                f"(no answer within {self.config.open_timeout_s:g} s)"
            )
        # Only what failed while opening: a short file read to its end before this thread looked (a loaded
        # machine) is the stream's news, for read() to report, not a failed open.
        error = session.open_error
        if error is not None:
            session.stop.set()
            raise CameraError(error)

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        session = self._session
        if session is None or session.stop.is_set():
            raise CameraError("opencv source: read() before open()")
        with session.cond:
            if session.slot is None and session.error is None:
                session.cond.wait_for(lambda: session.slot is not None or session.error is not None, timeout_s)
            slot, session.slot = session.slot, None
            error = session.error
            session.cond.notify_all()  # a file's capture thread waits for the slot to empty
        if slot is not None:
            return Frame(slot.sequence, slot.capture_ts_s, slot.image, self.name)
        if error is not None:
            raise CameraError(error)
        return None

    def close(self) -> None:
        session = self._session
        if session is None:
            return
        session.stop.set()
        with session.cond:
            session.cond.notify_all()
        if session.thread is not None and session.thread is not threading.current_thread():
            # A grab wedged in the driver cannot be interrupted; the daemon thread releases the
            # capture when it returns, and open() meanwhile starts a new session.
            session.thread.join(timeout=2.0)

    # ------------------------------------------------------------------ capture thread

    def _run(self, session: _Session) -> None:
        capture = None
        try:
            capture = self._open_capture(session)
            session.mark_opened()
            if capture is not None and not session.stop.is_set():
                self._grab_loop(capture, session)
        except Exception as error:  # the thread must never die silently: report and end the stream
            session.fail(f"opencv source: {describe_device(self.device)}: {type(error).__name__}: {error}")
        finally:
            session.mark_opened()
            if capture is not None:
                capture.release()

    def _open_capture(self, session: _Session) -> cv2.VideoCapture | None:
        capture = cv2.VideoCapture(self.device, api_preference(self.config))
        if not capture.isOpened():
            capture.release()
            session.fail(f"opencv source: could not open {describe_device(self.device)}")
            return None
        if self.is_live and not is_gstreamer_pipeline(self.device):
            self._apply_settings(capture)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.actual_size_px = (width, height) if width > 0 and height > 0 else None
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        self.actual_frames_per_second = fps if fps > 0 else None
        return capture

    def _apply_settings(self, capture: cv2.VideoCapture) -> None:
        # Unsupported properties are ignored by the driver; actual_size_px shows what was granted.
        config = self.config
        if config.width_px is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width_px)
        if config.height_px is not None:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height_px)
        if config.frames_per_second is not None:
            capture.set(cv2.CAP_PROP_FPS, config.frames_per_second)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, config.buffer_frames)

    def _grab_loop(self, capture: cv2.VideoCapture, session: _Session) -> None:
        sequence = 0
        failures = 0
        while not session.stop.is_set():
            is_grabbed = capture.grab()
            capture_ts_s = time.monotonic()
            image = capture.retrieve()[1] if is_grabbed else None
            if image is None or image.size == 0:
                failures += 1
                if failures >= self.max_failed_grabs:
                    session.fail(self._lost_message(failures))
                    return
                continue
            failures = 0
            if image.dtype != np.uint8:
                session.fail(f"opencv source: {self.device!r} delivers {image.dtype} frames; 8-bit expected")
                return
            self._hand_over(_Slot(sequence, capture_ts_s, to_bgr(image)), session)
            sequence += 1

    def _hand_over(self, slot: _Slot, session: _Session) -> None:
        with session.cond:
            if not self.is_live:
                session.cond.wait_for(lambda: session.slot is None or session.stop.is_set())
            elif session.slot is not None:
                self.frames_dropped += 1
            session.slot = slot
            session.cond.notify_all()

    def _lost_message(self, failures: int) -> str:
        if not self.is_live:
            return f"opencv source: end of video file {self.device!r}"
        return f"opencv source: {failures} reads in a row failed from {describe_device(self.device)}"
