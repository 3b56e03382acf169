"""Config of the QA defect log (owned by the defect-log feature)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import StrictModel


class DefectLogConfig(StrictModel):
    """Where rejected and sampled parts are recorded for QA."""

    enabled: bool = Field(False, description="Record defects, fail-safe rejects and sampled good parts.")
    data_dir: Path = Field(Path("var/defect-log"), description="Folder for the SQLite file and images.")
