"""The platform's own wake-up jitter, as the reject scheduler waits (cyclictest-like).

select() until 300 us before a target every 3.3 ms, spin to it, record how late; with real-time
scheduling asked for or not. What no scheduler on this machine can beat.

    .venv/bin/python benchmarks/scheduler_jitter.py rt 15       # SCHED_FIFO + mlockall, 15 s
    .venv/bin/python benchmarks/scheduler_jitter.py normal 15
    .venv/bin/python benchmarks/scheduler_jitter.py gaps 40     # SCHED_FIFO, spin on the clock only

`gaps`: a SCHED_FIFO process is never preempted by normal tasks, so while it spins reading the clock any
gap between two reads is time the kernel or, on a VM, the hypervisor took the CPU away: a late fire
that no scheduler code can prevent. It spins 250 ms at a time and sleeps 50 ms (RT throttling allows
95 % of each second); prints the gaps over 0.5 and 1 ms and the largest.
"""
import json
import os
import select
import sys
import time

from edge_inspect.actuation.realtime import apply_realtime

rt = sys.argv[1] in ("rt", "gaps")
print(apply_realtime(rt, 50).describe())
if sys.argv[1] == "gaps":
    gaps = []
    end = time.monotonic() + float(sys.argv[2])
    previous = time.monotonic()
    while previous < end:
        slice_end = min(end, previous + 0.25)
        while previous < slice_end:
            now = time.monotonic()
            if now - previous > 0.0001:
                gaps.append((now - previous) * 1000)
            previous = now
        time.sleep(0.05)
        previous = time.monotonic()
    print(json.dumps({"over_0.5ms": sum(g > 0.5 for g in gaps), "over_1ms": sum(g > 1 for g in gaps),
                      "largest_ms": max(gaps, default=0.0)}))
    sys.exit(0)
r, w = os.pipe()
late = []
end = time.monotonic() + float(sys.argv[2])
target = time.monotonic() + 0.01
while target < end:
    t = target - time.monotonic() - 0.0003
    if t > 0:
        select.select([r], [], [], t)
    while time.monotonic() < target:
        pass
    late.append((time.monotonic() - target) * 1000)
    target += 0.0033
late.sort()
n = len(late)
summary = {"n": n, "p50": late[n // 2], "p99": late[int(n * 0.99)], "max": late[-1]}
print(json.dumps({**summary, "over_1ms": sum(x > 1 for x in late)}))
