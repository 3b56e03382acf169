"""Config of the operator web view (owned by the web feature)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import StrictModel


class WebConfig(StrictModel):
    """The local web view and JSON API."""

    enabled: bool = Field(True, description="Serve the web view while inspecting.")
    host: str = Field(
        "127.0.0.1", description="Listen address; 0.0.0.0 opens it to the plant network (see docs/WEB.md)."
    )
    port: int = Field(8080, ge=0, le=65535, description="Listen port (0: any free port, for tests).")
    worker_threads: int = Field(
        8, ge=2, le=64, description="Server threads for pages and the JSON API (stream viewers get their own)."
    )
    thread_nice: int = Field(
        10, ge=0, le=19, description="Web threads run this much nicer than inspection (Linux; 0: same priority)."
    )
    viewer_login_required: bool = Field(
        False, description="False: the live page and JSON API are readable without login (read-only)."
    )
    stream_max_fps: float = Field(
        10.0, gt=0, le=30, description="Live stream rate cap, frames per second (JPEG encoded once for all)."
    )
    stream_max_width_px: int = Field(
        640, ge=160, le=1920, description="Live stream frames are reduced to at most this width, pixels."
    )
    stream_jpeg_quality: int = Field(70, ge=10, le=95, description="JPEG quality of the live stream, 10-95.")
    stream_max_viewers: int = Field(
        20, ge=0, le=100, description="Concurrent live-stream viewers; more get HTTP 503 until one leaves."
    )
    filmstrip_rejects: int = Field(12, ge=1, le=100, description="Thumbnails of the latest rejects kept.")
    thumbnail_width_px: int = Field(200, ge=64, le=640, description="Width of a reject thumbnail, pixels.")
    recent_results: int = Field(
        500, ge=10, le=10000, description="Latest part results kept in memory for /api/results."
    )
    first_run_page: bool = Field(
        True,
        description="Offer /setup (create the first admin) to browsers on this machine while no admin exists; "
        "set false when a reverse proxy on this machine forwards remote clients.",
    )
    db_path: Path = Field(
        Path("var/web/web.sqlite"), description="SQLite file of web users and the audit log of admin changes."
    )
    secret_key_path: Path = Field(
        Path("var/web/secret.key"),
        description="Session-signing key; created with random content and mode 0600 when missing.",
    )
    model_dir: Path | None = Field(
        None, description="Folder of .onnx files an admin may switch to (None: the folder of model.path)."
    )
    session_lifetime_h: float = Field(
        12.0, gt=0, le=24 * 30, description="A login expires after this many hours."
    )
    cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set True behind a TLS proxy)."
    )
    password_min_length: int = Field(10, ge=8, le=128, description="Shortest password accepted, characters.")
    login_max_failures: int = Field(
        5, ge=1, le=100, description="Failed logins per client address or user name before a lockout."
    )
    login_lockout_s: float = Field(
        300.0, gt=0, description="Failures count within this window, seconds; the lockout lasts as long."
    )
    yield_target_percent: float | None = Field(
        None, ge=0, le=100, description="Yield below this, %, over the last yield_window_min raises an ALARM "
        "(the line keeps running); drawn on the live page's trend. None: no target."
    )
    yield_window_min: float = Field(
        15.0, gt=0, le=24 * 60, description="The yield target is checked over this many minutes, minutes."
    )
    yield_min_parts: int = Field(
        20, ge=1, description="The yield alarm waits for at least this many parts in the window, parts."
    )
