"""CPU time and resident memory of another process, from Linux's /proc (None elsewhere or once it ended).

Used for the appliance's own child processes (the reject scheduler, the defect-log writer) by the bench
and the status figures."""

from __future__ import annotations

import os


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


def process_rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid``, MiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None


def box_busy_cpu_s() -> float | None:
    """CPU seconds every core of this machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The direct children of process ``pid`` (every thread's), from /proc/PID/task/*/children."""
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                pids += [int(child) for child in children.read().split()]
        except (OSError, ValueError):
            continue
    return pids


def family_cpu_s(pid: int) -> float | None:
    """CPU seconds of process ``pid`` and its direct children alive now (the appliance: the inspection process,
    its reject scheduler and its defect-log writer)."""
    own = process_cpu_s(pid)
    if own is None:
        return None
    return own + sum(cpu for child in child_pids(pid) if (cpu := process_cpu_s(child)) is not None)
