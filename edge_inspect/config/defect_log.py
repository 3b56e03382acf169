"""Config of the QA defect log (owned by the defect-log feature)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .base import StrictModel

_DEFECT_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
BUCKET_MINUTES = 15
"""Parts are counted in quarter-hour buckets, so shift starts must fall on a quarter hour."""


class DefectLogConfig(StrictModel):
    """Where rejected and sampled parts are recorded for QA, and how much disk that may take."""

    enabled: bool = Field(False, description="Record defects, fail-safe parts and sampled good parts.")
    mode: Literal["thread", "process"] = Field(
        "process",
        description="'process': JPEG encoding, fsync and SQLite run in a writer process at idle priority "
        "(SCHED_IDLE), so the log's Python never holds the inspection process's interpreter lock and the log gets "
        "only CPU inspection leaves; when other programs, not inspection, starve it for 3 s it is raised to nice "
        "10 (where the OS allows: root, CAP_SYS_NICE or LimitNICE=+10). 'thread': the writer is a thread of the "
        "inspection process at nice 10.",
    )
    data_dir: Path = Field(Path("var/defect-log"), description="Folder for the SQLite file and images.")
    sample_good_fraction: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Share of good parts recorded too (0.01 = 1%), chosen by a hash of the inspection id.",
    )
    disk_budget_mb: float = Field(
        2048.0,
        gt=0,
        description="Images plus database may take this much, MB; above it the oldest parts are pruned "
        "(sampled good parts first, then defects).",
    )
    max_age_days: float = Field(90.0, gt=0, description="Parts older than this many days are pruned.")
    min_free_disk_mb: float = Field(
        500.0,
        ge=0,
        description="Below this much free space on the log's disk, MB, images are no longer written "
        "(rows continue) and an alarm is raised.",
    )
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of recorded frames and crops, 10-100.")
    thumbnail_width_px: int = Field(240, ge=64, le=640, description="Width of the review grid's thumbnails, px.")
    queue_full_images_per_s: float = Field(
        1.0,
        ge=0.0,
        description="Images of at most this many queue-full fail-safe parts per second of capture time (parts "
        "rejected uninspected because the model was saturated); every one of them still gets its row, the rest "
        "with image_status 'overload'. Their JPEGs would take CPU from inspection just when it is short. "
        "0: none.",
    )
    queue_items: int = Field(
        64,
        ge=1,
        le=10_000,
        description="The log's own event queue; when full, parts are dropped and counted. Each waiting part "
        "holds its frame in memory (4 MB at 1536x864), so this also bounds memory while the disk stalls.",
    )
    prune_interval_s: float = Field(
        10.0, gt=0, description="How often retention (budget, age, free space) is checked, seconds."
    )
    shift_start_times: list[str] = Field(
        default_factory=lambda: ["06:00", "14:00", "22:00"],
        min_length=1,
        description="Local clock times (HH:MM, on a quarter hour) at which shifts start, for per-shift stats.",
    )

    defect_types: list[str] = Field(
        default_factory=lambda: ["scratch", "pit", "crack", "dent", "stain", "other"],
        max_length=50,
        description="Types QA may give a confirmed defect or an escape (1-32 of a-z, 0-9, _ -); stats and "
        "export break down by type. Removing a type keeps it on parts already tagged.",
    )

    @field_validator("defect_types")
    @classmethod
    def _valid_defect_types(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _DEFECT_TYPE.match(value):
                raise ValueError(f"defect type {value!r}: use 1-32 of a-z, 0-9, _ and -, starting with a letter")
        if len(set(values)) != len(values):
            raise ValueError("defect types repeat")
        return values

    @field_validator("shift_start_times")
    @classmethod
    def _valid_shift_starts(cls, values: list[str]) -> list[str]:
        minutes = []
        for value in values:
            match = _CLOCK_TIME.match(value)
            if match is None:
                raise ValueError(f"shift start {value!r} is not a clock time HH:MM")
            minute = int(match.group(1)) * 60 + int(match.group(2))
            if minute % BUCKET_MINUTES:
                raise ValueError(f"shift start {value!r} is not on a quarter hour")
            minutes.append(minute)
        if len(set(minutes)) != len(minutes):
            raise ValueError("shift start times repeat")
        return [values[i] for i in sorted(range(len(values)), key=minutes.__getitem__)]

    @property
    def shift_start_minutes(self) -> list[int]:
        """Shift starts as minutes after local midnight, ascending."""
        return [int(v[:2]) * 60 + int(v[3:]) for v in self.shift_start_times]
