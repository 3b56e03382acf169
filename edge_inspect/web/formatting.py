"""One way to show scores and thresholds on every page (live, admin, review), and a bounded echo of input."""

from __future__ import annotations

SCORE_DIGITS = 4
"""Decimals of a defect score or threshold wherever one is shown (the admin field keeps full precision)."""
ECHO_MAX_CHARS = 40


def score_text(value: float | None) -> str:
    """A score or threshold as every page shows it, "–" when there is none."""
    return "–" if value is None else f"{value:.{SCORE_DIGITS}f}"


def exact_text(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (for form fields and the audit log)."""
    return repr(float(value))


def echo(text: str, limit: int = ECHO_MAX_CHARS) -> str:
    """User input quoted back in an error, cut to ``limit`` characters so a huge value is not echoed."""
    text = text.replace("\n", " ").replace("\r", " ")
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"
