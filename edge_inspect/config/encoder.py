"""Config of the belt encoder (``[encoder]``): which input counts the belt, and how counts become mm.

Used when ``line.tracking = "encoder"``: each part's reject is then due when the belt has moved
``line.camera_to_diverter_mm`` since its capture, counted in encoder pulses, whatever the speed does.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import StrictModel


class EncoderCommonConfig(StrictModel):
    """What every encoder backend shares: scale, and the limits the fault monitor checks."""

    pulses_per_mm: float = Field(
        gt=0,
        description="Counted pulses per mm of belt travel (one pulse: one full cycle of channel A).",
    )
    counter_bits: int | None = Field(
        None,
        ge=8,
        le=64,
        description="The counter wraps at 2**bits (a hardware or PLC counter); None: it never wraps.",
    )
    stall_parts: int = Field(
        2,
        ge=1,
        description="This many parts arriving with no encoder pulse in between is an encoder FAULT.",
    )
    reverse_tolerance_counts: int = Field(
        4,
        ge=0,
        description="Backward motion beyond this many counts is a direction-reversal FAULT.",
    )
    max_speed_mm_s: float = Field(
        5000.0,
        gt=0,
        description="A position change faster than this (a wrap or glitch) is an encoder FAULT, mm/s.",
    )


class SimulatedEncoderConfig(EncoderCommonConfig):
    """Counts driven in software: by the line simulator and by tests."""

    type: Literal["simulated"] = "simulated"


class GpiozeroEncoderConfig(EncoderCommonConfig):
    """A Raspberry Pi GPIO encoder input through gpiozero: A/B quadrature, or channel A alone."""

    type: Literal["gpiozero"] = "gpiozero"
    pin_a: int | str = Field(description="Channel A pin: BCM number or gpiozero name.")
    pin_b: int | str | None = Field(
        None, description="Channel B pin for quadrature (direction); None: single channel, forward only."
    )
    pull_up: bool = Field(
        True, description="Single channel: internal pull-up (open collector) or pull-down; quadrature always pulls up."
    )
    bounce_ms: float | None = Field(None, ge=0, description="Debounce time, ms (None: none; encoders are clean).")
    pin_factory: Literal["lgpio", "rpigpio", "native", "mock"] | None = Field(
        None, description="gpiozero pin factory; None lets gpiozero choose (lgpio on a Pi 5)."
    )


class JetsonEncoderConfig(EncoderCommonConfig):
    """A Jetson GPIO encoder input through Jetson.GPIO edge events: A/B quadrature, or channel A alone."""

    type: Literal["jetson"] = "jetson"
    pin_a: int = Field(description="Channel A pin in the chosen numbering mode.")
    pin_b: int | None = Field(None, description="Channel B pin for quadrature; None: single channel.")
    numbering: Literal["BOARD", "BCM", "CVM", "TEGRA_SOC"] = Field("BOARD", description="Numbering mode.")


EncoderConfig = Annotated[
    SimulatedEncoderConfig | GpiozeroEncoderConfig | JetsonEncoderConfig, Field(discriminator="type")
]
