"""Config of the plant layer (``[plant]``): sync to a central PostgreSQL and S3 bucket, model rollout.

Credentials never live in this file. The PostgreSQL password comes from ``database_password_file`` or
libpq's own environment (``PGPASSWORD``, ``~/.pgpass``); the S3 keys from ``object_store_credentials_file``
(an AWS-style credentials file) or boto3's usual chain (``AWS_ACCESS_KEY_ID`` and friends, instance roles).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from .base import StrictModel

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_database_url(value: str) -> str:
    """A postgresql:// URL without a password in it (passwords go in a file or the environment)."""
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"database_url {value!r} must start with postgresql://")
    if parts.password is not None or re.search(r"(^|[?&])password=", parts.query):
        raise ValueError("database_url must not contain a password: use database_password_file or PGPASSWORD")
    return value


def split_object_store_url(value: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end)."""
    parts = urlsplit(value)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"object_store_url {value!r} must look like s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


class PlantConfig(StrictModel):
    """This appliance as one of a plant's: where it syncs its records and images, how it takes new models."""

    enabled: bool = Field(False, description="Sync the defect log to the plant and poll for model rollouts.")
    appliance_id: str | None = Field(
        None, description="This box's id in the plant, unique (None: the host name)."
    )
    line: str = Field("line-1", min_length=1, max_length=64, description="The production line this box inspects.")
    groups: list[str] = Field(
        default_factory=list, description="Rollout groups this box belongs to (e.g. 'hall-2', 'pilot')."
    )
    database_url: str | None = Field(
        None, description="Central PostgreSQL, postgresql://user@host:5432/dbname (no password here)."
    )
    database_password_file: Path | None = Field(
        None, description="File holding the PostgreSQL password (one line); else libpq's PGPASSWORD/.pgpass."
    )
    object_store_url: str | None = Field(None, description="Bucket and prefix for images and models, s3://bucket/prefix.")
    object_store_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph RGW, Garage); None: AWS S3."
    )
    object_store_region: str = Field("us-east-1", min_length=1, description="S3 region name.")
    object_store_credentials_file: Path | None = Field(
        None, description="AWS-style credentials file ([default] aws_access_key_id, aws_secret_access_key); "
        "None: boto3's environment/instance chain."
    )
    sync_interval_s: float = Field(1.0, gt=0, le=3600, description="How often the backlog is sent, seconds.")
    batch_parts: int = Field(200, ge=1, le=10_000, description="Parts sent to PostgreSQL per transaction.")
    retry_max_delay_s: float = Field(
        30.0, gt=0, le=3600, description="Back-off after a failed sync doubles up to this, seconds."
    )
    queue_items: int = Field(
        1024, ge=1, le=100_000, description="The sync's own event queue (per-minute counters); full: dropped, counted."
    )
    model_poll_interval_s: float = Field(
        30.0, gt=0, le=86400, description="How often the plant is asked for a newer model, seconds."
    )
    staging_dir: Path = Field(
        Path("var/plant-staging"), description="Where rolled-out models are downloaded and kept."
    )
    rollback_yield_drop: float = Field(
        0.10, gt=0, le=1, description="After a swap, a yield this much lower (0.10 = 10 points) rolls back."
    )
    rollback_window_parts: int = Field(
        200, ge=1, le=1_000_000, description="Parts compared before and after a swap to judge the yield."
    )
    shift_start_times: list[str] = Field(
        default_factory=lambda: ["06:00", "14:00", "22:00"],
        min_length=1,
        description="Plant view: UTC clock times (HH:MM) at which shifts start, for yield per shift.",
    )
    web_host: str = Field("127.0.0.1", description="Plant view (edge-inspect plant serve): listen address.")
    web_port: int = Field(8090, ge=1, le=65535, description="Plant view: port.")
    web_secret_key_path: Path = Field(
        Path("var/plant-secret.key"), description="Plant view: session-signing key file (created on first use)."
    )
    web_cookie_secure: bool = Field(False, description="Plant view: send the session cookie over HTTPS only.")

    @field_validator("appliance_id")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError(f"appliance_id {value!r}: 1-64 letters, digits, and _ . - (not first)")
        return value

    @field_validator("groups")
    @classmethod
    def _valid_groups(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _ID.match(value) or value == "all":
                raise ValueError(f"group {value!r}: 1-64 letters, digits, and _ . - (and not 'all')")
        return values

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str | None) -> str | None:
        return None if value is None else check_database_url(value)

    @field_validator("object_store_url")
    @classmethod
    def _valid_store_url(cls, value: str | None) -> str | None:
        if value is not None:
            split_object_store_url(value)
        return value

    @field_validator("shift_start_times")
    @classmethod
    def _valid_shifts(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", value):
                raise ValueError(f"shift start {value!r} is not a clock time HH:MM")
        return sorted(values)

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> PlantConfig:
        if self.enabled and (self.database_url is None or self.object_store_url is None):
            raise ValueError("plant.enabled needs database_url and object_store_url")
        return self

    @property
    def bucket(self) -> str:
        assert self.object_store_url is not None
        return split_object_store_url(self.object_store_url)[0]

    @property
    def prefix(self) -> str:
        assert self.object_store_url is not None
        return split_object_store_url(self.object_store_url)[1]
