"""Replay: a folder of images or a video file, decoded once, delivered at a set rate like a camera."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ..config.models import ReplaySourceConfig
from ..errors import CameraError
from .base import Frame, FrameSource

log = logging.getLogger(__name__)

SKIPPED_NAMED_MAX = 10  # the warning names this many skipped files, then says how many more

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def list_images(folder: Path) -> list[Path]:
    """Image files below ``folder``, recursively, in sorted (stable) order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _to_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _decode_folder(folder: Path, max_frames: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    frames: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[str] = []
    for path in list_images(folder)[:max_frames]:
        relative = path.relative_to(folder).as_posix()
        if path.stat().st_size == 0:
            skipped.append(f"{relative} (empty)")
            continue
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.dtype != np.uint8:
            skipped.append(f"{relative} (unreadable)" if image is None else f"{relative} (not 8-bit)")
            continue
        frames.append(_to_bgr(image))
        names.append(path.relative_to(folder).as_posix())
    return frames, names, skipped


def _decode_video(path: Path, max_frames: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while len(frames) < max_frames:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(_to_bgr(image))
    finally:
        capture.release()
    return frames


class ReplaySource(FrameSource):
    """Delivers pre-decoded frames at ``frames_per_second``, so replay measures the pipeline, not decoding.

    Pacing is absolute (frame n is due at start + n / fps), so a slow reader does not stretch the
    schedule; a reader that falls behind gets the frame that is due now, and the skipped frames are
    counted in ``frames_dropped`` as a camera would overwrite its buffers.
    """

    name = "replay"

    def __init__(self, config: ReplaySourceConfig) -> None:
        self.config = config
        self.frames: list[np.ndarray] = []
        self.file_names: list[str] = []
        self.skipped_files: list[str] = []
        self.frames_dropped = 0
        self._period_s = 1.0 / config.frames_per_second
        self._sequence = 0
        self._start_s = 0.0
        self._closed = threading.Event()

    def open(self) -> None:
        path = self.config.path
        if not path.exists():
            raise CameraError(f"replay source: {path} does not exist")
        if self.frames:
            pass  # already decoded: re-opening after close() keeps the held frames, as a camera would
        elif path.is_dir():
            self.frames, self.file_names, self.skipped_files = _decode_folder(path, self.config.max_frames)
            self._warn_skipped(path)
        else:
            self.frames = _decode_video(path, self.config.max_frames)
        if not self.frames:
            raise CameraError(f"replay source: no readable images or video frames in {path}")
        for frame in self.frames:
            frame.flags.writeable = False  # shared with consumers, like a camera buffer
        self._sequence = 0
        self._closed.clear()
        self._start_s = time.monotonic()

    @property
    def files_skipped(self) -> int:
        """Image files of the folder that could not be replayed (empty, unreadable, not 8-bit)."""
        return len(self.skipped_files)

    def _warn_skipped(self, folder: Path) -> None:
        """Once per decode: which files were left out, so a half-copied folder is noticed."""
        if not self.skipped_files:
            return
        named = ", ".join(self.skipped_files[:SKIPPED_NAMED_MAX])
        more = len(self.skipped_files) - SKIPPED_NAMED_MAX
        log.warning(
            "replay source: skipped %d of %d image file(s) in %s: %s%s",
            len(self.skipped_files), len(self.skipped_files) + len(self.frames), folder, named,
            f" and {more} more" if more > 0 else "",
        )

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        if not self.frames:
            raise CameraError("replay source: read() before open()")
        if not self.config.loop and self._sequence >= len(self.frames):
            raise CameraError("replay source: end of the recording (loop = false)")
        now = time.monotonic()
        due_s = self._start_s + self._sequence * self._period_s
        if due_s > now:
            if due_s - now > timeout_s:
                self._closed.wait(timeout_s)
                return None
            if self._closed.wait(due_s - now):
                return None
        else:
            behind = int((now - due_s) / self._period_s)
            if behind:
                self.frames_dropped += behind
                self._sequence += behind
                due_s += behind * self._period_s
                if not self.config.loop and self._sequence >= len(self.frames):
                    raise CameraError("replay source: end of the recording (loop = false)")  # never wrap
        sequence = self._sequence
        self._sequence += 1
        image = self.frames[sequence % len(self.frames)]
        return Frame(sequence, max(due_s, time.monotonic()), image, self.name)

    def name_of(self, sequence: int) -> str | None:
        """The file a frame came from (folder replay), relative to the replayed folder."""
        if not self.file_names:
            return None
        return self.file_names[sequence % len(self.file_names)]

    def close(self) -> None:
        self._closed.set()

