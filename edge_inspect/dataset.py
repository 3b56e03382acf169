"""Labelled image folders: ``good/`` is the pass class, every other folder a defect class.

Also accepts ``good/`` + ``defect/<type>/``. Pure listing, no decoding: training, evaluation and
quantisation each decide how to read the images, and all name unusable folders the same way.
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

    def class_folder(self, root: Path) -> str:
        """The folder holding the image, relative to ``root`` ("good", "dent", "defect/scratch")."""
        return self.path.parent.relative_to(root).as_posix()


def class_folders(root: Path, good_label: str = "good") -> list[Path]:
    """The class folders below ``root`` (hidden ones ignored); DataError unless ``good_label`` is one."""
    if not root.exists():
        raise DataError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"data folder {root} is not a folder (expected one folder per class)")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data folder {root} has no class folders (expected {good_label}/ and defect folders)")
    names = [p.name for p in classes]
    if good_label not in names:
        raise DataError(
            f"data folder {root} has no '{good_label}' folder for the pass class (found: {', '.join(names)})"
        )
    return classes


def list_labelled(root: Path, good_label: str = "good", require_defects: bool = True) -> list[LabelledImage]:
    """Every image below ``root`` with its label; DataError naming the problem if unusable."""
    root = Path(root)
    classes = class_folders(root, good_label)
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
    if n_good == len(items) and require_defects:
        others = [p.name for p in classes if p.name != good_label]
        where = f"the defect folders ({', '.join(others)}) hold no images" if others else "there is no defect folder"
        raise DataError(f"data folder {root}: only good images, {where}; add at least one defect folder with images")
    return items
