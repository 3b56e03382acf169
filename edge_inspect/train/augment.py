"""Augmentations for inspection images, on BGR uint8 before :func:`to_tensor`: what a line varies.

Parts arrive flipped and slightly turned or off-centre, light drifts, sensors add noise; a defect's
look does not change with any of these, so they are safe to vary.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly flipped, rotated (±8°), shifted (±4 %), relit and noisier copy of ``image``."""
    height_px, width_px = image.shape[:2]
    out = image
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out[::-1, :]
    matrix = np.asarray(
        cv2.getRotationMatrix2D((width_px / 2.0, height_px / 2.0), rng.uniform(-8.0, 8.0), rng.uniform(0.95, 1.05)),
        np.float64,
    )
    matrix[:, 2] += rng.uniform(-0.04, 0.04, 2) * (width_px, height_px)
    out = cv2.warpAffine(
        np.ascontiguousarray(out),
        matrix,
        (width_px, height_px),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20.0, 20.0)
    pixels = out.astype(np.float32) * contrast + brightness
    pixels += rng.normal(0.0, rng.uniform(0.0, 4.0), pixels.shape).astype(np.float32)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
