"""A camera that delivers frames late (or a starved capture thread) still serves each trigger edge.

The matcher used to expire an edge against the clock before the frame just read was added, so a frame
captured at the edge but read more than ``max_frame_offset_ms`` later turned a good part into a missed
trigger (or paired it with the wrong frame). Edges now expire against the capture time of the frames.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from conftest import DARK, build_inspector, make_config, solid_image

from edge_inspect.events import Verdict
from edge_inspect.report import collect
from edge_inspect.sources.base import Frame, FrameSource
from edge_inspect.triggers import SoftwareTrigger


class LateCamera(FrameSource):
    """Frames at ``fps``, each handed over ``delivery_s`` after its capture time (sensor timestamp)."""

    name = "late"

    def __init__(self, fps: float = 20.0, delivery_s: float = 0.15) -> None:
        self.period_s, self.delivery_s = 1.0 / fps, delivery_s
        self.image: np.ndarray = solid_image(DARK)
        self._start_s = 0.0
        self._sequence = 0

    def open(self) -> None:
        self._start_s = time.monotonic()
        self._sequence = 0

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        capture_s = self._start_s + self._sequence * self.period_s
        wait_s = capture_s + self.delivery_s - time.monotonic()
        if wait_s > timeout_s:
            time.sleep(timeout_s)
            return None
        if wait_s > 0:
            time.sleep(wait_s)
        frame = Frame(self._sequence, capture_s, self.image, self.name)
        self._sequence += 1
        return frame

    def close(self) -> None:
        pass


def test_frames_read_after_the_offset_still_serve_their_edge(model_path: Path, replay_folder: Path) -> None:
    config = make_config(
        model_path,
        replay_folder,
        trigger={"mode": "triggered", "input": {"type": "software"}, "max_frame_offset_ms": 40.0},
        line={"travel_delay_ms": 1500.0},
    )
    trigger = SoftwareTrigger()
    inspector = build_inspector(config, source=LateCamera(), trigger=trigger)
    subscription = inspector.subscribe("test")
    with inspector:
        inspector.start(max_parts=3)
        for _ in range(3):
            time.sleep(0.3)  # spacing between parts on the belt, not a wait for a condition
            trigger.fire()
        assert inspector.wait_until_done(20)
        results = collect(subscription)
    assert len(results) == 3
    assert [r.failsafe_reason for r in results] == [None, None, None]
    assert all(r.verdict is Verdict.GOOD and r.frame_sequence is not None for r in results)
