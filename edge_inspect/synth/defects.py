"""Defects drawn onto a part's machined surface: scratch, pit, crack, missing feature.

Each drawing function returns a new surface (never edits its input) and the defect's bounding box.
Marks are drawn through anti-aliased masks limited to solid metal, so they never appear on the belt
or inside a hole. Sizes are set for a 240 px short side and scale with the frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from .parts import PartDesign, Placement

DEFECT_KINDS = ("scratch", "pit", "crack", "missing_feature")
BBox = tuple[int, int, int, int]
_SUBPIXEL_BITS = 3  # cv2 drawing with fractional coordinates


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.rint(points * (1 << _SUBPIXEL_BITS)).astype(np.int32).reshape(-1, 1, 2)


def _polyline_mask(shape: tuple[int, int], points: np.ndarray, thickness_px: int) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.polylines(canvas, [_fixed(points)], False, 255, thickness_px, cv2.LINE_AA, _SUBPIXEL_BITS)
    return canvas.astype(np.float32) / 255.0


def mask_bbox(mask: np.ndarray, threshold: float = 0.25) -> BBox | None:
    """Tight (x, y, w, h) of the mask's visible part, None if nothing shows."""
    ys, xs = np.nonzero(mask > threshold)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _on_solid_face(
    rng: np.random.Generator, design: PartDesign, placement: Placement, clearance: float
) -> tuple[float, float]:
    """A random point on the flange face, away from the bore, the rim and the bolt holes."""
    holes = placement.bolt_holes(design)
    for _ in range(200):
        rn = rng.uniform(design.bore_ratio + 0.1, 0.88)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        x = placement.center_x_px + rn * placement.radius_px * math.cos(angle)
        y = placement.center_y_px + rn * placement.radius_px * math.sin(angle)
        if all(math.hypot(x - hx, y - hy) > hr * 1.5 + clearance for hx, hy, hr in holes):
            return x, y
    return x, y


def _blend(surface: np.ndarray, mask: np.ndarray, target: np.ndarray | float) -> np.ndarray:
    return (surface * (1.0 - mask) + target * mask).astype(np.float32)


def scratch(
    rng: np.random.Generator,
    surface: np.ndarray,
    solid: np.ndarray,
    design: PartDesign,
    placement: Placement,
    scale: float,
) -> tuple[np.ndarray, BBox | None]:
    """A thin, slightly curved bright or dark line across the face."""
    x0, y0 = _on_solid_face(rng, design, placement, 0.0)
    length = rng.uniform(0.4, 0.85) * placement.radius_px
    angle = rng.uniform(0.0, 2.0 * math.pi)
    bend = rng.uniform(-0.08, 0.08) * placement.radius_px
    t = np.linspace(0.0, 1.0, 16)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    points = np.array([x0, y0]) + np.outer(t * length, direction) + np.outer(bend * np.sin(math.pi * t), normal)
    thickness = max(1, round(rng.uniform(1.6, 3.0) * scale))
    mask = _polyline_mask(surface.shape, points, thickness) * solid
    delta = rng.uniform(65.0, 100.0) * (1.0 if rng.random() < 0.5 else -1.0)
    return _blend(surface, mask, np.clip(surface + delta, 0.0, 255.0)), mask_bbox(mask)


def pit(
    rng: np.random.Generator,
    surface: np.ndarray,
    solid: np.ndarray,
    design: PartDesign,
    placement: Placement,
    scale: float,
) -> tuple[np.ndarray, BBox | None]:
    """One to three small dark craters (a few px to about 12 px across) close together."""
    x0, y0 = _on_solid_face(rng, design, placement, 6.0 * scale)
    canvas = np.zeros(surface.shape, np.float32)
    for index in range(int(rng.integers(1, 4))):
        radius = max(1.5, rng.uniform(3.0, 6.0) * scale)
        spread = 0.0 if index == 0 else 0.18 * placement.radius_px
        cx, cy = x0 + rng.uniform(-spread, spread), y0 + rng.uniform(-spread, spread)
        yy, xx = np.mgrid[0 : surface.shape[0], 0 : surface.shape[1]].astype(np.float32)
        canvas = np.maximum(canvas, np.clip(radius - np.hypot(xx - cx, yy - cy) + 0.5, 0.0, 1.0))
    mask = cv2.GaussianBlur(canvas, (0, 0), 0.6) * solid
    darkness = rng.uniform(0.15, 0.4)
    return _blend(surface, mask, surface * darkness), mask_bbox(mask)


def _crack_path(rng: np.random.Generator, start: np.ndarray, heading: float, steps: int, step_px: float) -> np.ndarray:
    points = [start]
    for _ in range(steps):
        heading += rng.uniform(-0.7, 0.7)
        points.append(points[-1] + step_px * rng.uniform(0.6, 1.4) * np.array([math.cos(heading), math.sin(heading)]))
    return np.array(points)


def crack(
    rng: np.random.Generator,
    surface: np.ndarray,
    solid: np.ndarray,
    design: PartDesign,
    placement: Placement,
    scale: float,
) -> tuple[np.ndarray, BBox | None]:
    """A jagged dark line running in from the rim or from a bolt hole, sometimes branching."""
    cx, cy, radius = placement.center_x_px, placement.center_y_px, placement.radius_px
    if rng.random() < 0.5:
        angle = rng.uniform(0.0, 2.0 * math.pi)
        start = np.array([cx + 0.98 * radius * math.cos(angle), cy + 0.98 * radius * math.sin(angle)])
        heading = angle + math.pi + rng.uniform(-0.5, 0.5)
    else:
        hx, hy, hr = placement.bolt_holes(design)[int(rng.integers(design.bolt_hole_count))]
        angle = rng.uniform(0.0, 2.0 * math.pi)
        start = np.array([hx + hr * math.cos(angle), hy + hr * math.sin(angle)])
        heading = angle + rng.uniform(-0.4, 0.4)
    step_px = rng.uniform(0.05, 0.08) * radius
    path = _crack_path(rng, start, heading, int(rng.integers(6, 11)), step_px)
    thickness = max(1, round(rng.uniform(1.5, 2.4) * scale))
    mask = _polyline_mask(surface.shape, path, thickness)
    if rng.random() < 0.4:
        fork = path[len(path) // 2]
        branch = _crack_path(rng, fork, heading + rng.choice([-1.0, 1.0]), int(rng.integers(2, 5)), step_px)
        mask = np.maximum(mask, _polyline_mask(surface.shape, branch, max(1, thickness - 1)))
    mask = mask * solid
    return _blend(surface, mask, surface * rng.uniform(0.1, 0.3)), mask_bbox(mask)


def missing_hole_bbox(design: PartDesign, placement: Placement, index: int, shape: tuple[int, int]) -> BBox:
    """Bounding box of the bolt hole (with its chamfer) that was never drilled."""
    hx, hy, hr = placement.bolt_holes(design)[index]
    extent = hr * 1.35
    x0, y0 = max(0, math.floor(hx - extent)), max(0, math.floor(hy - extent))
    x1, y1 = min(shape[1], math.ceil(hx + extent)), min(shape[0], math.ceil(hy + extent))
    return x0, y0, x1 - x0, y1 - y0


SurfaceDefect = Callable[
    [np.random.Generator, np.ndarray, np.ndarray, PartDesign, Placement, float], tuple[np.ndarray, "BBox | None"]
]
SURFACE_DEFECTS: dict[str, SurfaceDefect] = {"scratch": scratch, "pit": pit, "crack": crack}
