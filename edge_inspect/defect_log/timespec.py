"""Times as QA types them: ISO 8601 (local unless an offset is given) or a span before now."""

from __future__ import annotations

import re
import time
from datetime import datetime

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNIT_S = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_time(text: str, now_s: float | None = None) -> float:
    """Unix seconds from ``2024-05-01``, ``2024-05-01T06:00`` (local time), ``...+02:00``, or a span
    before now: ``30m``, ``12h``, ``7d``, ``2w``. ValueError for anything else."""
    text = text.strip()
    span = _SPAN.match(text)
    if span:
        return (time.time() if now_s is None else now_s) - float(span.group(1)) * _UNIT_S[span.group(2)]
    try:
        return datetime.fromisoformat(text).timestamp()  # a naive time is local time
    except ValueError:
        shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}… ({len(text):,} characters)"
        raise ValueError(f"{shown} is neither an ISO time (2024-05-01T06:00) nor a span before now (12h, 7d)") from None


def local_input_value(ts_s: float | None) -> str:
    """A time as an HTML ``datetime-local`` value (local time, minutes)."""
    return "" if ts_s is None else time.strftime("%Y-%m-%dT%H:%M", time.localtime(ts_s))
