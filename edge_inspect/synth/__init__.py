"""Deterministic generator of machined-part images (a turned flange on a conveyor) with ground truth."""

from __future__ import annotations

from .defects import DEFECT_KINDS
from .generate import (
    DEFAULT_SIZE_PX,
    GROUND_TRUTH_FILE,
    GroundTruthRow,
    SyntheticFrame,
    generate_dataset,
    plan_defects,
    read_ground_truth,
    render_frame,
)
from .parts import PartDesign

__all__ = [
    "DEFAULT_SIZE_PX",
    "DEFECT_KINDS",
    "GROUND_TRUTH_FILE",
    "GroundTruthRow",
    "PartDesign",
    "SyntheticFrame",
    "generate_dataset",
    "plan_defects",
    "read_ground_truth",
    "render_frame",
]
