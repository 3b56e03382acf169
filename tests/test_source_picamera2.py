"""Picamera2Source against a stand-in for picamera2.

Real picamera2 needs libcamera and a CSI camera, which exist only on Raspberry Pi OS, and picamera2
ships no software double of the camera. So the tests below inject a stand-in module into
``sys.modules["picamera2"]``. It is *not* picamera2: it honours the parts of picamera2's documented
API that the source uses (``Picamera2(camera_num)``, ``create_video_configuration(main=, lores=,
buffer_count=, controls=)``, ``configure``, ``camera_configuration()``, ``start``,
``capture_request(wait=, signal_function=, flush=)`` returning a job when ``wait=False``,
``wait(job, timeout=)`` raising ``TimeoutError``, ``request.make_array(name)`` /
``get_metadata()`` / ``release()``, ``stop``, ``close``) and raises where picamera2 raises (start
before configure, configure while started, a non-YUV lores stream on a Pi 4, lores larger than main,
unknown controls, a released buffer used again). Arrays have picamera2's shapes: RGB888 is
(height, width, 3) in [B, G, R] byte order, YUV420 is (height * 3/2, stride) with row padding.
``SensorTimestamp`` is on the monotonic clock, as on the Pi.

The test marked ``hardware`` uses the real picamera2 and a real camera, and is skipped elsewhere.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
import time
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from edge_inspect.config.models import Picamera2SourceConfig
from edge_inspect.errors import CameraError
from edge_inspect.sources import create_source
from edge_inspect.sources.picamera2 import PICAMERA2_MISSING, Picamera2Source, sensor_ts_to_monotonic

MAIN_BGR = (10, 20, 30)  # bytes the stand-in writes into every RGB888 pixel, in memory order
LORES_LUMA = 90
LORES_GREY = round((LORES_LUMA - 16) * 255 / 219)  # limited-range luma as OpenCV's I420 conversion reads it
READOUT_S = 0.004  # SensorTimestamp (start of readout) precedes the request's completion by this


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


# --------------------------------------------------------------------------------------------------
# The stand-in picamera2 module
# --------------------------------------------------------------------------------------------------


class StandInRequest:
    """A completed request: its buffers are valid until release()."""

    def __init__(self, camera: StandInPicamera2, index: int, completed_s: float) -> None:
        self.camera = camera
        self.index = index
        self.completed_s = completed_s
        self.is_released = False
        camera.outstanding.add(self)

    def make_array(self, name: str) -> np.ndarray:
        if self.is_released:
            raise RuntimeError("stand-in: make_array() on a released request (its buffer is reused)")
        config = self.camera.camera_config
        assert config is not None, "stand-in: a request exists only after configure()"
        stream = config[name]  # KeyError for an unknown stream, as picamera2
        if stream is None:
            raise RuntimeError(f"stand-in: stream {name!r} is not configured")
        width, height = stream["size"]
        if stream["format"] == "RGB888":
            return np.full((height, width, 3), MAIN_BGR, np.uint8)
        if stream["format"] == "YUV420":
            planes = np.full((height * 3 // 2, stream["stride"]), 128, np.uint8)
            planes[:height] = LORES_LUMA
            return planes
        raise RuntimeError(f"stand-in: format {stream['format']} not modelled")

    def get_metadata(self) -> dict[str, Any]:
        config = self.camera.camera_config
        assert config is not None
        controls = config["controls"]
        readout_ns = round((self.completed_s - READOUT_S + self.camera.sensor_clock_offset_s) * 1e9)
        return {
            "SensorTimestamp": readout_ns,
            "ExposureTime": controls.get("ExposureTime", 10000),
            "AnalogueGain": controls.get("AnalogueGain", 1.0),
            "FrameDuration": round(1e6 / controls["FrameRate"]),
        }

    def release(self) -> None:
        if self.is_released:
            raise RuntimeError("stand-in: request released twice")
        self.is_released = True
        self.camera.outstanding.discard(self)


class StandInJob:
    """What capture_request(wait=False) returns; get_result blocks until the frame completes."""

    def __init__(self, camera: StandInPicamera2, index: int) -> None:
        self.camera = camera
        self.index = index
        self._result: StandInRequest | None = None

    def get_result(self, timeout: float | None = None) -> StandInRequest:
        if self._result is not None:
            return self._result
        camera = self.camera
        if camera.stalled:
            if timeout is None:
                raise AssertionError("stand-in: waiting without a timeout on a stalled camera")
            time.sleep(timeout)
            raise TimeoutError()
        due_s = camera.completion_s(self.index)
        delay_s = due_s - time.monotonic()
        if timeout is not None and delay_s > timeout:
            time.sleep(timeout)
            raise TimeoutError()
        time.sleep(max(0.0, delay_s))
        self._result = StandInRequest(camera, self.index, due_s)
        return self._result


class StandInPicamera2:
    """Enough of picamera2.Picamera2 for a video capture, raising where picamera2 raises."""

    cameras_present = 1
    platform_is_vc4 = True  # Pi 4: the lores stream must be YUV
    KNOWN_CONTROLS = frozenset({"FrameRate", "FrameDurationLimits", "ExposureTime", "AnalogueGain", "AeEnable"})
    instances: ClassVar[list[StandInPicamera2]] = []

    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None) -> None:
        if camera_num >= self.cameras_present:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera_num = camera_num
        self.camera_config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self.stalled = False
        self.sensor_clock_offset_s = 0.0
        self.outstanding: set[StandInRequest] = set()
        self.jobs_created = 0
        self._start_s = 0.0
        self._next_index = 0
        StandInPicamera2.instances.append(self)

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 6,
        controls: dict[str, Any] | None = None,
        display: str | None = "main",
        encode: str | None = "main",
        queue: bool = True,
        sensor: dict[str, Any] | None = None,
        use_case: str | None = None,
    ) -> dict[str, Any]:
        main_stream = {"format": "XBGR8888", "size": (1280, 720), **(main or {})}
        lores_stream = None if lores is None else {"format": "YUV420", "size": (320, 240), **lores}
        return {
            "use_case": "video",
            "main": main_stream,
            "lores": lores_stream,
            "buffer_count": buffer_count,
            "queue": queue,
            "controls": {"FrameDurationLimits": (33333, 33333), **(controls or {})},
        }

    def configure(self, camera_config: dict[str, Any]) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        main, lores = camera_config["main"], camera_config["lores"]
        if lores is not None:
            if lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if self.platform_is_vc4 and lores["format"] not in ("YUV420", "YVU420"):
                raise RuntimeError("lores stream must be YUV")
        config = {**camera_config, "main": self._granted(main), "lores": lores and self._granted(lores)}
        self.camera_config = config

    @staticmethod
    def _granted(stream: dict[str, Any]) -> dict[str, Any]:
        width, height = stream["size"]
        width = _align(width, 2)  # libcamera rounds odd sizes
        bytes_per_pixel = 3 if stream["format"] == "RGB888" else 1
        return {**stream, "size": (width, height), "stride": _align(width * bytes_per_pixel, 64)}

    def camera_configuration(self) -> dict[str, Any] | None:
        return self.camera_config

    def start(self, config: Any = None, show_preview: bool | None = False) -> None:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if self.started:
            raise RuntimeError("Camera already started")
        unknown = set(self.camera_config["controls"]) - self.KNOWN_CONTROLS
        if unknown:
            raise RuntimeError(f"Control {sorted(unknown)[0]} is not advertised by libcamera")
        self.started = True
        self._start_s = time.monotonic()
        self._next_index = 0

    def completion_s(self, index: int) -> float:
        assert self.camera_config is not None
        return self._start_s + (index + 1) / self.camera_config["controls"]["FrameRate"]

    def capture_request(self, wait: Any = None, signal_function: Any = None, flush: Any = None) -> Any:
        if not self.started:
            raise AssertionError("stand-in: capture_request() before start() never completes")
        assert self.camera_config is not None
        rate = self.camera_config["controls"]["FrameRate"]
        # picamera2 keeps the newest completed request queued; older ones went back to the camera.
        newest_done = math.floor((time.monotonic() - self._start_s) * rate) - 1
        index = max(self._next_index, newest_done)
        self._next_index = index + 1
        self.jobs_created += 1
        job = StandInJob(self, index)
        if wait is None:
            wait = signal_function is None
        if wait is False:
            return job
        return job.get_result(None if wait is True else float(wait))

    def wait(self, job: StandInJob, timeout: float | None = None) -> StandInRequest:
        return job.get_result(timeout)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.stop()
        self.closed = True


@pytest.fixture
def picamera2_stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[StandInPicamera2]]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(StandInPicamera2, "instances", [])
    monkeypatch.setattr(StandInPicamera2, "cameras_present", 1)
    yield StandInPicamera2


def _config(**overrides: Any) -> Picamera2SourceConfig:
    values: dict[str, Any] = {"main_size_px": (160, 120), "frames_per_second": 100.0}
    values.update(overrides)
    return Picamera2SourceConfig.model_validate(values)


# --------------------------------------------------------------------------------------------------
# The stand-in raises where picamera2 raises (so the source cannot pass by misusing the API)
# --------------------------------------------------------------------------------------------------


def test_the_stand_in_refuses_what_picamera2_refuses(picamera2_stand_in: type[StandInPicamera2]) -> None:
    camera = picamera2_stand_in(0)
    with pytest.raises(RuntimeError, match="not been configured"):
        camera.start()
    config = camera.create_video_configuration(main={"size": (64, 48), "format": "RGB888"}, controls={"FrameRate": 50})
    camera.configure(config)
    camera.start()
    with pytest.raises(RuntimeError, match="stopped before configuring"):
        camera.configure(config)
    camera.stop()
    rgb_lores = camera.create_video_configuration(main={"size": (64, 48)}, lores={"size": (32, 24), "format": "RGB888"})
    with pytest.raises(RuntimeError, match="lores stream must be YUV"):
        camera.configure(rgb_lores)
    camera.start()  # the last accepted configuration still holds
    request = camera.wait(camera.capture_request(wait=False), timeout=1.0)
    request.release()
    with pytest.raises(RuntimeError, match="released"):
        request.make_array("main")
    with pytest.raises(RuntimeError, match="did not complete"):
        picamera2_stand_in(1)


# --------------------------------------------------------------------------------------------------
# Picamera2Source
# --------------------------------------------------------------------------------------------------


def test_main_stream_frames_are_bgr_with_sensor_timestamps_and_every_buffer_returned(
    picamera2_stand_in: type[StandInPicamera2],
) -> None:
    source = create_source(_config(buffer_count=3, exposure_time_us=2000, analogue_gain=2.0))
    assert isinstance(source, Picamera2Source)
    before = time.monotonic()
    with source:
        frames = [source.read(timeout_s=1.0) for _ in range(5)]
        camera = picamera2_stand_in.instances[0]
        assert camera.outstanding == set()
    assert all(f is not None for f in frames)
    done = [f for f in frames if f is not None]
    assert [f.sequence for f in done] == [0, 1, 2, 3, 4]
    for frame in done:
        assert frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8
        assert tuple(int(v) for v in frame.image[0, 0]) == MAIN_BGR  # RGB888 bytes are BGR: untouched
    stamps = [f.capture_ts_s for f in done]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert before < stamps[0] < time.monotonic()
    assert source.timestamp_fallbacks == 0
    # the capture time is the sensor's (on its 10 ms frame grid), not the jittery moment read() returned
    periods = [(b - a) / 0.01 for a, b in itertools.pairwise(stamps)]
    assert all(p >= 0.99 and abs(p - round(p)) < 0.01 for p in periods), periods
    config = camera.camera_config
    assert config is not None
    assert config["main"]["format"] == "RGB888" and config["lores"] is None and config["buffer_count"] == 3
    assert config["controls"]["FrameRate"] == 100.0
    assert config["controls"]["ExposureTime"] == 2000 and config["controls"]["AnalogueGain"] == 2.0
    assert camera.closed and not camera.started


def test_the_lores_stream_is_yuv420_converted_to_bgr_without_its_row_padding(
    picamera2_stand_in: type[StandInPicamera2],
) -> None:
    source = Picamera2Source(_config(lores_size_px=(100, 60), inference_stream="lores"))
    with source:
        frame = source.read(timeout_s=1.0)
    camera = picamera2_stand_in.instances[0]
    assert camera.camera_config is not None
    lores = camera.camera_config["lores"]
    assert lores["format"] == "YUV420" and lores["stride"] == 128  # padded rows
    assert frame is not None and frame.image.shape == (60, 100, 3) and frame.image.flags.c_contiguous
    assert np.abs(frame.image.astype(int) - LORES_GREY).max() <= 1  # neutral chroma: a grey
    assert source.stream_size_px == (100, 60)


def test_a_timeout_keeps_the_pending_request_for_the_next_read(picamera2_stand_in: type[StandInPicamera2]) -> None:
    source = Picamera2Source(_config())
    source.open()
    try:
        camera = picamera2_stand_in.instances[0]
        camera.stalled = True
        assert source.read(timeout_s=0.05) is None
        assert source.read(timeout_s=0.05) is None
        assert camera.jobs_created == 1  # the second read waited on the same request
        camera.stalled = False
        frame = source.read(timeout_s=1.0)
        assert frame is not None and frame.sequence == 0
        assert camera.jobs_created == 1 and camera.outstanding == set()
    finally:
        source.close()


def test_a_camera_silent_for_too_long_is_a_camera_error_and_the_source_reopens(
    picamera2_stand_in: type[StandInPicamera2],
) -> None:
    source = Picamera2Source(_config(), stalled_after_s=0.2)
    source.open()
    picamera2_stand_in.instances[0].stalled = True
    assert source.read(timeout_s=0.1) is None
    with pytest.raises(CameraError, match="no frame from camera 0"):
        source.read(timeout_s=0.15)
    source.close()
    source.close()  # safe twice
    assert picamera2_stand_in.instances[0].closed
    with pytest.raises(CameraError, match="before open"):
        source.read()
    source.open()
    frame = source.read(timeout_s=1.0)
    source.close()
    assert frame is not None and frame.sequence == 0 and len(picamera2_stand_in.instances) == 2


def test_a_sensor_clock_that_fits_neither_clock_falls_back_to_arrival_time(
    picamera2_stand_in: type[StandInPicamera2],
) -> None:
    source = Picamera2Source(_config())
    with source:
        picamera2_stand_in.instances[0].sensor_clock_offset_s = 5000.0
        frame = source.read(timeout_s=1.0)
        after = time.monotonic()
    assert frame is not None and after - 0.05 < frame.capture_ts_s <= after
    assert source.timestamp_fallbacks == 1


def test_without_picamera2_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` raise ImportError
    with pytest.raises(CameraError) as caught:
        Picamera2Source(_config()).open()
    assert str(caught.value) == PICAMERA2_MISSING
    assert "sudo apt install python3-picamera2" in PICAMERA2_MISSING and "--system-site-packages" in PICAMERA2_MISSING


def test_a_missing_camera_is_a_camera_error_naming_it(picamera2_stand_in: type[StandInPicamera2]) -> None:
    with pytest.raises(CameraError, match=r"cannot open CSI camera 1 .*rpicam-hello --list-cameras"):
        Picamera2Source(_config(camera_index=1)).open()


def test_a_refused_configuration_closes_the_camera(picamera2_stand_in: type[StandInPicamera2]) -> None:
    source = Picamera2Source(_config(main_size_px=(160, 120), lores_size_px=(320, 240)))
    with pytest.raises(CameraError, match="lores stream dimensions may not exceed main stream"):
        source.open()
    assert picamera2_stand_in.instances[0].closed


S = 1_000_000_000  # ns per second


@pytest.mark.parametrize(
    ("sensor_ns", "now_s", "boot_minus_mono_s", "expected"),
    [
        (100 * S, 100.02, 0.0, 100.0),  # monotonic, 20 ms old
        (100 * S, 100.02, None, 100.0),  # no CLOCK_BOOTTIME on this system
        (160 * S, 100.02, 60.0, 100.0),  # CLOCK_BOOTTIME after 60 s of suspend
        (100 * S, 99.0, 0.0, None),  # from the future
        (100 * S, 105.0, 0.0, None),  # older than any queued frame can be
        (None, 100.0, 0.0, None),  # no timestamp in the metadata
    ],
)
def test_sensor_timestamp_conversion(
    sensor_ns: int | None, now_s: float, boot_minus_mono_s: float | None, expected: float | None
) -> None:
    result = sensor_ts_to_monotonic(sensor_ns, now_s, boot_minus_mono_s, max_age_s=1.0)
    assert result == (None if expected is None else pytest.approx(expected))


# --------------------------------------------------------------------------------------------------
# Real hardware
# --------------------------------------------------------------------------------------------------


def _real_camera_count() -> int:
    if importlib.util.find_spec("picamera2") is None:
        return 0
    try:
        from picamera2 import Picamera2

        return len(Picamera2.global_camera_info())
    except Exception:
        return 0


@pytest.mark.hardware
def test_a_real_csi_camera_delivers_bgr_frames_on_the_monotonic_clock() -> None:
    if _real_camera_count() == 0:
        pytest.skip("needs picamera2 (Raspberry Pi OS) and a CSI camera")
    source = Picamera2Source(_config(main_size_px=(640, 480), frames_per_second=30.0))
    with source:
        frames = [source.read(timeout_s=2.0) for _ in range(10)]
        now = time.monotonic()
    done = [f for f in frames if f is not None]
    assert len(done) >= 8
    assert all(f.image.shape == (480, 640, 3) for f in done)
    assert all(0 <= now - f.capture_ts_s < 2.0 for f in done)
    assert source.timestamp_fallbacks == 0, "SensorTimestamp is not on the monotonic clock here"
