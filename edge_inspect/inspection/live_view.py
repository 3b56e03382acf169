"""The live view: the newest frame and the newest classified frame with its regions, for the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events import RegionResult, Verdict
from ..sources.base import Frame
from .state import InspectorState


@dataclass(frozen=True)
class LiveView:
    """The newest classified frame with its region results, for the operator's screen."""

    frame: Frame
    regions: tuple[RegionResult, ...]
    verdict: Verdict


class LiveViewMixin(InspectorState):
    def latest_frame(self) -> Frame | None:
        return self._latest_frame

    def live_view(self) -> LiveView | None:
        return self._live
