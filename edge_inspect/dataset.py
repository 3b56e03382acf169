"""Labelled image folders: ``good/`` is the pass class, every other folder a defect class.

Also accepts ``good/`` + ``defect/<type>/``. Pure listing, no decoding: training and evaluation decide
how to read the images, and both name unusable folders the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from .sources.replay import list_images


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    is_defect: bool
    defect_type: str | None  # folder name of the defect class, None for good parts


def list_labelled(root: Path, good_label: str = "good") -> list[LabelledImage]:
    """Every image below ``root`` with its label; DataError naming the problem if unusable."""
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data folder {root} has no class folders (expected {good_label}/ and defect folders)")
    if good_label not in {p.name for p in classes}:
        raise DataError(f"data folder {root} has no '{good_label}' folder for the pass class")
    items: list[LabelledImage] = []
    for folder in classes:
        is_defect = folder.name != good_label
        for path in list_images(folder):
            defect_type = None
            if is_defect:
                nested = path.relative_to(folder).parts
                defect_type = nested[0] if folder.name == "defect" and len(nested) > 1 else folder.name
            items.append(LabelledImage(path, is_defect, defect_type))
    n_good = sum(not i.is_defect for i in items)
    if n_good == 0:
        raise DataError(f"data folder {root}: '{good_label}/' holds no images")
    if n_good == len(items):
        raise DataError(f"data folder {root}: only good images; at least one defect folder needs images")
    return items
