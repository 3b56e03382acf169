"""Inspection throughput with 50 concurrent HTTP clients on the pages and API vs none, in one run.

The appliance (replay source fed at the classifier's ceiling, the web view serving on loopback) runs
throughout; measuring windows alternate between no client and N clients, each a thread in a separate
process on this machine looping over the live page, login page, JSON API, snapshot, /metrics,
/healthz and /readyz with urllib (bounded by a request count and a time limit). Each client waits
--think-ms between requests: 1000 by default, as an open live page polls /api/status every second
(static/live.js); --think-ms 0 is a flood (every client fires as fast as the server answers). The client process
runs at nice 10 by default, standing in for browsers and scrapers on other machines; --client-nice 0
makes it compete with the appliance as an equal. Prints throughput idle vs loaded, the ratio, and the
server's latency p50/p99/max and errors as the clients saw them.

    .venv/bin/python benchmarks/bench_load.py [--clients 50] [--think-ms 1000] [--seconds 6] [--rounds 3]

Without --model it uses models/default.onnx when present, else a small generated CNN.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench_stream_viewers import bench_setup, measure

from edge_inspect.config import config_from_dict
from edge_inspect.outputs import SimulatedOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.sources import create_source
from edge_inspect.web.service import web_service

PATHS = (
    "/", "/login", "/api/status", "/api/counters", "/api/results?limit=50", "/api/rejects", "/api/config",
    "/live.jpg", "/metrics", "/healthz", "/readyz", "/static/style.css",
)
MAX_REQUESTS_PER_CLIENT = 100_000


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def clients_main(base_url: str, count: int, seconds: float, nice: int, think_s: float) -> None:
    """Child process: ``count`` threads looping over PATHS for ``seconds``; prints latencies and errors."""
    if nice:
        os.nice(nice)
    latencies: list[list[float]] = [[] for _ in range(count)]
    errors: list[dict[str, int]] = [{} for _ in range(count)]

    def client(index: int) -> None:
        end = time.monotonic() + seconds
        time.sleep(think_s * index / count)  # spread the clients' phases, as independent browsers are
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= end:
                break
            if n:
                time.sleep(think_s)
            path = PATHS[(index + n) % len(PATHS)]
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(base_url + path, timeout=10) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as error:
                error.read()
                status = error.code
                error.close()
            except OSError as error:  # refused, reset, timed out
                key = type(error).__name__
                errors[index][key] = errors[index].get(key, 0) + 1
                continue
            latencies[index].append((time.perf_counter() - start) * 1000.0)
            # 503 is a valid answer of /readyz (not ready) and /live.jpg (no frame yet); 5xx elsewhere is not
            if status >= 500 and not (status == 503 and path in ("/readyz", "/live.jpg")):
                errors[index][str(status)] = errors[index].get(str(status), 0) + 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    merged: dict[str, int] = {}
    for per_client in errors:
        for key, value in per_client.items():
            merged[key] = merged.get(key, 0) + value
    flat = [value for per_client in latencies for value in per_client]
    print(json.dumps({
        "requests": len(flat),
        "requests_per_s": len(flat) / seconds,
        "p50_ms": percentile(flat, 0.50),
        "p99_ms": percentile(flat, 0.99),
        "max_ms": max(flat) if flat else None,
        "errors": merged,
        "clients_with_no_answer": sum(1 for per_client in latencies if not per_client),
    }))


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ei-bench-load-") as tmp_name:
        tmp = Path(tmp_name)
        model, frames, classifier, ceiling = bench_setup(tmp, args.model)
        feed_fps = min(1000.0, ceiling * 1.2)
        config = config_from_dict({
            "source": {"type": "replay", "path": str(frames), "frames_per_second": feed_fps},
            "model": {"path": str(model)},
            "line": {"travel_delay_ms": 250.0},
            "web": {"host": "127.0.0.1", "port": 0, "db_path": str(tmp / "web.sqlite"),
                    "secret_key_path": str(tmp / "secret.key")},
        })
        source = create_source(config.source)
        source.open()
        inspector = Inspector(config, source=source, classifier=classifier, reject=SimulatedOutput(name="reject"))
        rounds: list[dict[str, Any]] = []
        with inspector, web_service(config, inspector) as server:
            inspector.start()
            time.sleep(args.warmup)
            for index in range(args.rounds):
                idle = measure(inspector, args.seconds)
                clients = subprocess.Popen(
                    [sys.executable, __file__, "--clients-only", server.url.rstrip("/"), str(args.clients),
                     str(args.seconds + 2.0), str(args.client_nice), str(args.think_ms / 1000.0)],
                    stdout=subprocess.PIPE, text=True,
                )
                time.sleep(1.0)  # every client connected and looping
                loaded = measure(inspector, args.seconds)
                out, _ = clients.communicate(timeout=args.seconds + 60)
                http = json.loads(out)
                rounds.append({"idle": idle, "loaded": loaded, "http": http})
                print(f"round {index + 1}: idle {idle['parts_per_s']:.1f} parts/s, {args.clients} clients "
                      f"{loaded['parts_per_s']:.1f} parts/s (web threads {loaded['web_cpu_percent']:.1f}% of a "
                      f"core); {http['requests_per_s']:.0f} req/s, p50 {http['p50_ms']:.1f} ms, "
                      f"p99 {http['p99_ms']:.1f} ms, errors {http['errors'] or 0}", flush=True)
                time.sleep(1.0)
            inspector.stop()
        status = inspector.status()
        idle_pps = statistics.median(r["idle"]["parts_per_s"] for r in rounds)
        loaded_pps = statistics.median(r["loaded"]["parts_per_s"] for r in rounds)
        errors: dict[str, int] = {}
        for r in rounds:
            for key, value in r["http"]["errors"].items():
                errors[key] = errors.get(key, 0) + value
        return {
            "machine": {"cpus": os.cpu_count(), "platform": os.uname().machine, "python": sys.version.split()[0]},
            "model": f"{classifier.metadata.model_name} {classifier.metadata.model_version}",
            "ceiling_parts_per_s": ceiling,
            "feed_frames_per_s": feed_fps,
            "clients": args.clients,
            "client_nice": args.client_nice,
            "think_ms": args.think_ms,
            "seconds_per_window": args.seconds,
            "parts_per_s_idle": idle_pps,
            "parts_per_s_loaded": loaded_pps,
            "ratio": loaded_pps / idle_pps if idle_pps else float("nan"),
            "ratio_median_of_rounds": statistics.median(
                r["loaded"]["parts_per_s"] / r["idle"]["parts_per_s"] for r in rounds if r["idle"]["parts_per_s"]
            ),
            "http_requests": sum(r["http"]["requests"] for r in rounds),
            "http_requests_per_s": statistics.median(r["http"]["requests_per_s"] for r in rounds),
            "http_p50_ms": statistics.median(r["http"]["p50_ms"] for r in rounds),
            "http_p99_ms": max(r["http"]["p99_ms"] for r in rounds),
            "http_max_ms": max(r["http"]["max_ms"] for r in rounds),
            "http_errors": errors,
            "accounting": {
                "parts_started": inspector.parts_started,
                "parts_finished": inspector.parts_finished,
                "good_defect_failsafe": status.good + status.defect + status.failsafe,
            },
            "rounds": rounds,
        }


def main() -> int:
    if len(sys.argv) == 7 and sys.argv[1] == "--clients-only":
        clients_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: models/default.onnx, else a generated CNN)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent HTTP clients (threads)")
    parser.add_argument("--think-ms", type=float, default=1000.0,
                        help="pause between a client's requests, ms (1000: a polling live page; 0: a flood)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measuring window")
    parser.add_argument("--rounds", type=int, default=3, help="alternating idle/loaded windows (median)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the first window")
    parser.add_argument("--client-nice", type=int, default=10,
                        help="nice value of the clients' process (0: they compete with the appliance as equals)")
    parser.add_argument("--json", type=Path, help="write every figure as JSON")
    args = parser.parse_args()
    figures = run(args)
    acc = figures["accounting"]
    print(f"idle: {figures['parts_per_s_idle']:.1f} parts/s; {args.clients} clients "
          f"(think {args.think_ms:.0f} ms): "
          f"{figures['parts_per_s_loaded']:.1f} parts/s; ratio {figures['ratio']:.3f} "
          f"(median of per-round ratios {figures['ratio_median_of_rounds']:.3f}); HTTP "
          f"{figures['http_requests_per_s']:.0f} req/s, p50 {figures['http_p50_ms']:.1f} ms, "
          f"p99 {figures['http_p99_ms']:.1f} ms, max {figures['http_max_ms']:.1f} ms, errors "
          f"{figures['http_errors'] or 0}; parts started {acc['parts_started']} finished {acc['parts_finished']} "
          f"decided {acc['good_defect_failsafe']} (model {figures['model']}, ceiling "
          f"{figures['ceiling_parts_per_s']:.1f} parts/s, {figures['machine']['cpus']} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
