"""The defect classifier: model-file metadata, shared preprocessing, onnxruntime runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .metadata import PREFIX, ModelMetadata, SelfTestProbe
from .onnx_classifier import OnnxClassifier, Region, RegionScore, read_metadata, whole_frame

if TYPE_CHECKING:  # not at run time: the inference process imports this package and has no use for pydantic
    from ..config.models import ModelConfig


def load_classifier(config: ModelConfig, warmup_runs: int | None = None) -> OnnxClassifier:
    """The classifier a model config describes, warmed up and self-tested."""
    return OnnxClassifier(
        config.path,
        providers=config.providers,
        intra_op_threads=config.intra_op_threads,
        inter_op_threads=config.inter_op_threads,
        warmup_runs=config.warmup_runs if warmup_runs is None else warmup_runs,
        verify_selftest=config.verify_selftest,
    )


__all__ = [
    "PREFIX",
    "ModelMetadata",
    "OnnxClassifier",
    "Region",
    "RegionScore",
    "SelfTestProbe",
    "load_classifier",
    "read_metadata",
    "whole_frame",
]
