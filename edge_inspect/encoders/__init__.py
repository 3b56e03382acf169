"""Belt encoder inputs (position in counts): one interface, one backend per file."""

from __future__ import annotations

from typing import Any

from ..registry import ENCODERS, create
from .base import Encoder
from .monitor import EncoderLimits, EncoderMonitor, unwrap_delta
from .simulated import SimulatedEncoder


def create_encoder(config: Any) -> Encoder:
    """The encoder backend for an ``[encoder]`` config (``simulated``, ``gpiozero`` or ``jetson``)."""
    encoder: Encoder = create(ENCODERS, "encoder", config)
    return encoder


__all__ = ["Encoder", "EncoderLimits", "EncoderMonitor", "SimulatedEncoder", "create_encoder", "unwrap_delta"]
