"""Part-present trigger inputs: one interface, one backend per file."""

from __future__ import annotations

from typing import Any

from ..registry import TRIGGERS, create
from .base import TriggerCallback, TriggerInput
from .software import SoftwareTrigger


def create_trigger(config: Any) -> TriggerInput:
    """The trigger input for a trigger input config (``gpiozero``, ``jetson`` or ``software``)."""
    trigger: TriggerInput = create(TRIGGERS, "trigger.input", config)
    return trigger


__all__ = ["SoftwareTrigger", "TriggerCallback", "TriggerInput", "create_trigger"]
