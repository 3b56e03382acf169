"""Small security pieces of the web view: the secret key file, CSRF tokens, login throttling, headers."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import stat
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from werkzeug.wrappers import Response as BaseResponse

log = logging.getLogger(__name__)

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_CSRF_SESSION_KEY = "csrf"
_MIN_SECRET_CHARS = 32

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send "Origin: null" on POSTs
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=(), serial=()",
}


def add_security_headers(response: BaseResponse, *, is_https: bool) -> BaseResponse:
    """After every request: the headers above, HSTS over HTTPS, no caching of pages and JSON, Vary: Cookie."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if is_https:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if response.mimetype in ("text/html", "application/json"):
        response.headers.setdefault("Cache-Control", "no-store")
    response.vary.add("Cookie")
    return response


def load_or_create_secret_key(path: Path) -> str:
    """The session-signing key: read from ``path``, or created there (random, mode 0600) on first run."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it meanwhile: read theirs
        else:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            log.info("created a new web secret key in %s", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("web secret key %s was readable by others (mode %o): set to 0600", path, mode)
        path.chmod(0o600)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < _MIN_SECRET_CHARS:
        raise ConfigError(f"web secret key {path} is shorter than {_MIN_SECRET_CHARS} characters; delete it to renew")
    return key


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """This session's CSRF token, created on first use."""
    token = session.get(_CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_SESSION_KEY] = token
    return token


def rotate_csrf_token(session: MutableMapping[str, Any]) -> None:
    session.pop(_CSRF_SESSION_KEY, None)


def is_csrf_token_valid(session: MutableMapping[str, Any], sent: str | None) -> bool:
    expected = session.get(_CSRF_SESSION_KEY)
    if not isinstance(expected, str) or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_local_host_header(host: str) -> bool:
    """The Host header names this machine (defeats DNS rebinding against localhost-only pages)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    return name in {"localhost", "127.0.0.1", "::1"}


class LoginThrottle:
    """Counts failed logins per key (client address, user name) in a sliding window; bounded memory."""

    MAX_KEYS = 4096

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, *keys: str) -> float | None:
        """Seconds until any of ``keys`` may try again, or None if none is locked out."""
        now = self._clock()
        waits = []
        with self._lock:
            for key in keys:
                times = self._failures.get(key)
                if times is None:
                    continue
                while times and times[0] <= now - self.window_s:
                    times.popleft()
                if len(times) >= self.max_failures:
                    waits.append(times[0] + self.window_s - now)
        return max(waits) if waits else None

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._failures.pop(key, None) or deque(maxlen=self.max_failures)
                times.append(now)
                self._failures[key] = times  # re-inserted: most recent last
            while len(self._failures) > self.MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
