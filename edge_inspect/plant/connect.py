"""Connections to the plant's stores, with credentials from files or the environment (never the config)."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from ..config.plant import PlantConfig
from ..errors import ConfigError, EdgeInspectError


class PlantError(EdgeInspectError, RuntimeError):
    """The plant's PostgreSQL or object store cannot be reached or refused a request."""


def read_secret(path: Path, what: str) -> str:
    """The first line of a secret file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read: {error.strerror or error}") from None
    return lines[0] if lines else ""


def connect_db(config: PlantConfig, *, connect_timeout_s: int = 5, autocommit: bool = False) -> Any:
    """A psycopg connection to the plant database (password from ``database_password_file`` or libpq's env)."""
    import psycopg

    if config.database_url is None:
        raise ConfigError("plant.database_url is not set")
    kwargs: dict[str, Any] = {"connect_timeout": connect_timeout_s, "application_name": "edge-inspect"}
    if config.database_password_file is not None:
        kwargs["password"] = read_secret(config.database_password_file, "plant.database_password_file")
    try:
        return psycopg.connect(config.database_url, autocommit=autocommit, **kwargs)
    except psycopg.Error as error:
        raise PlantError(f"cannot connect to the plant database: {str(error).strip().splitlines()[0]}") from None


def s3_credentials(config: PlantConfig) -> dict[str, str]:
    """Access keys from ``object_store_credentials_file`` ([default] section), else none (boto3's chain)."""
    path = config.object_store_credentials_file
    if path is None:
        return {}
    parser = configparser.ConfigParser()
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as error:
        raise ConfigError(f"plant.object_store_credentials_file {path} cannot be read: {error}") from None
    section = parser["default"] if parser.has_section("default") else None
    if section is None or "aws_access_key_id" not in section or "aws_secret_access_key" not in section:
        raise ConfigError(
            f"plant.object_store_credentials_file {path} needs [default] aws_access_key_id and aws_secret_access_key"
        )
    return {key: section[key] for key in ("aws_access_key_id", "aws_secret_access_key")}


def s3_client(config: PlantConfig, *, timeout_s: float = 10.0, max_attempts: int = 2) -> Any:
    """A boto3 S3 client for the plant's bucket: short timeouts, few retries (the sync retries itself)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(**s3_credentials(config))
    return session.client(
        "s3",
        endpoint_url=config.object_store_endpoint_url,
        region_name=config.object_store_region,
        config=Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path"},
            max_pool_connections=16,
        ),
    )
