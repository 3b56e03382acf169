"""Config of the reject scheduler (``[actuation]``): where it runs and how hard it holds its timing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictModel


class ActuationConfig(StrictModel):
    """The reject scheduler that owns the reject, READY and ALARM lines (docs/ARCHITECTURE.md)."""

    mode: Literal["process", "thread"] = Field(
        "process",
        description="'process': a separate scheduler process drives the outputs, so no pause of the inspection "
        "process (GIL, garbage collector, a stalled consumer, even SIGSTOP) delays a reject; 'thread': the "
        "same loop in the inspection process, for outputs only it can own (gpiozero mock pins, the simulator).",
    )
    realtime: bool = Field(
        True, description="Ask for SCHED_FIFO and mlockall in the scheduler process (granted where allowed)."
    )
    realtime_priority: int = Field(50, ge=1, le=99, description="SCHED_FIFO priority when granted.")
    spin_us: float = Field(
        300.0, ge=0, le=5000,
        description="Busy-wait this long before each fire instead of sleeping through it, microseconds.",
    )
    inspection_timeout_ms: float = Field(
        500.0, gt=0,
        description="No message from the inspection process for this long drops READY (parts still fail-safe), ms.",
    )
