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
from .conditions import ConditionHistory
from .feed import ResultFeed
from .security import LoginThrottle
from .stream import FrameStreamer
from .trend import YieldWatch
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
    conditions: ConditionHistory = field(default_factory=ConditionHistory)
    # Drop counts at the last counter reset: bus and camera drops are cumulative, the page shows them since.
    dropped_baseline: dict[str, int] = field(default_factory=dict)
    chart_lock: threading.Lock = field(default_factory=threading.Lock)
    chart_cache: dict[tuple[str, str], tuple[float, bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        listeners = getattr(self.inspector, "condition_listeners", None)
        if listeners is not None:
            listeners.append(self.conditions.on_change)
        for key, reason in self.inspector.status().alarms.items():  # raised before the view started
            self.conditions.on_change("alarm", key, reason)
        watch = YieldWatch(self.feed.trend, self.inspector, self.config.yield_target_percent,
                           self.config.yield_window_min, self.config.yield_min_parts)
        self.feed.after_batch = watch.check

    def dropped_since_reset(self, dropped: dict[str, int]) -> dict[str, int]:
        return {name: count - min(self.dropped_baseline.get(name, 0), count) for name, count in dropped.items()}

    def close(self) -> None:
        listeners = getattr(self.inspector, "condition_listeners", None)
        if listeners is not None and self.conditions.on_change in listeners:
            listeners.remove(self.conditions.on_change)
        self.streamer.close()
        self.feed.close()


def web_context() -> WebContext:
    """The context of the app handling the current request."""
    return cast(WebContext, current_app.extensions[EXTENSION_KEY])
