"""Config of the operator web view (owned by the web feature)."""

from __future__ import annotations

from pydantic import Field

from .base import StrictModel


class WebConfig(StrictModel):
    """The local web view and JSON API."""

    enabled: bool = Field(False, description="Serve the web view while inspecting.")
    host: str = Field("127.0.0.1", description="Listen address; 0.0.0.0 opens it to the plant network.")
    port: int = Field(8080, ge=1, le=65535, description="Listen port.")
