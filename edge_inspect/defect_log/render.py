"""Pictures for the review pages: the frame with its regions drawn, and a region's defect heat map."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..events import RegionResult, Verdict
from .images import encode_jpeg
from .schema import DefectRecord, LoggedRegion

HEAT_ALPHA = 0.45  # share of the colour map in the blend: the part stays recognisable underneath


def read_image(path: Path) -> np.ndarray | None:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def annotated_frame(frame: np.ndarray, record: DefectRecord, max_width_px: int, quality: int) -> bytes:
    """The frame reduced to ``max_width_px``, each region boxed with its score (red when defective)."""
    from ..web.render import draw_overlay, reduce

    image, scale = reduce(frame, max_width_px)
    regions = [
        RegionResult(r.name, r.x_px, r.y_px, r.width_px, r.height_px, r.defect_score, r.is_defect)
        for r in record.regions
    ]
    return encode_jpeg(draw_overlay(image, scale, regions, Verdict(record.verdict)), quality)


def heat_map(crop: np.ndarray, region: LoggedRegion, quality: int) -> bytes | None:
    """The crop under its tile scores as a colour map (blue 0 .. red 1), or None without tile scores."""
    if not region.tile_scores:
        return None
    grid = np.clip(np.array(region.tile_scores, dtype=np.float32), 0.0, 1.0)
    height, width = crop.shape[:2]
    smooth = cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap((smooth * 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(crop, 1.0 - HEAT_ALPHA, colours, HEAT_ALPHA, 0.0)
    return encode_jpeg(blended, quality)
