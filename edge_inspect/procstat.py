"""CPU time and resident memory of another process, from Linux's /proc (None elsewhere or once it ended).

Used for the appliance's own child processes (the reject scheduler, the inference process, the defect-log
writer) by the bench and the status figures."""

from __future__ import annotations

import os


def _stat_seconds(pid: int, first: int) -> float | None:
    """Two adjacent clock-tick fields of /proc/PID/stat, summed, in seconds (counted after the command name)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used."""
    return _stat_seconds(pid, 11)  # utime, stime (fields 14, 15)


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
    """CPU seconds every core of this machine has spent running programs since boot (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return busy_ticks(stat.readline()) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def box_steal_cpu_s() -> float | None:
    """CPU seconds a virtual machine's host has run something else while this machine's cores waited (steal,
    /proc/stat), summed over cores since boot; 0 on bare metal, None where /proc cannot tell."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return steal_ticks(stat.readline()) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def steal_ticks(cpu_line: str) -> int:
    """Steal ticks of /proc/stat's ``cpu`` line (its eighth value; 0 on a kernel too old to count it)."""
    name, *values = cpu_line.split()
    if not name.startswith("cpu"):
        raise ValueError(f"not a /proc/stat cpu line: {cpu_line[:40]!r}")
    return int(values[7]) if len(values) > 7 else 0


def busy_ticks(cpu_line: str) -> int:
    """Busy ticks of /proc/stat's ``cpu`` line: user, nice, system, irq and softirq.

    Not idle or iowait (nothing ran), and not steal: that is time a virtual machine's host ran something
    else while this machine's cores waited, CPU no program here got, so no program here can be blamed for
    it (a guard that counted it would mistake a busy host for a busy box). guest and guest_nice are already
    inside user and nice.
    """
    name, *values = cpu_line.split()
    if not name.startswith("cpu"):
        raise ValueError(f"not a /proc/stat cpu line: {cpu_line[:40]!r}")
    user, nice, system, _idle, _iowait, irq, softirq = ([int(value) for value in values[:7]] + [0] * 7)[:7]
    return user + nice + system + irq + softirq


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


def reaped_children_cpu_s(pid: int) -> float | None:
    """CPU seconds of the children of ``pid`` that have ended and been waited for (cutime + cstime)."""
    return _stat_seconds(pid, 13)  # cutime, cstime (fields 16, 17)


def family_cpu_s(pid: int) -> float | None:
    """CPU seconds of process ``pid`` and its direct children, those alive now and those that ended (the
    appliance: the inspection process, its reject scheduler, its inference process and its defect-log writer).

    The ended ones count too: an inference process that ends (a stop, a swap, a restart) must not take its CPU
    out of the sum, or a reader comparing two sums would put it down to some other program.
    """
    own, reaped = process_cpu_s(pid), reaped_children_cpu_s(pid)
    if own is None or reaped is None:
        return None
    return own + reaped + sum(cpu for child in child_pids(pid) if (cpu := process_cpu_s(child)) is not None)
