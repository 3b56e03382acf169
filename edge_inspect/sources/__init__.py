"""Frame sources: one interface, one backend per file, chosen by the config's ``type``."""

from __future__ import annotations

from typing import Any

from ..registry import SOURCES, create
from .base import Frame, FrameSource


def create_source(config: Any) -> FrameSource:
    """The frame source for a source config (``replay``, ``opencv`` or ``picamera2``)."""
    source: FrameSource = create(SOURCES, "source", config)
    return source


__all__ = ["Frame", "FrameSource", "create_source"]
