"""Training data: one folder per class (``good/`` passes, every other folder is a defect), and its split.

``good/`` + ``defect/<type>/`` works too: everything below a defect folder counts, and the sub-folder is
kept as the defect kind for per-kind figures. Images are decoded once and resized to the model input
with the runtime's own reduction (:func:`fit_to_input_bgr`), so training sees exactly what the line will.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..classify.metadata import ModelMetadata
from ..classify.preprocess import fit_to_input_bgr
from ..dataset import list_labelled
from ..errors import DataError

GROUND_TRUTH_FILE = "ground_truth.csv"  # optional, as written by ``edge-inspect synth``: refines defect kinds


@dataclass(frozen=True)
class DataSet:
    """Decoded images at model input size (BGR uint8) with their labels and where they came from."""

    images: np.ndarray  # N x H x W x 3
    is_defect: np.ndarray  # N, bool
    kinds: tuple[str, ...]  # class folder relative to the root, e.g. "good", "defect/scratch"
    names: tuple[str, ...]  # path relative to the root
    skipped: tuple[str, ...]  # unreadable files, relative to the root

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class SplitIndices:
    """Which samples train and which validate."""

    train: np.ndarray
    val: np.ndarray


def _known_kinds(root: Path) -> dict[str, str]:
    """Defect kind per relative file name from a ``ground_truth.csv`` beside the class folders, if any."""
    path = root / GROUND_TRUTH_FILE
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return {row["filename"]: row["defect_kind"] for row in csv.DictReader(handle) if row.get("defect_kind")}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        return {}  # only a refinement of the per-kind figures; the folders stay the labels


def load_dataset(
    root: Path, good_label: str, meta: ModelMetadata, scale: float | None = None, require_defects: bool = True
) -> DataSet:
    """Decode every image below ``root``'s class folders; unreadable files are skipped and listed.

    Images are resized to the model input, or, for tiled training, scaled by ``scale`` whole (sizes may
    differ, so ``images`` is then a 1-D array of arrays).
    """
    root = Path(root)
    images: list[np.ndarray] = []
    labels: list[bool] = []
    kinds: list[str] = []
    names: list[str] = []
    skipped: list[str] = []
    per_class: dict[str, int] = {}
    known = _known_kinds(root)
    for item in list_labelled(root, good_label, require_defects):
        folder = item.class_folder(root)
        top = folder.split("/")[0]
        per_class.setdefault(top, 0)
        name = item.path.relative_to(root).as_posix()
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None:
            skipped.append(name)
            continue
        images.append(fit_to_input_bgr(image, meta) if scale is None else _scaled(image, scale))
        labels.append(item.is_defect)
        kinds.append(f"{folder}/{known[name]}" if name in known and item.is_defect else folder)
        names.append(name)
        per_class[top] += 1
    _check_classes(root, good_label, per_class, skipped, require_defects)
    stacked = np.stack(images) if scale is None else _object_array(images)
    return DataSet(stacked, np.array(labels, bool).reshape(-1), tuple(kinds), tuple(names), tuple(skipped))


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)


def _object_array(images: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(images), dtype=object)
    for i, image in enumerate(images):
        out[i] = image
    return out


def _check_classes(
    root: Path, good_label: str, per_class: dict[str, int], skipped: list[str], require_defects: bool = True
) -> None:
    unreadable = f" ({len(skipped)} unreadable files skipped, e.g. {skipped[0]})" if skipped else ""
    if per_class.get(good_label, 0) == 0:
        raise DataError(f"{root}/{good_label} has no readable images{unreadable}")
    defects = sum(n for name, n in per_class.items() if name != good_label)
    if not require_defects:
        if per_class[good_label] < 4:
            raise DataError(f"{root}/{good_label}: only {per_class[good_label]} images; good-only training needs 4+")
        return
    if defects == 0:
        others = [name for name in per_class if name != good_label]
        where = f"the defect folders ({', '.join(others)}) hold" if others else "there is only the good class:"
        raise DataError(f"{root}: {where} no readable images; add at least one defect folder with images{unreadable}")
    for label, count in (("good", per_class.get(good_label, 0)), ("defect", defects)):
        if count < 2:
            raise DataError(f"{root}: only {count} {label} image; need at least 2 per class to validate")


def _group_keys(names: tuple[str, ...], group_pattern: str | None) -> list[str]:
    if not group_pattern:
        return list(names)
    try:
        pattern = re.compile(group_pattern)
    except re.error as error:
        raise DataError(f"--group-pattern {group_pattern!r} is not a valid regular expression: {error}") from None
    keys = []
    for name in names:
        match = pattern.search(Path(name).name)
        if match is None:
            keys.append(name)  # a file the pattern does not name is a group of its own
        else:
            keys.append(match.group(1) if pattern.groups else match.group(0))
    return keys


def split_dataset(data: DataSet, val_fraction: float, seed: int, group_pattern: str | None = None) -> SplitIndices:
    """Hold out ``val_fraction`` per class (per defect kind); whole groups move together when grouped."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng([2, seed])
    keys = _group_keys(data.names, group_pattern)
    members: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        members.setdefault(key, []).append(index)
    # stratify groups by their most severe content: any defect kind in it, else good
    strata: dict[str, list[str]] = {}
    for key, indices in members.items():
        defect_kinds = sorted({data.kinds[i] for i in indices if data.is_defect[i]})
        strata.setdefault(defect_kinds[0] if defect_kinds else "good", []).append(key)
    val: list[int] = []
    for stratum in sorted(strata):
        groups = [strata[stratum][i] for i in rng.permutation(len(strata[stratum]))]
        total = sum(len(members[g]) for g in groups)
        want = max(1, round(total * val_fraction)) if len(groups) > 1 else 0
        taken = 0
        for group in groups:
            if taken >= want:
                break
            val.extend(members[group])
            taken += len(members[group])
    val_mask = np.zeros(len(data), bool)
    val_mask[val] = True
    for part, mask in (("validation", val_mask), ("training", ~val_mask)):
        if not (data.is_defect[mask].any() and (~data.is_defect[mask]).any()):
            raise DataError(
                f"the {part} split has only one class; add images or groups (--group-pattern makes whole groups move)"
            )
    return SplitIndices(np.flatnonzero(~val_mask), np.flatnonzero(val_mask))
