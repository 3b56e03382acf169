"""The classifier seam: what the inspection loop needs from a defect classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .metadata import ModelMetadata
from .onnx_classifier import Region, RegionScore


class Classifier(Protocol):
    """Scores regions of a BGR frame; ``metadata`` says what the model is and its threshold."""

    metadata: ModelMetadata

    @property
    def threshold(self) -> float: ...

    def classify(self, image: np.ndarray, regions: Sequence[Region] = ()) -> list[RegionScore]: ...
