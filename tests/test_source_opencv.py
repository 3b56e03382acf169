"""OpenCVSource against real OpenCV: a real MJPG video file, unreachable devices, a server that never answers."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_inspect.config.models import OpenCVSourceConfig
from edge_inspect.errors import CameraError
from edge_inspect.sources import create_source
from edge_inspect.sources.opencv import OpenCVSource, api_preference, resolve_device, to_bgr

FRAME_COUNT = 12
WIDTH, HEIGHT = 64, 48


def _level(index: int) -> int:
    return 20 + 18 * index  # distinct, well apart after JPEG compression


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """A real MJPG/AVI file whose frame i is a flat grey of _level(i)."""
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (WIDTH, HEIGHT))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG/AVI"
    for index in range(FRAME_COUNT):
        writer.write(np.full((HEIGHT, WIDTH, 3), _level(index), np.uint8))
    writer.release()
    return path


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte (a hung camera/NVR)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    done.set()
    thread.join(2.0)
    for conn in held:
        conn.close()
    server.close()


def _closed_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def test_a_video_file_is_read_in_order_with_rising_sequences_and_monotonic_stamps(video_file: Path) -> None:
    source = create_source(OpenCVSourceConfig(device=str(video_file)))
    assert isinstance(source, OpenCVSource) and not source.is_live
    before = time.monotonic()
    frames = []
    with source:
        for _ in range(FRAME_COUNT):
            frame = source.read(timeout_s=2.0)
            assert frame is not None
            frames.append(frame)
        with pytest.raises(CameraError, match="end of video file"):
            source.read(timeout_s=2.0)
    after = time.monotonic()
    assert [f.sequence for f in frames] == list(range(FRAME_COUNT))
    stamps = [f.capture_ts_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert before <= stamps[0] and stamps[-1] <= after
    for index, frame in enumerate(frames):
        assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        assert abs(float(frame.image.mean()) - _level(index)) < 6
    assert source.actual_size_px == (WIDTH, HEIGHT)
    assert source.frames_dropped == 0


def test_a_live_source_hands_the_newest_frame_to_a_slow_reader_and_counts_the_rest(video_file: Path) -> None:
    source = OpenCVSource(OpenCVSourceConfig(device=str(video_file)))
    source.is_live = True  # a file grabbed like a camera: the capture thread never waits for the reader
    source.open()
    try:
        deadline = time.monotonic() + 5.0
        while source.frames_dropped < FRAME_COUNT - 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # a reader busy elsewhere while the whole file is grabbed
        frame = source.read(timeout_s=1.0)
        assert frame is not None and frame.sequence == FRAME_COUNT - 1
        assert abs(float(frame.image.mean()) - _level(FRAME_COUNT - 1)) < 6
        assert source.frames_dropped == FRAME_COUNT - 1
        with pytest.raises(CameraError, match="reads in a row failed"):
            source.read(timeout_s=1.0)
    finally:
        source.close()


def test_a_stream_that_ends_before_open_looks_is_not_a_failed_open(
    video_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loaded machine: the capture thread opened the file, grabbed it to its end and failed there before
    open() looked. open() succeeds; read() hands over the last frame and then reports the end."""
    from edge_inspect.sources import opencv

    ended = threading.Event()

    class Source(OpenCVSource):
        def _grab_loop(self, capture: cv2.VideoCapture, session: opencv._Session) -> None:
            super()._grab_loop(capture, session)
            ended.set()

    class OpenedLate(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            return super().wait(timeout) and ended.wait(timeout)

    class Session(opencv._Session):
        def __init__(self) -> None:
            super().__init__()
            self.opened = OpenedLate()

    monkeypatch.setattr(opencv, "_Session", Session)
    source = Source(OpenCVSourceConfig(device=str(video_file)))
    source.is_live = True
    try:
        source.open()
        assert ended.is_set()
        frame = source.read(timeout_s=1.0)
        assert frame is not None and frame.sequence == FRAME_COUNT - 1
        with pytest.raises(CameraError, match="reads in a row failed"):
            source.read(timeout_s=1.0)
    finally:
        source.close()


def test_the_source_opens_again_after_close(video_file: Path) -> None:
    source = OpenCVSource(OpenCVSourceConfig(device=str(video_file)))
    source.open()
    first = source.read(timeout_s=2.0)
    source.close()
    with pytest.raises(CameraError, match="before open"):
        source.read(timeout_s=0.1)
    source.open()
    again = source.read(timeout_s=2.0)
    source.close()
    assert first is not None and again is not None and again.sequence == 0


def test_a_missing_file_is_a_camera_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.avi"
    source = OpenCVSource(OpenCVSourceConfig(device=str(missing), open_timeout_s=5.0))
    started = time.monotonic()
    with pytest.raises(CameraError, match=r"nope\.avi.*check that the path exists"):
        source.open()
    assert time.monotonic() - started < 5.0
    source.close()


def test_a_refused_stream_is_a_camera_error_within_the_timeout() -> None:
    url = f"rtsp://127.0.0.1:{_closed_port()}/line"
    source = OpenCVSource(OpenCVSourceConfig(device=url, open_timeout_s=3.0))
    started = time.monotonic()
    with pytest.raises(CameraError, match="check the address"):
        source.open()
    assert time.monotonic() - started < 3.5
    source.close()


def test_a_stream_that_never_answers_fails_at_the_open_timeout(silent_server: int) -> None:
    url = f"http://127.0.0.1:{silent_server}/video.mjpg"
    source = OpenCVSource(OpenCVSourceConfig(device=url, open_timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(CameraError, match=r"no answer within 0\.5 s"):
        source.open()
    assert 0.45 <= time.monotonic() - started < 1.5
    source.close()


def test_a_missing_v4l2_index_is_a_camera_error_naming_the_device() -> None:
    source = OpenCVSource(OpenCVSourceConfig(device=63, api="v4l2", open_timeout_s=3.0))
    with pytest.raises(CameraError, match=r"camera index 63 \(/dev/video63\)"):
        source.open()
    source.close()


def test_read_before_open_is_a_camera_error() -> None:
    with pytest.raises(CameraError, match="before open"):
        OpenCVSource(OpenCVSourceConfig()).read(timeout_s=0.01)


@pytest.mark.parametrize(
    ("device", "api", "expected"),
    [
        (0, "auto", cv2.CAP_ANY),
        ("rtsp://cam/stream", "auto", cv2.CAP_ANY),
        ("nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink", "auto", cv2.CAP_GSTREAMER),
        ("v4l2src device=/dev/video0 ! videoconvert ! appsink", "auto", cv2.CAP_GSTREAMER),
        (0, "v4l2", cv2.CAP_V4L2),
        ("rtsp://cam/stream", "ffmpeg", cv2.CAP_FFMPEG),
        ("x", "gstreamer", cv2.CAP_GSTREAMER),
    ],
)
def test_api_preference(device: int | str, api: str, expected: int) -> None:
    assert api_preference(OpenCVSourceConfig.model_validate({"device": device, "api": api})) == expected


def test_an_index_written_as_text_is_an_index() -> None:
    assert resolve_device("2") == 2 and resolve_device(" 0 ") == 0
    assert resolve_device("rtsp://x") == "rtsp://x"


def test_grey_and_four_channel_frames_become_bgr() -> None:
    grey = np.full((4, 5), 77, np.uint8)
    assert to_bgr(grey).shape == (4, 5, 3) and int(to_bgr(grey)[0, 0, 2]) == 77
    assert to_bgr(grey[..., None]).shape == (4, 5, 3)
    bgra = np.zeros((4, 5, 4), np.uint8)
    bgra[..., 0] = 9
    converted = to_bgr(bgra)
    assert converted.shape == (4, 5, 3) and int(converted[0, 0, 0]) == 9
    bgr = np.zeros((4, 5, 3), np.uint8)
    assert to_bgr(bgr) is bgr
