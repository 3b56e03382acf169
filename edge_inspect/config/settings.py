"""Config of the running-settings file: what an admin changed at run time, kept across restarts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import StrictModel


class SettingsConfig(StrictModel):
    """Threshold and model chosen in the web view, written atomically and restored at start."""

    path: Path = Field(
        Path("var/settings.json"),
        description="JSON file of the running settings (threshold, model file); written via temp file, "
        "fsync and rename.",
    )
    restore: bool = Field(True, description="At start, apply the settings the file holds (and say which).")
