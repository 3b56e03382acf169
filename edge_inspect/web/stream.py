"""The live MJPEG stream: one encoder thread for every viewer, working only while someone watches.

The encoder reads the inspector's newest view (never waits on the loop), reduces it, draws the verdict
and encodes it at most ``max_fps`` times a second, and only when the view changed. Each viewer holds
one integer (the last frame it sent) and a reference to the shared JPEG: a viewer that is slow simply
skips frames, and a tab left open for a shift costs no more than one that just opened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..events import RegionResult, Verdict
from ..pipeline import Inspector
from .priority import lower_this_thread
from .render import render_jpeg

log = logging.getLogger(__name__)

BOUNDARY = "frame"
HOLD_VERDICT_S = 1.0  # show the classified view while it is at most this much older than the camera's newest


@dataclass(frozen=True)
class View:
    """What the screen should show now; ``key`` changes whenever the picture would."""

    key: tuple[object, ...]
    image: np.ndarray
    regions: tuple[RegionResult, ...]
    verdict: Verdict | None


@dataclass(frozen=True)
class EncodedFrame:
    sequence: int  # rises by one per encoded frame
    jpeg: bytes
    encoded_ts_s: float
    chunk: bytes  # the multipart part every viewer sends, built once


def inspector_view(inspector: Inspector) -> View | None:
    """The newest classified frame with its verdict, or the raw camera frame when that is newer."""
    live, raw = inspector.live_view(), inspector.latest_frame()
    if live is not None and (raw is None or raw.capture_ts_s - live.frame.capture_ts_s <= HOLD_VERDICT_S):
        frame = live.frame
        return View((frame.sequence, frame.capture_ts_s, live.verdict), frame.image, live.regions, live.verdict)
    if raw is not None:
        return View((raw.sequence, raw.capture_ts_s, None), raw.image, (), None)
    return None


def _placeholder() -> View:
    return View(("placeholder",), np.full((240, 320, 3), 40, np.uint8), (), None)


def multipart_chunk(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode("ascii") + jpeg + b"\r\n"


class FrameStreamer:
    """Shared JPEG encoder for the live stream and snapshots."""

    KEEPALIVE_S = 2.0  # a viewer gets the same frame again after this long, so gone clients are noticed

    def __init__(
        self,
        view: Callable[[], View | None],
        max_fps: float = 10.0,
        max_width_px: int = 640,
        jpeg_quality: int = 70,
        max_viewers: int = 20,
        clock: Callable[[], float] = time.monotonic,
        thread_nice: int = 0,
    ) -> None:
        self._view = view
        self.period_s = 1.0 / max_fps
        self.max_width_px = max_width_px
        self.jpeg_quality = jpeg_quality
        self.max_viewers = max_viewers
        self.thread_nice = thread_nice
        self._clock = clock
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._viewers = 0
        self._latest: EncodedFrame | None = None
        self._thread: threading.Thread | None = None
        self._snapshot_lock = threading.Lock()
        self._snapshot: tuple[float, bytes] | None = None
        self.frames_encoded = 0

    @property
    def viewers(self) -> int:
        return self._viewers

    def open_stream(self) -> ViewerStream | None:
        """A new viewer's multipart body, or None when the viewer limit is reached or we are closing."""
        with self._cond:
            if self._closing.is_set() or self._viewers >= self.max_viewers:
                return None
            self._viewers += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._encode_loop, name="web-stream-encoder", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return ViewerStream(self)

    def _leave(self) -> None:
        with self._cond:
            self._viewers -= 1
            if self._viewers == 0:
                self._latest = None  # the next viewer must not start with a stale picture

    def _render(self, view: View) -> bytes:
        return render_jpeg(view.image, view.regions, view.verdict, self.max_width_px, self.jpeg_quality)

    def _encode_loop(self) -> None:
        lower_this_thread(self.thread_nice)
        last_key: tuple[object, ...] | None = None
        next_ts = self._clock()
        while True:
            with self._cond:
                while self._viewers == 0 and not self._closing.is_set():
                    last_key = None
                    self._cond.wait()
            if self._closing.is_set():
                return
            view = self._view() or _placeholder()
            if view.key != last_key or self._latest is None:
                try:
                    jpeg = self._render(view)
                except Exception as error:  # a bad frame must not end the stream for everyone
                    log.warning("live stream: cannot encode a frame: %r", error)
                else:
                    last_key = view.key
                    self.frames_encoded += 1
                    with self._cond:
                        sequence = self._latest.sequence + 1 if self._latest else 1
                        self._latest = EncodedFrame(sequence, jpeg, self._clock(), multipart_chunk(jpeg))
                        self._cond.notify_all()
            next_ts = max(next_ts + self.period_s, self._clock())  # never burst to catch up
            self._closing.wait(max(0.0, next_ts - self._clock()))

    def next_frame(self, last_sequence: int) -> EncodedFrame | None:
        """Block until a frame newer than ``last_sequence`` (or a keep-alive repeat); None when closing."""
        deadline = self._clock() + self.KEEPALIVE_S
        with self._cond:
            while not self._closing.is_set():
                latest = self._latest
                if latest is not None and (latest.sequence != last_sequence or self._clock() >= deadline):
                    return latest
                self._cond.wait(max(0.01, min(deadline - self._clock(), self.KEEPALIVE_S)))
            return None

    def snapshot(self) -> bytes | None:
        """One JPEG of the current view, encoded at most ``max_fps`` times a second for all callers."""
        with self._snapshot_lock:
            now = self._clock()
            if self._snapshot is not None and now - self._snapshot[0] < self.period_s:
                return self._snapshot[1]
            latest = self._latest
            if latest is not None and now - latest.encoded_ts_s < self.period_s:
                jpeg = latest.jpeg
            else:
                view = self._view()
                if view is None:
                    return None
                jpeg = self._render(view)
            self._snapshot = (now, jpeg)
            return jpeg

    def close(self) -> None:
        """End every viewer's stream and the encoder thread."""
        with self._cond:
            self._closing.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


class ViewerStream:
    """One viewer's response body: an iterator with ``close()``, so the viewer is counted out even if
    the server drops it before the first byte (a generator's ``finally`` would not run then)."""

    def __init__(self, streamer: FrameStreamer) -> None:
        self._streamer = streamer
        self._last_sequence = 0
        self._is_closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        frame = None if self._is_closed else self._streamer.next_frame(self._last_sequence)
        if frame is None:
            self.close()
            raise StopIteration
        self._last_sequence = frame.sequence
        return frame.chunk

    def close(self) -> None:
        if not self._is_closed:
            self._is_closed = True
            self._streamer._leave()
