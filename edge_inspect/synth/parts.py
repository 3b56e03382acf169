"""A turned flange seen from above on a conveyor: geometry, surface, background and lighting.

Everything is drawn in float32 with anti-aliased edges (coverage = clip(distance + 0.5, 0, 1)), so
small parts and fine defects stay smooth at any frame size. Randomness only comes from the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

REFERENCE_SIDE_PX = 240.0  # sizes below are tuned for a 240 px short side and scale with the frame


@dataclass(frozen=True)
class PartDesign:
    """Nominal flange geometry, as fractions of the outer radius (the drawing, not one part)."""

    bolt_hole_count: int = 6
    outer_radius_frac: float = 0.34  # outer radius / short side of the frame
    bore_ratio: float = 0.30
    hub_ratio: float = 0.47
    bolt_circle_ratio: float = 0.70
    bolt_hole_ratio: float = 0.105
    edge_chamfer_ratio: float = 0.05


@dataclass(frozen=True)
class Placement:
    """Where one part lies in the frame."""

    center_x_px: float
    center_y_px: float
    radius_px: float
    rotation_rad: float

    def bolt_holes(self, design: PartDesign) -> list[tuple[float, float, float]]:
        """(x, y, radius) of every bolt hole the drawing specifies."""
        ring = design.bolt_circle_ratio * self.radius_px
        radius = design.bolt_hole_ratio * self.radius_px
        step = 2.0 * math.pi / design.bolt_hole_count
        return [
            (
                self.center_x_px + ring * math.cos(self.rotation_rad + i * step),
                self.center_y_px + ring * math.sin(self.rotation_rad + i * step),
                radius,
            )
            for i in range(design.bolt_hole_count)
        ]


@dataclass(frozen=True)
class Lighting:
    """Illumination and sensor of one exposure."""

    gain: float
    gradient_angle_rad: float
    gradient_strength: float
    vignette: float
    sheen_angle_rad: float
    tint_bgr: tuple[float, float, float]
    noise_sigma: float
    blur_sigma: float


def size_scale(width_px: int, height_px: int) -> float:
    """How much larger than the reference frame this frame is (short side / 240)."""
    return min(width_px, height_px) / REFERENCE_SIDE_PX


def random_placement(rng: np.random.Generator, design: PartDesign, width_px: int, height_px: int) -> Placement:
    """Position and rotation jitter of a part that always stays inside the frame."""
    radius = design.outer_radius_frac * min(width_px, height_px) * rng.uniform(0.94, 1.06)
    room_x = max(0.0, min(0.08 * width_px, width_px / 2 - radius * 1.06 - 2))
    room_y = max(0.0, min(0.08 * height_px, height_px / 2 - radius * 1.06 - 2))
    return Placement(
        center_x_px=width_px / 2 + rng.uniform(-room_x, room_x),
        center_y_px=height_px / 2 + rng.uniform(-room_y, room_y),
        radius_px=radius,
        rotation_rad=rng.uniform(0.0, 2.0 * math.pi),
    )


def random_lighting(rng: np.random.Generator) -> Lighting:
    """Brightness, gradient, vignette, colour temperature and sensor noise of one exposure."""
    warm = rng.uniform(-0.05, 0.05)
    return Lighting(
        gain=rng.uniform(0.75, 1.2),
        gradient_angle_rad=rng.uniform(0.0, 2.0 * math.pi),
        gradient_strength=rng.uniform(0.0, 0.35),
        vignette=rng.uniform(0.0, 0.3),
        sheen_angle_rad=rng.uniform(0.0, math.pi),
        tint_bgr=(1.0 - warm, 1.0, 1.0 + warm),
        noise_sigma=rng.uniform(1.5, 5.0),
        blur_sigma=rng.uniform(0.0, 0.7),
    )


def coverage_disk(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, radius: float) -> np.ndarray:
    """Anti-aliased 0..1 coverage of a filled circle."""
    return np.clip(radius - np.hypot(xx - cx, yy - cy) + 0.5, 0.0, 1.0)


def conveyor(rng: np.random.Generator, width_px: int, height_px: int, scale: float) -> np.ndarray:
    """Grey belt with woven texture, running streaks and aluminium side rails (float32 grey)."""
    yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    base = rng.uniform(45.0, 80.0)
    period = max(3.0, 6.0 * scale)
    weave = 3.0 * np.sin(2 * math.pi * xx / period) * np.sin(2 * math.pi * yy / period)
    streaks = cv2.GaussianBlur(rng.normal(0.0, 6.0, (height_px, 1)).astype(np.float32), (1, 0), 1.0)
    belt = base + weave + streaks + rng.normal(0.0, 2.0, (height_px, width_px)).astype(np.float32)
    rail_px = max(2, round(0.07 * height_px))
    rail = rng.uniform(120.0, 160.0)
    belt[:rail_px] = rail + 10.0 * np.sin(xx[:rail_px] / (9.0 * scale))
    belt[-rail_px:] = rail + 10.0 * np.sin(xx[-rail_px:] / (9.0 * scale))
    belt[rail_px - 1] = belt[-rail_px] = rail * 0.55
    return belt.astype(np.float32)


def cast_shadow(belt: np.ndarray, placement: Placement, light_angle_rad: float) -> np.ndarray:
    """Darken the belt under and beside the part, away from the light."""
    height_px, width_px = belt.shape
    yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    offset = 0.06 * placement.radius_px
    cx = placement.center_x_px - offset * math.cos(light_angle_rad)
    cy = placement.center_y_px - offset * math.sin(light_angle_rad)
    shadow = coverage_disk(xx, yy, cx, cy, placement.radius_px * 1.02)
    sigma = max(1.0, 0.05 * placement.radius_px)
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigma)
    return (belt * (1.0 - 0.5 * shadow)).astype(np.float32)


def part_surface(
    rng: np.random.Generator,
    design: PartDesign,
    placement: Placement,
    lighting: Lighting,
    shape: tuple[int, int],
    missing_hole: int | None = None,
) -> np.ndarray:
    """Machined face brightness (float32 grey): turning marks, hub step, chamfers, anisotropic sheen."""
    height_px, width_px = shape
    yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    dx, dy = xx - placement.center_x_px, yy - placement.center_y_px
    r = np.hypot(dx, dy)
    rn = r / placement.radius_px
    phi = np.arctan2(dy, dx)
    level = rng.uniform(135.0, 170.0)
    surface = np.full(shape, level, np.float32)
    surface += 8.0 * (rn < design.hub_ratio)
    surface -= 18.0 * ((rn > design.hub_ratio) & (rn < design.hub_ratio + 0.025))  # step edge
    surface += 28.0 * (rn < design.bore_ratio + 0.04)  # bright chamfer round the bore
    surface -= 26.0 * (rn > 1.0 - design.edge_chamfer_ratio)  # outer chamfer faces away
    period = rng.uniform(2.4, 3.6)
    surface += 5.0 * np.sin(2 * math.pi * r / period + rng.uniform(0, 2 * math.pi))
    surface += 4.0 * np.sin(2 * math.pi * rn / 0.13 + rng.uniform(0, 2 * math.pi))
    surface += 14.0 * np.cos(2.0 * (phi - lighting.sheen_angle_rad)) * np.clip(rn, 0.3, 1.0)
    surface += rng.normal(0.0, 3.0, shape).astype(np.float32)
    for index, (hx, hy, hr) in enumerate(placement.bolt_holes(design)):
        if index == missing_hole:
            continue
        ring = coverage_disk(xx, yy, hx, hy, hr * 1.35) - coverage_disk(xx, yy, hx, hy, hr)
        surface += 24.0 * ring
    return surface


def part_coverage(
    design: PartDesign, placement: Placement, shape: tuple[int, int], missing_hole: int | None = None
) -> np.ndarray:
    """0..1 coverage of solid metal: the disk minus the bore and the bolt holes actually cut."""
    height_px, width_px = shape
    yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    cx, cy, radius = placement.center_x_px, placement.center_y_px, placement.radius_px
    solid = coverage_disk(xx, yy, cx, cy, radius) - coverage_disk(xx, yy, cx, cy, design.bore_ratio * radius)
    for index, (hx, hy, hr) in enumerate(placement.bolt_holes(design)):
        if index != missing_hole:
            solid = solid - coverage_disk(xx, yy, hx, hy, hr)
    return np.clip(solid, 0.0, 1.0).astype(np.float32)


def expose(
    rng: np.random.Generator, belt: np.ndarray, surface: np.ndarray, solid: np.ndarray, lighting: Lighting
) -> np.ndarray:
    """Composite part over belt, light it, add blur and sensor noise; BGR uint8."""
    height_px, width_px = belt.shape
    grey = belt * (1.0 - solid) + surface * solid
    yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    cx, cy = width_px / 2.0, height_px / 2.0
    along = ((xx - cx) * math.cos(lighting.gradient_angle_rad) + (yy - cy) * math.sin(lighting.gradient_angle_rad)) / (
        max(width_px, height_px) / 2.0
    )
    corner = np.hypot(xx - cx, yy - cy) / math.hypot(cx, cy)
    grey = grey * lighting.gain * (1.0 + lighting.gradient_strength * along) * (1.0 - lighting.vignette * corner**2)
    if lighting.blur_sigma > 0.3:
        grey = cv2.GaussianBlur(grey, (0, 0), lighting.blur_sigma)
    image = np.stack([grey * t for t in lighting.tint_bgr], axis=2)
    image += rng.normal(0.0, lighting.noise_sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
