"""The plant bucket: where images and models go (``<prefix>/images/<appliance>/<UTC day>/<file>``)."""

from __future__ import annotations

import time
from pathlib import PurePosixPath
from typing import Any

from ..config.plant import PlantConfig


def _join(prefix: str, *parts: str) -> str:
    return "/".join(p for p in (prefix, *parts) if p)


def image_key(prefix: str, appliance_id: str, captured_at_s: float, local_path: str) -> str:
    """A part's image in the bucket: appliance / UTC day / the local file's name (which names the part)."""
    day = time.strftime("%Y-%m-%d", time.gmtime(captured_at_s))
    return _join(prefix, "images", appliance_id, day, PurePosixPath(local_path).name)


def model_key(prefix: str, sha256: str) -> str:
    return _join(prefix, "models", f"{sha256}.onnx")


class ObjectStore:
    """The bucket through one boto3 client (thread-safe for these calls)."""

    def __init__(self, config: PlantConfig, client: Any = None) -> None:
        from .connect import s3_client

        self.bucket = config.bucket
        self.prefix = config.prefix
        self.client = client or s3_client(config)

    def put(self, key: str, data: bytes, content_type: str = "image/jpeg") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (plant migrate does this; appliances never do)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)
