"""Real-time scheduling and locked memory for the reject scheduler, where the OS allows; a clean fallback.

SCHED_FIFO keeps the scheduler ahead of every ordinary process on its core (it sleeps almost all the
time, so it cannot starve them); mlockall keeps its pages resident so a fire is never a page fault.
Both need privileges (CAP_SYS_NICE / CAP_IPC_LOCK, or systemd's CPUSchedulingPolicy= and
LimitMEMLOCK=); without them the scheduler runs as a normal process and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
from dataclasses import dataclass

MCL_CURRENT = 1
MCL_FUTURE = 2


@dataclass(frozen=True)
class RealtimeStatus:
    """What the scheduler process got: the policy and whether its memory is locked, with the why-not."""

    is_fifo: bool
    priority: int
    is_memory_locked: bool
    detail: str

    def describe(self) -> str:
        policy = f"SCHED_FIFO priority {self.priority}" if self.is_fifo else "normal scheduling (SCHED_OTHER)"
        memory = "memory locked" if self.is_memory_locked else "memory not locked"
        return f"{policy}, {memory}" + (f" ({self.detail})" if self.detail else "")


def _set_fifo(priority: int) -> str | None:
    if not hasattr(os, "sched_setscheduler"):
        return "no sched_setscheduler on this OS"
    try:
        top = os.sched_get_priority_max(os.SCHED_FIFO)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(priority, top)))
    except OSError as error:
        return f"SCHED_FIFO: {os.strerror(error.errno or 0)}"
    return None


LOCK_HEADROOM_BYTES = 256 * 1024 * 1024
"""mlockall(MCL_FUTURE) makes every later allocation fail beyond RLIMIT_MEMLOCK: only lock with room to grow."""


def _lock_memory() -> str | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY and soft < LOCK_HEADROOM_BYTES:
        return f"mlockall: RLIMIT_MEMLOCK is {soft // 1024} KiB (set LimitMEMLOCK=infinity)"
    name = ctypes.util.find_library("c")
    if name is None:
        return "mlockall: no libc"
    libc = ctypes.CDLL(name, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        return f"mlockall: {os.strerror(ctypes.get_errno())}"
    return None


def apply_realtime(enabled: bool, priority: int) -> RealtimeStatus:
    """Ask for SCHED_FIFO at ``priority`` and mlockall; report what was granted (never raises)."""
    if not enabled:
        return RealtimeStatus(False, 0, False, "actuation.realtime = false")
    fifo_error = _set_fifo(priority)
    lock_error = _lock_memory()
    detail = "; ".join(e for e in (fifo_error, lock_error) if e)
    granted = os.sched_getparam(0).sched_priority if fifo_error is None else 0
    return RealtimeStatus(fifo_error is None, granted, lock_error is None, detail)
