"""A closed-loop, real-time model of the line around the real Inspector: ``edge-inspect simulate``."""

from __future__ import annotations

from .judge import Diverter, PartOutcome
from .profile import SpeedProfile, named_profile
from .runner import SimOptions, SimRun, run_simulation

__all__ = ["Diverter", "PartOutcome", "SimOptions", "SimRun", "SpeedProfile", "named_profile", "run_simulation"]
