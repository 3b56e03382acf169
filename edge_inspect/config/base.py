"""The base of every config model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys refused, instances frozen, defaults validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
