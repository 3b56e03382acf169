from __future__ import annotations

import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_inspect.config import ReplaySourceConfig
from edge_inspect.errors import CameraError
from edge_inspect.sources import create_source
from edge_inspect.sources.replay import ReplaySource


def test_folder_replay_loops_at_the_set_rate(replay_folder: Path) -> None:
    source = create_source(ReplaySourceConfig(path=replay_folder, frames_per_second=100.0))
    with source:
        frames = [source.read(1.0) for _ in range(20)]
    assert all(f is not None for f in frames)
    sequences = [f.sequence for f in frames if f is not None]
    # A reader delayed by a loaded machine skips frames (counted) rather than stretching the schedule.
    assert sequences[0] == 0 and all(b > a for a, b in itertools.pairwise(sequences))
    assert isinstance(source, ReplaySource) and source.frames_dropped == sequences[-1] + 1 - len(sequences)
    stamps = [f.capture_ts_s for f in frames if f is not None]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert stamps[-1] - stamps[0] == pytest.approx((sequences[-1] - sequences[0]) / 100.0, abs=0.05)
    first = frames[0]
    assert first is not None and first.image.shape == (48, 64, 3) and first.image.dtype == np.uint8
    assert isinstance(source, ReplaySource)
    assert source.name_of(9) == "part_01.png"


def test_frames_are_decoded_once_and_read_only(replay_folder: Path) -> None:
    source = ReplaySource(ReplaySourceConfig(path=replay_folder, frames_per_second=1000.0))
    source.open()
    first = source.read()
    assert first is not None
    again = source.read()
    while again is None or again.sequence % 8 != first.sequence % 8:  # the same file, a loop later
        again = source.read()  # (a loaded reader may skip frames: their count is the skip's business)
    assert again.sequence > first.sequence
    assert again.image is first.image  # the same buffer, not a new decode
    with pytest.raises(ValueError, match="read-only"):
        first.image[0, 0, 0] = 1


def test_a_slow_reader_gets_the_frame_due_now_and_skips_are_counted(replay_folder: Path) -> None:
    source = ReplaySource(ReplaySourceConfig(path=replay_folder, frames_per_second=100.0))
    source.open()
    source.read()
    time.sleep(0.1)
    frame = source.read()
    assert frame is not None and frame.sequence >= 8
    assert source.frames_dropped == frame.sequence - 1


def test_no_loop_ends_with_a_camera_error(replay_folder: Path) -> None:
    source = ReplaySource(ReplaySourceConfig(path=replay_folder, frames_per_second=1000.0, loop=False))
    source.open()
    sequences = []
    with pytest.raises(CameraError, match="end of the recording"):
        for _ in range(100):  # a loaded reader may skip frames, so fewer than 8 reads may reach the end
            frame = source.read(timeout_s=5.0)
            assert frame is not None
            sequences.append(frame.sequence)
    assert sequences and sequences == sorted(set(sequences)) and sequences[-1] <= 7


def test_video_file_replay(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for level in (20, 120, 220):
        writer.write(np.full((48, 64, 3), level, np.uint8))
    writer.release()
    source = ReplaySource(ReplaySourceConfig(path=path, frames_per_second=500.0))
    source.open()
    frames = [f for f in (source.read() for _ in range(4)) if f is not None]
    assert len(frames) == 4 and len(source.frames) == 3
    # by sequence: a loaded reader may skip frames, yet each frame is the file's frame at that position
    assert [round(int(f.image.mean()), -1) for f in frames] == [(20, 120, 220)[f.sequence % 3] for f in frames]


@pytest.mark.parametrize("setup", ["missing", "empty", "garbage"])
def test_unusable_replay_path_is_a_camera_error(tmp_path: Path, setup: str) -> None:
    path = tmp_path / "imgs"
    if setup != "missing":
        path.mkdir()
    if setup == "garbage":
        (path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CameraError, match="does not exist" if setup == "missing" else "no readable images"):
        ReplaySource(ReplaySourceConfig(path=path)).open()


def test_unreadable_files_are_skipped_and_listed(replay_folder: Path) -> None:
    (replay_folder / "zz_broken.jpg").write_bytes(b"\xff\xd8 truncated")
    source = ReplaySource(ReplaySourceConfig(path=replay_folder))
    source.open()
    assert len(source.frames) == 8 and source.skipped_files == ["zz_broken.jpg (unreadable)"]


def test_unknown_source_type_names_the_choices() -> None:
    from edge_inspect.errors import ConfigError
    from edge_inspect.registry import SOURCES, load_backend

    with pytest.raises(ConfigError, match=r"unknown type 'usb' \(choices: opencv, picamera2, replay\)"):
        load_backend(SOURCES, "source", "usb")


def test_unreadable_and_empty_files_are_named_once_in_a_warning_and_counted(
    replay_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (replay_folder / "a_empty.png").write_bytes(b"")
    (replay_folder / "sub").mkdir()
    (replay_folder / "sub" / "b_broken.jpg").write_bytes(b"\xff\xd8 truncated")
    source = ReplaySource(ReplaySourceConfig(path=replay_folder))
    with caplog.at_level("WARNING", logger="edge_inspect.sources.replay"):
        source.open()
        source.close()
        source.open()  # a reopen after a camera fault: the frames are held, nothing new to say
    warnings = [r.getMessage() for r in caplog.records if r.name == "edge_inspect.sources.replay"]
    assert warnings == [
        f"replay source: skipped 2 of 10 image file(s) in {replay_folder}: "
        "a_empty.png (empty), sub/b_broken.jpg (unreadable)"
    ]
    assert source.files_skipped == 2 and len(source.frames) == 8


def test_a_long_list_of_skipped_files_is_cut_short(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), np.zeros((8, 8, 3), np.uint8))
    for i in range(13):
        (folder / f"bad_{i:02d}.png").write_bytes(b"")
    source = ReplaySource(ReplaySourceConfig(path=folder))
    with caplog.at_level("WARNING", logger="edge_inspect.sources.replay"):
        source.open()
    (message,) = [r.getMessage() for r in caplog.records if r.name == "edge_inspect.sources.replay"]
    assert message.endswith("bad_09.png (empty) and 3 more") and source.files_skipped == 13
