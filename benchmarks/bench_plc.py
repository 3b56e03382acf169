"""PLC interface figures, in one run on one machine (written into docs/PLC.md).

1. latency: capture -> results_valid seen by a PLC polling the discrete inputs flat out over Modbus
   TCP (triggered appliance, the trigger written over Modbus; the travel delay is subtracted too, since
   a result is published when the part reaches the diverter);
2. FIFO: results per second the results_valid / results_ack handshake sustains against a client that
   reads and acknowledges as fast as it can (the FIFO kept full by a feeder thread);
3. clients: inspection throughput (parts with a classifier verdict per second, free run, source fed
   faster than the classifier) with no Modbus client vs 5 clients each polling the status and data
   tables every 10 ms from another process (a PLC scan), windows alternating.

    nice -n 5 .venv/bin/python benchmarks/bench_plc.py [--parts 200] [--seconds 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream_viewers import bench_setup, measure

from edge_inspect.config import config_from_dict
from edge_inspect.events import PartResult, Verdict
from edge_inspect.outputs import SimulatedOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.plc import registers as reg
from edge_inspect.plc.handshake import Handshake
from edge_inspect.plc.modbus_server import ModbusServer
from edge_inspect.plc.service import PlcService
from edge_inspect.sources import create_source
from edge_inspect.triggers.modbus import ModbusTrigger

VALID = reg.by_name("results_valid").address
ACK = reg.by_name("results_ack").address
IR_WORDS = reg.table_size("input_register")


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "max": ordered[-1], "count": len(ordered)}


def bench_latency(model: Path, frames: Path, parts: int) -> dict[str, Any]:
    from pymodbus.client import ModbusTcpClient

    config = config_from_dict({
        "source": {"type": "replay", "path": str(frames), "frames_per_second": 100.0},
        "model": {"path": str(model)}, "line": {"travel_delay_ms": 100.0},
        "trigger": {"mode": "triggered", "input": {"type": "modbus"}},
        "plc": {"modbus": {"enabled": True, "port": 0, "status_refresh_ms": 50.0}}, "web": {"enabled": False},
    })
    source = create_source(config.source)
    source.open()
    inspector = Inspector(config, source=source, classifier=_classifier(model), reject=SimulatedOutput(name="r"),
                          trigger=ModbusTrigger())
    seen = inspector.subscribe("bench", 10000)
    to_valid_ms, after_publish_ms = [], []
    with inspector, PlcService(config, inspector) as service:
        inspector.start()
        assert service.modbus is not None and service.modbus.port is not None
        client = ModbusTcpClient("127.0.0.1", port=service.modbus.port)
        client.connect()
        client.write_coil(reg.by_name("trigger_enable").address, True)
        for _ in range(parts):
            client.write_coil(reg.by_name("trigger").address, True)
            client.write_coil(reg.by_name("trigger").address, False)
            while not client.read_discrete_inputs(0, count=16).bits[VALID]:
                pass
            visible_ts_s = time.monotonic()
            result: PartResult | None = seen.get(timeout_s=5.0)
            assert result is not None
            to_valid_ms.append((visible_ts_s - result.capture_ts_s) * 1000.0)
            after_publish_ms.append((visible_ts_s - result.scheduled_fire_ts_s) * 1000.0)
            client.write_coil(ACK, True)
            client.write_coil(ACK, False)
        client.close()
        accounting = inspector.parts_started, inspector.parts_finished
    return {"capture_to_results_valid_ms": _summary(to_valid_ms),
            "published_to_results_valid_ms": _summary(after_publish_ms),
            "travel_delay_ms": 100.0, "parts_started_finished": accounting}


class _NoActions:
    def fire_trigger(self, edge_ts_s: float) -> Any:
        return None

    def reset_counters(self) -> None:
        pass

    def select_model(self, number: int) -> bool:
        return False


def bench_fifo(seconds: float) -> dict[str, Any]:
    from pymodbus.client import ModbusTcpClient

    from edge_inspect.config.plc import PlcModbusConfig

    handshake = Handshake(_NoActions(), 8)
    stop = threading.Event()
    fed = [0]

    def feeder() -> None:  # keeps the FIFO full: the client, not the appliance, is the limit
        while not stop.is_set():
            if len(handshake.fifo.entries) < handshake.fifo.max_entries:
                fed[0] += 1
                handshake.add_result(_fake_result(fed[0]))
            else:
                time.sleep(0.0005)

    thread = threading.Thread(target=feeder, daemon=True)
    with ModbusServer(PlcModbusConfig(enabled=True, port=0), handshake) as server:
        thread.start()
        client = ModbusTcpClient("127.0.0.1", port=server.port)
        client.connect()
        drained, ids, end = 0, [], time.monotonic() + seconds
        start = time.monotonic()
        while time.monotonic() < end:
            words = client.read_input_registers(0, count=IR_WORDS).registers
            if not words[0] & (1 << VALID):
                continue
            ids.append(words[reg.by_name("result_inspection_id").address])
            client.write_coil(ACK, True)
            client.write_coil(ACK, False)
            drained += 1
        elapsed = time.monotonic() - start
        client.close()
        stop.set()
        thread.join()
    in_order = all(b == a + 1 for a, b in itertools.pairwise(ids))
    return {"results_per_s": drained / elapsed, "requests_per_result": 3, "ids_consecutive": in_order,
            "overruns": handshake.fifo.dropped}


def _fake_result(part_id: int) -> PartResult:
    return PartResult(part_id, f"bench-{part_id}", part_id, time.monotonic(), time.time(), Verdict.GOOD, None,
                      False, (), 0.5, "bench", "1", 1.0, time.monotonic(), None)


def _classifier(model: Path) -> Any:
    from edge_inspect.classify import OnnxClassifier

    return OnnxClassifier(model, warmup_runs=3)


def poller_main(port: int, clients: int, seconds: float, period_s: float, ready: Any = None) -> None:
    """Child process: ``clients`` PLCs, each reading status bits and data words every ``period_s``."""
    from pymodbus.client import ModbusTcpClient

    os.nice(10)  # stands in for PLCs: their CPU is not the appliance's
    counts = [0] * clients
    connected = threading.Barrier(clients + 1)

    def poll(index: int) -> None:
        client = ModbusTcpClient("127.0.0.1", port=port)
        client.connect()
        connected.wait()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            cycle = time.monotonic()
            client.read_discrete_inputs(0, count=16)
            client.read_input_registers(0, count=IR_WORDS)
            counts[index] += 2
            time.sleep(max(0.0, period_s - (time.monotonic() - cycle)))
        client.close()

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    connected.wait()
    if ready is not None:
        ready.put("ready")
    for thread in threads:
        thread.join()
    print(json.dumps({"requests_per_s": sum(counts) / seconds}), flush=True)


def plc_thread_cpu_s() -> float:
    """CPU seconds so far of this process's PLC threads (ei-plc-*), Linux."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if not thread.name.startswith("ei-plc"):
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def bench_clients(model: Path, frames: Path, ceiling: float, seconds: float, rounds: int, period_s: float,
                  thread_nice: int = 0) -> dict[str, Any]:
    config = config_from_dict({
        "source": {"type": "replay", "path": str(frames), "frames_per_second": min(1000.0, ceiling * 1.2)},
        "model": {"path": str(model)}, "line": {"travel_delay_ms": 250.0},
        "plc": {"modbus": {"enabled": True, "port": 0}, "thread_nice": thread_nice}, "web": {"enabled": False},
    })
    source = create_source(config.source)
    source.open()
    inspector = Inspector(config, source=source, classifier=_classifier(model), reject=SimulatedOutput(name="r"))
    windows: list[dict[str, Any]] = []
    context = multiprocessing.get_context("spawn")
    with inspector, PlcService(config, inspector) as service:
        inspector.start()
        time.sleep(3.0)
        assert service.modbus is not None and service.modbus.port is not None
        for _ in range(rounds):
            quiet = measure(inspector, seconds)
            queue: Any = context.Queue()
            child = context.Process(target=_poller_entry, args=(queue, service.modbus.port, 5, seconds + 2.0, period_s))
            child.start()
            assert queue.get(timeout=120) == "ready"  # every client connected and polling
            time.sleep(1.0)
            plc_cpu_before, requests_before = plc_thread_cpu_s(), service.modbus.gate.requests
            busy = measure(inspector, seconds)
            plc_cpu_s, requests = plc_thread_cpu_s() - plc_cpu_before, service.modbus.gate.requests - requests_before
            child.join()
            windows.append({"no_clients": quiet, "five_clients": busy, "poller": queue.get(timeout=5),
                            "plc_threads_cpu_percent": 100.0 * plc_cpu_s / seconds,
                            "plc_cpu_us_per_request": 1e6 * plc_cpu_s / max(requests, 1),
                            "requests_per_s": requests / seconds})
    quiet_rate = statistics.mean(w["no_clients"]["parts_per_s"] for w in windows)
    busy_rate = statistics.mean(w["five_clients"]["parts_per_s"] for w in windows)
    cpu_per_request = statistics.median(w["plc_cpu_us_per_request"] for w in windows)
    return {"windows": windows, "plc_cpu_us_per_request_median": cpu_per_request,
            "round_ratios": [w["five_clients"]["parts_per_s"] / w["no_clients"]["parts_per_s"] for w in windows],
            "no_clients_parts_per_s": quiet_rate, "five_clients_parts_per_s": busy_rate,
            "ratio": busy_rate / quiet_rate, "poll_period_ms": period_s * 1000.0, "ceiling_parts_per_s": ceiling,
            "thread_nice": thread_nice}


def _poller_entry(queue: Any, port: int, clients: int, seconds: float, period_s: float) -> None:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        poller_main(port, clients, seconds, period_s, queue)
    queue.put(json.loads(out.getvalue()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--parts", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-period-ms", type=float, default=10.0)
    parser.add_argument("--thread-nice", type=int, default=0, help="plc.thread_nice for the clients run")
    parser.add_argument("--only", choices=["latency", "fifo", "clients"], help="run one measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ei-bench-plc-") as tmp_name:
        model, frames, _classifier_unused, ceiling = bench_setup(Path(tmp_name), args.model)
        runs = {
            "latency": lambda: bench_latency(model, frames, args.parts),
            "fifo": lambda: bench_fifo(args.seconds),
            "clients": lambda: bench_clients(model, frames, ceiling, args.seconds, args.rounds,
                                             args.poll_period_ms / 1000.0, args.thread_nice),
        }
        figures: dict[str, Any] = {name: run() for name, run in runs.items() if args.only in (None, name)}
        figures["load_average_1min_end"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
