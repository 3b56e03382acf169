"""Cost of models on the box: per-part ``session.run`` time on one thread, peak memory and file size.

Each model is measured in a fresh subprocess (so peak RSS is that model's alone): onnxruntime CPU,
``intra_op_num_threads=1``, one warm-up run, then ``--runs`` timed runs on a real preprocessed image
(or a zero input without ``--image``). Prints one JSON object per model and a table.

    python scripts/model_cost.py models/bsdata-patch.onnx /tmp/int8.onnx --image some.jpg --runs 30
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def measure(model: Path, image: Path | None, runs: int) -> dict[str, float | str]:
    import cv2
    import numpy as np
    import onnxruntime as ort

    from edge_inspect.classify import OnnxClassifier

    classifier = OnnxClassifier(model, warmup_runs=0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    meta = classifier.metadata
    if image is not None:
        frame = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if frame is None:
            raise SystemExit(f"cannot read {image}")
        tensor = classifier.prepare(frame).tensor[:1]
    else:
        shape = (1, meta.channels, meta.input_height_px, meta.input_width_px)
        tensor = np.zeros(shape if meta.layout == "NCHW" else (1, *shape[2:], shape[1]), np.float32)
    name = session.get_inputs()[0].name
    session.run(None, {name: tensor})
    times_ms = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {name: tensor})
        times_ms.append((time.perf_counter() - started) * 1000.0)
    times_ms.sort()
    return {
        "model": str(model),
        "input": f"{meta.input_width_px}x{meta.input_height_px}",
        "median_ms": times_ms[len(times_ms) // 2],
        "fastest_ms": times_ms[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "file_mib": model.stat().st_size / 2**20,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--image", type=Path, help="a part image to score (default: a zero input)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the per-model subprocess
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.models[0], args.image, args.runs)))
        return 0
    rows = []
    for model in args.models:
        command = [sys.executable, __file__, str(model), "--one", "--runs", str(args.runs)]
        if args.image:
            command += ["--image", str(args.image)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("| model | input | median ms | fastest ms | peak RSS MB | file MiB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {Path(str(row['model'])).name} | {row['input']} | {row['median_ms']:.1f} | {row['fastest_ms']:.1f} "
              f"| {row['peak_rss_mb']:.0f} | {row['file_mib']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
