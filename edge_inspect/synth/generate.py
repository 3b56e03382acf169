"""Whole frames and data sets: one flange per frame, a known defect (or none), ground truth beside them.

Frame ``i`` of seed ``s`` is drawn from its own generator (``default_rng([1, s, i])``), so a frame never
depends on how many others are made, and the same seed always gives the same bytes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from .defects import DEFECT_KINDS, SURFACE_DEFECTS, BBox, missing_hole_bbox
from .parts import (
    PartDesign,
    cast_shadow,
    conveyor,
    expose,
    part_coverage,
    part_surface,
    random_lighting,
    random_placement,
    size_scale,
)

DEFAULT_SIZE_PX = (320, 240)
GROUND_TRUTH_FILE = "ground_truth.csv"
GROUND_TRUTH_FIELDS = ("filename", "label", "defect_kind", "x", "y", "w", "h")
IMAGE_FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class SyntheticFrame:
    """One rendered frame (BGR uint8) and what is wrong with it, if anything."""

    image_bgr: np.ndarray
    defect_kind: str | None
    bbox: BBox | None

    @property
    def is_defect(self) -> bool:
        return self.defect_kind is not None


@dataclass(frozen=True)
class GroundTruthRow:
    """One line of ``ground_truth.csv``: a file (relative path), its label and the defect's box."""

    filename: str
    label: str
    defect_kind: str | None
    bbox: BBox | None


def render_frame(
    rng: np.random.Generator,
    defect_kind: str | None = None,
    size_px: tuple[int, int] = DEFAULT_SIZE_PX,
    design: PartDesign | None = None,
) -> SyntheticFrame:
    """Draw one flange on the belt, with ``defect_kind`` (one of DEFECT_KINDS) or none."""
    if defect_kind is not None and defect_kind not in DEFECT_KINDS:
        raise DataError(f"unknown defect kind {defect_kind!r}; choose from {', '.join(DEFECT_KINDS)}")
    design = design or PartDesign()
    width_px, height_px = size_px
    shape = (height_px, width_px)
    scale = size_scale(width_px, height_px)
    placement = random_placement(rng, design, width_px, height_px)
    lighting = random_lighting(rng)
    # drawn for every kind, so one seed renders the same part and exposure with or without a defect
    hole_pick = int(rng.integers(design.bolt_hole_count))
    exposure_rng = np.random.default_rng(rng.integers(2**63))
    missing = hole_pick if defect_kind == "missing_feature" else None
    belt = cast_shadow(conveyor(rng, width_px, height_px, scale), placement, lighting.gradient_angle_rad)
    surface = part_surface(rng, design, placement, lighting, shape, missing)
    solid = part_coverage(design, placement, shape, missing)
    bbox: BBox | None = None
    if missing is not None:
        bbox = missing_hole_bbox(design, placement, missing, shape)
    elif defect_kind is not None:
        draw = SURFACE_DEFECTS[defect_kind]
        marked, bbox = draw(rng, surface, solid, design, placement, scale)
        while bbox is None:  # a mark that fell entirely into a hole: draw another
            marked, bbox = draw(rng, surface, solid, design, placement, scale)
        surface = marked
    return SyntheticFrame(expose(exposure_rng, belt, surface, solid, lighting), defect_kind, bbox)


def plan_defects(
    count: int, defect_fraction: float, seed: int, kinds: tuple[str, ...] = DEFECT_KINDS
) -> list[str | None]:
    """Defect kind per frame index (None: good); exactly round(count * fraction) defects, ``kinds`` balanced."""
    unknown = [kind for kind in kinds if kind not in DEFECT_KINDS]
    if unknown or not kinds:
        raise DataError(f"unknown defect kinds {unknown or '(none)'}; choose from {', '.join(DEFECT_KINDS)}")
    if count < 1:
        raise DataError(f"count must be at least 1, got {count}")
    if not 0.0 <= defect_fraction <= 1.0:
        raise DataError(f"defect fraction must be within 0..1, got {defect_fraction}")
    rng = np.random.default_rng([0, seed])
    defects = round(count * defect_fraction)
    drawn = [kinds[i % len(kinds)] for i in range(defects)]
    drawn = [drawn[i] for i in rng.permutation(defects)]
    plan: list[str | None] = [None] * count
    for index, kind in zip(sorted(rng.permutation(count)[:defects].tolist()), drawn):
        plan[index] = kind
    return plan


