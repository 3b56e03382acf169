"""Output lines (reject, ready, alarm): one interface, one backend per file."""

from __future__ import annotations

from typing import Any

from ..errors import OutputError
from ..registry import OUTPUTS, create
from .base import DigitalOutput
from .simulated import Actuation, SimulatedOutput


def create_output(config: Any, name: str) -> DigitalOutput:
    """The output backend for an output config (``simulated``, ``gpiozero`` or ``jetson``)."""
    try:
        output: DigitalOutput = create(OUTPUTS, f"outputs.{name}", config)
    except OutputError as error:
        raise OutputError(f"{name} output: {error}") from None
    output.name = name
    return output


__all__ = ["Actuation", "DigitalOutput", "SimulatedOutput", "create_output"]
