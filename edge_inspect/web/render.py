"""Drawing what the appliance decided onto a reduced copy of the frame, and JPEG encoding it."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..events import RegionResult, Verdict
from ..shrink import shrink_to_width

GREEN = (60, 200, 60)  # BGR
RED = (40, 40, 230)
AMBER = (0, 170, 255)
GREY = (160, 160, 160)

VERDICT_COLORS = {Verdict.GOOD: GREEN, Verdict.DEFECT: RED, Verdict.FAILSAFE: AMBER}


def reduce(image: np.ndarray, max_width_px: int) -> tuple[np.ndarray, float]:
    """A copy at most ``max_width_px`` wide (never the caller's array), and the scale applied."""
    width = image.shape[1]
    if width <= max_width_px:
        return image.copy(), 1.0
    return shrink_to_width(image, max_width_px), max_width_px / width


def _label(image: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int], size: float) -> None:
    thickness = max(1, round(size * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, thickness)
    x, y = origin
    y = max(y, h + base + 2)
    cv2.rectangle(image, (x, y - h - base - 2), (x + w + 4, y + 2), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 2, y - base + 1), cv2.FONT_HERSHEY_SIMPLEX, size, color, thickness, cv2.LINE_AA)


def draw_overlay(
    image: np.ndarray, scale: float, regions: Sequence[RegionResult], verdict: Verdict | None
) -> np.ndarray:
    """Regions as rectangles (red defective, green good) with their scores; the verdict top left. In place."""
    height, width = image.shape[:2]
    text_size = max(0.4, width / 1100.0)
    line = max(1, round(width / 320.0))
    for region in regions:
        color = RED if region.is_defect else GREEN
        x0, y0 = round(region.x_px * scale), round(region.y_px * scale)
        x1 = min(width - 1, round((region.x_px + region.width_px) * scale) - 1)
        y1 = min(height - 1, round((region.y_px + region.height_px) * scale) - 1)
        cv2.rectangle(image, (x0, y0), (x1, y1), color, line)
        _label(image, f"{region.name} {region.defect_score:.2f}", (x0 + line, y1 - line), color, text_size * 0.8)
    if verdict is None:
        _label(image, "NO VERDICT", (4, 4), GREY, text_size)
    else:
        _label(image, verdict.value.upper(), (4, 4), VERDICT_COLORS[verdict], text_size * 1.2)
    return image


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV fails only on empty or odd arrays
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def render_jpeg(
    image: np.ndarray,
    regions: Sequence[RegionResult],
    verdict: Verdict | None,
    max_width_px: int,
    quality: int,
) -> bytes:
    """Reduce, draw, encode: the one function the stream and the filmstrip share."""
    reduced, scale = reduce(image, max_width_px)
    return encode_jpeg(draw_overlay(reduced, scale, regions, verdict), quality)
