"""Frames travel from the camera to every consumer by reference: no stage copies one it only reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import build_inspector, make_config

from edge_inspect.classify import OnnxClassifier, Region
from edge_inspect.report import collect
from edge_inspect.sources.replay import ReplaySource


def test_consumers_get_the_camera_buffer_itself_read_only(model_path: Path, replay_folder: Path) -> None:
    config = make_config(model_path, replay_folder, line={"travel_delay_ms": 300.0})
    inspector = build_inspector(config)
    source = inspector.source
    assert isinstance(source, ReplaySource)
    subscription = inspector.subscribe("test", max_items=100)
    inspector.start(max_parts=8)
    assert inspector.wait_until_done(30.0), "inspection did not finish"
    live = inspector.live_view()
    inspector.stop()
    results = collect(subscription)
    assert len(results) == 8
    for result in results:
        assert result.frame_sequence is not None and result.image is not None
        # the very array the source delivered (identity, not an equal copy), still write-protected
        assert result.image is source.frames[result.frame_sequence % len(source.frames)]
        assert not result.image.flags.writeable
    assert live is not None and any(live.frame.image is frame for frame in source.frames)


def test_preparing_a_part_reads_the_frame_through_views(model_path: Path) -> None:
    classifier = OnnxClassifier(model_path, warmup_runs=1)
    frame = np.full((48, 64, 3), 90, np.uint8)
    frame.flags.writeable = False  # as the camera hands it out: any write (or in-place step) would raise
    region = Region("left", 0, 0, 32, 48)
    assert np.shares_memory(region.crop(frame), frame)  # a crop is a view
    prepared = classifier.prepare(frame, [region])
    assert prepared.tensor.shape[0] == 1 and not np.shares_memory(prepared.tensor, frame)
