"""Training a defect classifier on the CPU and exporting it to ONNX with its metadata.

Needs the ``train`` extra (torch, onnx). Only :mod:`.network`, :mod:`.trainer` and :mod:`.export` import
torch, and nothing imports them at package import time, so edge-inspect runs without the extra.
"""

from __future__ import annotations

import importlib.util

from ..errors import EdgeInspectError
from ..evaluation import auroc, widest_margin_threshold
from .data import DataSet, SplitIndices, load_dataset, split_dataset

TRAIN_EXTRA_HINT = "install the train extra: pip install -e '.[train]' torch==2.13.0"


def require_train_extra() -> None:
    """Fail with one actionable line when torch or onnx is missing."""
    missing = [name for name in ("torch", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        raise EdgeInspectError(f"training needs {' and '.join(missing)}; {TRAIN_EXTRA_HINT}")


__all__ = [
    "TRAIN_EXTRA_HINT",
    "DataSet",
    "SplitIndices",
    "auroc",
    "load_dataset",
    "require_train_extra",
    "split_dataset",
    "widest_margin_threshold",
]
