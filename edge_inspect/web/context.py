"""What every request handler of the web view works with, built once by the app factory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from flask import current_app

from ..config.web import WebConfig
from ..pipeline import Inspector
from .audit import AuditLog
from .feed import ResultFeed
from .security import LoginThrottle
from .stream import FrameStreamer
from .users import UserStore

EXTENSION_KEY = "edge_inspect"


@dataclass
class WebContext:
    """The inspector and the web view's own state; ``close()`` ends its threads."""

    inspector: Inspector
    config: WebConfig
    users: UserStore
    audit: AuditLog
    feed: ResultFeed
    streamer: FrameStreamer
    throttle: LoginThrottle
    models_dir: Path
    model_lock: threading.Lock = field(default_factory=threading.Lock)  # one model switch at a time

    def close(self) -> None:
        self.streamer.close()
        self.feed.close()


def web_context() -> WebContext:
    """The context of the app handling the current request."""
    return cast(WebContext, current_app.extensions[EXTENSION_KEY])
