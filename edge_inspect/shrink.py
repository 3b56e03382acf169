"""Downscaling pictures for people (stream frames, filmstrip and QA thumbnails): area quality, a fraction of the cost.

``cv2.INTER_AREA`` at a scale that is not a whole fraction (320 -> 240 px) takes OpenCV's general path: 0.5 ms
for a 320 x 240 frame and 4 ms for 1280 x 960 on this project's build machine (docs/PERFORMANCE.md). Halving by
exact 2 x 2 averages (the fast path of the same filter) while the picture is at least twice the target, then a
bilinear step for the last factor below 2 (each output pixel reads a 2 x 2 neighbourhood, so nothing is
skipped), looks the same (mean difference 0.4 grey levels on the sample frames, under 2 at every size
tests/test_shrink.py tries) at 5 to 9 times less CPU. Model inputs do
not use this: their preprocessing is part of the model's contract (:mod:`edge_inspect.classify.preprocess`).
"""

from __future__ import annotations

import cv2
import numpy as np


def shrink_to_width(image: np.ndarray, width_px: int) -> np.ndarray:
    """A copy ``width_px`` wide, aspect ratio kept; the image itself when it is no wider than that."""
    if width_px < 1:
        raise ValueError(f"width_px must be at least 1, not {width_px}")
    height, width = image.shape[:2]
    if width <= width_px:
        return image
    target = (width_px, max(1, round(height * width_px / width)))
    while image.shape[1] >= 2 * width_px and image.shape[0] >= 2 * target[1]:
        half = (image.shape[1] // 2, image.shape[0] // 2)
        image = cv2.resize(image, half, interpolation=cv2.INTER_AREA)
    if image.shape[1::-1] == target:  # a whole power of two: the halving was all of it (and a copy)
        return image
    return cv2.resize(image, target, interpolation=cv2.INTER_LINEAR)
