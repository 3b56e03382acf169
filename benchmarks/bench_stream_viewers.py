"""Inspection throughput with 20 live-stream viewers vs none, in one run on one machine.

The appliance (replay source fed faster than the classifier can go, the web view serving) runs
throughout; measuring windows alternate between no viewer and N viewers reading the MJPEG stream from
a separate process on this machine (standing in for browsers on other machines; it runs at nice 10 by
default, --viewer-nice 0 makes it compete as an equal). Throughput is parts that got a classifier
verdict per second. Prints the figures and the ratio.

    .venv/bin/python benchmarks/bench_stream_viewers.py [--model MODEL.onnx] [--viewers 20] [--seconds 6]

Without --model it uses models/default.onnx when present, else a small convolutional ONNX model it
writes itself (random weights, 224x224 input: a few milliseconds per part on a CPU core).
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
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_inspect.bench import CpuMeter
from edge_inspect.classify import OnnxClassifier, Region
from edge_inspect.classify.metadata import ModelMetadata
from edge_inspect.config import PROJECT_ROOT, config_from_dict
from edge_inspect.outputs import SimulatedOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.sources import create_source
from edge_inspect.web.service import web_service


def write_conv_model(path: Path) -> Path:
    """Conv(3->16) ReLU Conv(16->16) ReLU GlobalAveragePool Gemm(16->2): CPU-bound like a small CNN."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    weights = {
        "w1": rng.normal(0, 0.2, (16, 3, 3, 3)).astype(np.float32),
        "w2": rng.normal(0, 0.1, (16, 16, 3, 3)).astype(np.float32),
        "fc": rng.normal(0, 0.5, (2, 16)).astype(np.float32),
        "fcb": np.zeros(2, np.float32),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1),
        ],
        "bench-cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    meta = ModelMetadata(
        model_name="bench-cnn", model_version="random-7", input_width_px=224, input_height_px=224,
        labels=("good", "defect"), good_label="good", threshold=0.5,
    )
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def write_frames(folder: Path, count: int = 24) -> Path:
    """Camera-sized (1280x720) frames of a part moving along a belt."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(count):
        image = rng.integers(30, 60, (720, 1280, 3), dtype=np.uint8)
        cv2.circle(image, (200 + i * 35, 360), 150, (120, 120, 120), -1)
        if i % 6 == 5:
            cv2.rectangle(image, (700, 250), (820, 470), (240, 240, 240), -1)
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), image)
    return folder


def ceiling_parts_per_s(classifier: OnnxClassifier, frame: np.ndarray, regions: list[Region], seconds: float) -> float:
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        classifier.classify(frame, regions)
        done += 1
    return done / seconds


def viewers_main(url: str, count: int, seconds: float, nice: int) -> None:
    """Child process: ``count`` clients reading the MJPEG stream for ``seconds``; prints what they got."""
    if nice:
        os.nice(nice)  # stands in for browsers on other machines: their CPU is not the appliance's
    received = [0] * count
    frames = [0] * count

    def watch(index: int) -> None:
        end = time.monotonic() + seconds
        with urllib.request.urlopen(url, timeout=10) as response:
            while time.monotonic() < end:
                chunk = response.read1(65536)
                if not chunk:
                    break
                received[index] += len(chunk)
                frames[index] += chunk.count(b"--frame\r\n")

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    print(json.dumps({"bytes": sum(received), "frames_per_viewer_s": [f / seconds for f in frames]}))


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds so far of this process's threads, grouped: inspection loop, web view, other (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups = {"inspection": 0.0, "web": 0.0, "other": 0.0}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        name = thread.name
        group = "inspection" if name.startswith("ei-") else (
            "web" if name.startswith(("web", "waitress")) else "other")
        groups[group] += seconds
    return groups


def measure(inspector: Inspector, seconds: float) -> dict[str, float]:
    before, meter, cpu_before = inspector.status(), CpuMeter(), thread_cpu_s()
    time.sleep(seconds)
    after, cpu_after = inspector.status(), thread_cpu_s()
    decided = (after.good + after.defect) - (before.good + before.defect)
    return {
        "parts_per_s": decided / seconds,
        "failsafe_per_s": (after.failsafe - before.failsafe) / seconds,
        "process_cpu_percent": meter.percent(),
        **{f"{group}_cpu_percent": 100.0 * (cpu_after[group] - cpu_before[group]) / seconds for group in cpu_after},
        "load_average_1min": os.getloadavg()[0],
    }


def bench_setup(tmp: Path, model: Path | None) -> tuple[Path, Path, OnnxClassifier, float]:
    """The benchmarks' common start: the model (given, shipped, or a generated CNN), frames in ``tmp``,
    the loaded classifier, and its bare ceiling in parts per second."""
    model = model or (PROJECT_ROOT / "models" / "default.onnx")
    if not model.is_file():
        model = write_conv_model(tmp / "bench-cnn.onnx")
    frames = write_frames(tmp / "frames")
    classifier = OnnxClassifier(model, warmup_runs=5, verify_selftest=True)
    probe = cv2.imread(str(next(frames.glob("*.png"))))
    assert probe is not None
    return model, frames, classifier, ceiling_parts_per_s(classifier, probe, [], 3.0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ei-bench-web-") as tmp_name:
        tmp = Path(tmp_name)
        model, frames, classifier, ceiling = bench_setup(tmp, args.model)
        feed_fps = min(1000.0, ceiling * 1.2)
        config = config_from_dict({
            "source": {"type": "replay", "path": str(frames), "frames_per_second": feed_fps},
            "model": {"path": str(model)},
            "line": {"travel_delay_ms": 250.0},
            "web": {"port": 0, "db_path": str(tmp / "web.sqlite"), "secret_key_path": str(tmp / "secret.key"),
                    "stream_max_viewers": max(args.viewers, 1)},
        })
        source = create_source(config.source)
        source.open()
        inspector = Inspector(config, source=source, classifier=classifier, reject=SimulatedOutput(name="reject"))
        rounds: list[dict[str, Any]] = []
        with inspector, web_service(config, inspector) as server:
            inspector.start()
            time.sleep(args.warmup)
            for index in range(args.rounds):
                quiet = measure(inspector, args.seconds)
                viewers = subprocess.Popen(
                    [sys.executable, __file__, "--viewers-only", server.stream_url, str(args.viewers),
                     str(args.seconds + 3.0), str(args.viewer_nice)],
                    stdout=subprocess.PIPE, text=True,
                )
                time.sleep(2.0)  # all viewers connected and streaming
                streamers = server.app.extensions["edge_inspect"].streamer
                connected = streamers.viewers
                watched = measure(inspector, args.seconds)
                out, _ = viewers.communicate(timeout=60)
                got = json.loads(out)
                rounds.append({"none": quiet, "viewers": watched, "connected": connected,
                               "viewer_fps_min": min(got["frames_per_viewer_s"]),
                               "stream_mb_s": got["bytes"] / (args.seconds + 3.0) / 1e6})
                print(f"round {index + 1}: none {quiet['parts_per_s']:.1f} parts/s "
                      f"(web threads {quiet['web_cpu_percent']:.1f}% of a core), "
                      f"{connected} viewers {watched['parts_per_s']:.1f} parts/s "
                      f"(web threads {watched['web_cpu_percent']:.1f}%; each viewer >= "
                      f"{rounds[-1]['viewer_fps_min']:.1f} fps, {rounds[-1]['stream_mb_s']:.1f} MB/s streamed; "
                      f"load {watched['load_average_1min']:.1f})", flush=True)
                time.sleep(1.0)  # let the viewers' connections close before the next quiet window
            inspector.stop()
        none = statistics.median(r["none"]["parts_per_s"] for r in rounds)
        watched = statistics.median(r["viewers"]["parts_per_s"] for r in rounds)
        paired = statistics.median(r["viewers"]["parts_per_s"] / r["none"]["parts_per_s"] for r in rounds)
        return {
            "machine": {"cpus": os.cpu_count(), "platform": os.uname().machine, "python": sys.version.split()[0]},
            "model": f"{classifier.metadata.model_name} {classifier.metadata.model_version}",
            "ceiling_parts_per_s": ceiling,
            "feed_frames_per_s": feed_fps,
            "viewers": args.viewers,
            "viewer_nice": args.viewer_nice,
            "seconds_per_window": args.seconds,
            "parts_per_s_no_viewer": none,
            "parts_per_s_with_viewers": watched,
            "ratio": watched / none if none else float("nan"),
            "ratio_median_of_rounds": paired,
            "web_cpu_percent_no_viewer": statistics.median(r["none"]["web_cpu_percent"] for r in rounds),
            "web_cpu_percent_with_viewers": statistics.median(r["viewers"]["web_cpu_percent"] for r in rounds),
            "rounds": rounds,
        }


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--viewers-only":
        viewers_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: models/default.onnx, else a generated CNN)")
    parser.add_argument("--viewers", type=int, default=20, help="concurrent MJPEG viewers")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measuring window")
    parser.add_argument("--rounds", type=int, default=6, help="alternating none/viewers windows (median)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the first window")
    parser.add_argument("--viewer-nice", type=int, default=10,
                        help="nice value of the viewers' process (0: they compete with the appliance as equals)")
    parser.add_argument("--json", type=Path, help="write every figure as JSON")
    args = parser.parse_args()
    figures = run(args)
    print(f"no viewer: {figures['parts_per_s_no_viewer']:.1f} parts/s; {args.viewers} viewers: "
          f"{figures['parts_per_s_with_viewers']:.1f} parts/s; ratio {figures['ratio']:.3f} "
          f"(median of per-round ratios {figures['ratio_median_of_rounds']:.3f}); web threads "
          f"{figures['web_cpu_percent_no_viewer']:.1f}% -> {figures['web_cpu_percent_with_viewers']:.1f}% of a core "
          f"(model {figures['model']}, ceiling {figures['ceiling_parts_per_s']:.1f} parts/s, "
          f"{figures['machine']['cpus']} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
