"""The classifier seam: what the inspection loop needs from a defect classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .metadata import ModelMetadata
from .onnx_classifier import PreparedParts, Region, RegionScore


class Classifier(Protocol):
    """Scores regions of a BGR frame; ``metadata`` says what the model is and its threshold."""

    metadata: ModelMetadata

    @property
    def threshold(self) -> float: ...

    def classify(self, image: np.ndarray, regions: Sequence[Region] = ()) -> list[RegionScore]: ...


@runtime_checkable
class StagedClassifier(Classifier, Protocol):
    """A classifier whose CPU preparation and model run can happen on different threads."""

    def prepare(self, image: np.ndarray, regions: Sequence[Region] = ()) -> PreparedParts: ...

    def infer(self, prepared: PreparedParts) -> list[RegionScore]: ...
