"""CPU per picture of the people-facing downscale: ``cv2.INTER_AREA`` (before) against ``shrink_to_width``.

Thread CPU time, best of several rounds, one thread; then the defect log's whole ``write_part`` (frame JPEG,
thumbnail, files) per part with each, in a scratch folder under ``--dir`` (default: the current folder, so
the files land on the disk the log would use; on some machines /tmp creates files far slower):

    .venv/bin/python benchmarks/shrink_cost.py [--dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from edge_inspect.defect_log import images
from edge_inspect.events import FailsafeReason, PartResult, Verdict
from edge_inspect.shrink import shrink_to_width

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


def area_to_width(image: np.ndarray, width_px: int) -> np.ndarray:
    """The code before: one INTER_AREA resize straight to the target."""
    height, width = image.shape[:2]
    if width <= width_px:
        return image
    return cv2.resize(image, (width_px, max(1, round(height * width_px / width))), interpolation=cv2.INTER_AREA)


def best_cpu_us(step: Callable[[], object], loops: int = 20, rounds: int = 15) -> float:
    step()
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(loops):
            step()
        best = min(best, (time.thread_time() - start) / loops * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="scratch folder parent for write_part")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one thread's cost, as the consumers see it on a busy box
    frame = cv2.imread(str(sorted(SAMPLES.glob("*.jpg"))[0]))
    assert frame is not None, "sample_images/ holds no readable JPEG"
    print("| frame | target width | INTER_AREA, µs | shrink_to_width, µs | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for size, width_px in (((320, 240), 240), ((320, 240), 160), ((1280, 960), 240), ((1280, 960), 640),
                           ((1920, 1080), 640)):
        image = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
        before = best_cpu_us(partial(area_to_width, image, width_px))
        after = best_cpu_us(partial(shrink_to_width, image, width_px))
        print(f"| {size[0]} x {size[1]} | {width_px} | {before:.0f} | {after:.0f} | {before / after:.1f} |")
    result = PartResult(1, "bench-1", 1, 0.0, time.time(), Verdict.FAILSAFE, FailsafeReason.QUEUE_FULL, True, (),
                        0.5, "m", "1", None, 0.25, 0.25, frame)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ei-shrink-") as scratch:
        files = images.ImageFiles(Path(scratch))
        for name, shrink in (("INTER_AREA", area_to_width), ("shrink_to_width", shrink_to_width)):
            images.thumbnail = lambda image, width_px, shrink=shrink: shrink(image, width_px)  # type: ignore[misc]
            cost = best_cpu_us(lambda: files.write_part(result, result.capture_wall_time_s), loops=10)
            print(f"write_part (320 x 240 frame + 240 px thumbnail), thumbnail by {name}: {cost:.0f} µs CPU")


if __name__ == "__main__":
    main()
