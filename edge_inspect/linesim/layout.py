"""Parts on the simulated belt: where each one sits, how long it is, and whether it is defective.

Belt coordinates: position 0 is the camera axis (the photo-eye is mounted so a part is centred under
the camera when its leading edge breaks the beam); part ``i`` is centred ``offset_mm`` upstream of it
at the start, so it reaches the camera when the belt has travelled ``offset_mm``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..synth import DEFECT_KINDS, plan_defects, render_frame


@dataclass(frozen=True)
class SimPart:
    """One part on the belt, with its ground truth."""

    index: int
    offset_mm: float
    length_mm: float
    defect_kind: str | None
    image_index: int

    @property
    def is_defect(self) -> bool:
        return self.defect_kind is not None


@dataclass(frozen=True)
class ImagePool:
    """Rendered synth frames the parts' images come from: good ones and defective ones, with their kinds."""

    good: tuple[np.ndarray, ...]
    defect: tuple[tuple[str, np.ndarray], ...]
    empty_belt: np.ndarray


@functools.lru_cache(maxsize=4)
def render_pool(seed: int, images_per_class: int, size_px: tuple[int, int] = (320, 240)) -> ImagePool:
    """``images_per_class`` good and defective frames from the synth generator (cached per process)."""
    good = tuple(
        render_frame(np.random.default_rng([3, seed, i]), None, size_px).image_bgr for i in range(images_per_class)
    )
    defect = tuple(
        (kind, render_frame(np.random.default_rng([4, seed, i]), kind, size_px).image_bgr)
        for i, kind in ((i, DEFECT_KINDS[i % len(DEFECT_KINDS)]) for i in range(images_per_class))
    )
    for image in (*good, *(image for _, image in defect)):
        image.flags.writeable = False
    # The camera between parts sees the belt alone: a flat grey frame of the same size is enough.
    empty = np.full((size_px[1], size_px[0], 3), 90, np.uint8)
    empty.flags.writeable = False
    return ImagePool(good, defect, empty)


def lay_out_parts(
    count: int,
    length_mm: float,
    pitch_mm: float,
    jitter_mm: float,
    defect_fraction: float,
    seed: int,
    pool: ImagePool,
    lead_mm: float = 20.0,
) -> list[SimPart]:
    """``count`` parts at ``pitch_mm`` (+- uniform ``jitter_mm``), never overlapping; defects per the synth plan."""
    if count < 1:
        raise ConfigError(f"--parts must be at least 1, got {count}")
    if length_mm <= 0 or pitch_mm <= 0 or jitter_mm < 0:
        raise ConfigError("part length and pitch must be positive, jitter not negative")
    if pitch_mm - 2 * jitter_mm < length_mm:
        raise ConfigError(
            f"pitch {pitch_mm} mm - 2 x jitter {jitter_mm} mm is shorter than a part ({length_mm} mm): "
            "parts would overlap"
        )
    plan = plan_defects(count, defect_fraction, seed)
    rng = np.random.default_rng([5, seed])
    parts = []
    good_seen = defect_seen = 0
    for index, planned in enumerate(plan):
        offset = lead_mm + index * pitch_mm + float(rng.uniform(-jitter_mm, jitter_mm))
        if planned is None:
            image_index, kind = good_seen % len(pool.good), None
            good_seen += 1
        else:
            image_index = defect_seen % len(pool.defect)
            kind = pool.defect[image_index][0]
            defect_seen += 1
        parts.append(SimPart(index, max(offset, 0.0), length_mm, kind, image_index))
    return parts


def image_of(part: SimPart, pool: ImagePool) -> np.ndarray:
    return pool.good[part.image_index] if part.defect_kind is None else pool.defect[part.image_index][1]
