"""Web threads yield the CPU to the inspection loop: each renices itself (Linux: per thread) once."""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

_local = threading.local()


def lower_this_thread(nice_increment: int) -> None:
    """Raise the calling thread's nice value by ``nice_increment`` (at most to 19), once per thread.

    On Linux a thread is a task with its own priority, so the inspection threads keep theirs. Elsewhere,
    or where the system refuses, nothing changes: the web view still works, just without this margin.
    """
    if nice_increment <= 0 or getattr(_local, "is_lowered", False):
        return
    _local.is_lowered = True
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice_increment))
    except OSError as error:  # pragma: no cover - seccomp or an exotic kernel
        log.debug("web thread priority unchanged: %s", error)
