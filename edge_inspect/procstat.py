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
