"""The platform's own wake-up jitter, as the reject scheduler waits (cyclictest-like).

select() until 300 us before a target every 3.3 ms, spin to it, record how late; with real-time
scheduling asked for or not. What no scheduler on this machine can beat.

    .venv/bin/python benchmarks/scheduler_jitter.py rt 15       # SCHED_FIFO + mlockall, 15 s
    .venv/bin/python benchmarks/scheduler_jitter.py normal 15
"""
import json
import os
import select
import sys
import time

from edge_inspect.actuation.realtime import apply_realtime

rt = sys.argv[1] == "rt"
print(apply_realtime(rt, 50).describe())
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