def frame_name(index: int, count: int, defect_kind: str | None, flat: bool, image_format: str) -> str:
    """Relative path of frame ``index``: ``good/part_0007.png`` or, flat, ``part_0007_good.png``."""
    stem = f"part_{index:0{max(4, len(str(count - 1)))}d}"
    tag = defect_kind or "good"
    if flat:
        return f"{stem}_{tag}.{image_format}"
    folder = "good" if defect_kind is None else "defect"
    return f"{folder}/{stem}.{image_format}" if defect_kind is None else f"{folder}/{stem}_{tag}.{image_format}"


def encode_image(image_bgr: np.ndarray, image_format: str, jpeg_quality: int = 95) -> bytes:
    """PNG or JPEG bytes of a BGR frame (deterministic for a given OpenCV build)."""
    if image_format not in IMAGE_FORMATS:
        raise DataError(f"unknown image format {image_format!r}; choose from {', '.join(IMAGE_FORMATS)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    ok, data = cv2.imencode(f".{image_format}", image_bgr, params)
    if not ok:
        raise DataError(f"OpenCV could not encode a {image_format} image")
    return data.tobytes()


def write_ground_truth(path: Path, rows: list[GroundTruthRow]) -> None:
    """``filename,label,defect_kind,x,y,w,h`` (box and kind empty for good parts)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(GROUND_TRUTH_FIELDS)
        for row in rows:
            box = [str(v) for v in row.bbox] if row.bbox else ["", "", "", ""]
            writer.writerow([row.filename, row.label, row.defect_kind or "", *box])


def read_ground_truth(path: Path) -> list[GroundTruthRow]:
    """Parse a ``ground_truth.csv`` written by :func:`write_ground_truth`."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    except OSError as error:
        raise DataError(f"cannot read ground truth {path}: {error.strerror}") from None
    rows = []
    for record in records:
        box = tuple(int(record[k]) for k in ("x", "y", "w", "h")) if record.get("x") else None
        rows.append(GroundTruthRow(record["filename"], record["label"], record["defect_kind"] or None, box))  # type: ignore[arg-type]
    return rows


def generate_dataset(
    out_dir: Path,
    count: int,
    defect_fraction: float,
    seed: int,
    size_px: tuple[int, int] = DEFAULT_SIZE_PX,
    *,
    flat: bool = False,
    image_format: str = "png",
    kinds: tuple[str, ...] = DEFECT_KINDS,
) -> list[GroundTruthRow]:
    """Write ``count`` frames (``good/`` and ``defect/``, or one flat folder) and ``ground_truth.csv``."""
    if size_px[0] < 32 or size_px[1] < 32:
        raise DataError(f"frame size {size_px[0]}x{size_px[1]} px is too small (at least 32x32)")
    if seed < 0:
        raise DataError(f"seed must not be negative, got {seed}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(not p.name.startswith(".") for p in out_dir.iterdir())):
        raise DataError(f"{out_dir} is not an empty folder; choose a new one so old frames cannot mix in")
    plan = plan_defects(count, defect_fraction, seed, kinds)
    encode_image(np.zeros((8, 8, 3), np.uint8), image_format)  # fail on a bad format before writing
    rows = []
    for index, kind in enumerate(plan):
        frame = render_frame(np.random.default_rng([1, seed, index]), kind, size_px)
        name = frame_name(index, count, kind, flat, image_format)
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_image(frame.image_bgr, image_format))
        rows.append(GroundTruthRow(name, "good" if kind is None else "defect", kind, frame.bbox))
    write_ground_truth(out_dir / GROUND_TRUTH_FILE, rows)
    return rows
