"""A deliberately slow classifier ONNX for ``edge-inspect bench``: the shipped model's contract, more compute.

Same input and metadata as ``models/default.onnx`` (GRAY 128 x 128, grey before the resize, logits
good/defect, its threshold) with a stack of 3 x 3 convolutions whose width sets the cost, so the bench's
pipeline ÷ ceiling can be measured for a model of a Pi-class cost (5 ms and more) on this machine. The
weights are random (seeded): verdicts are meaningless, timing is what it measures. It records self-test
probes from this runtime, so it loads like any model.

    .venv/bin/python benchmarks/make_heavy_model.py /tmp/heavy.onnx --channels 20   # prints its ms (~9 here)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np


def build(path: Path, channels: int, layers: int, seed: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge_inspect.classify import read_metadata
    from edge_inspect.config.loader import PROJECT_ROOT

    meta = read_metadata(PROJECT_ROOT / "models" / "default.onnx")
    meta = dataclasses.replace(meta, model_name="heavy-bench", model_version=f"c{channels}-l{layers}",
                               preprocess_order="convert_then_resize", selftest_probes=())
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    previous, width = "input", 1
    for index in range(layers):
        weight = (rng.normal(0.0, (2.0 / (9 * width)) ** 0.5, (channels, width, 3, 3))).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"w{index}"),
                  numpy_helper.from_array(np.zeros(channels, np.float32), f"b{index}")]
        nodes += [helper.make_node("Conv", [previous, f"w{index}", f"b{index}"], [f"c{index}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{index}"], [f"r{index}"])]
        previous, width = f"r{index}", channels
    head = (rng.normal(0.0, 0.1, (channels, 2))).astype(np.float32)
    inits.append(numpy_helper.from_array(head, "head"))
    nodes += [helper.make_node("GlobalAveragePool", [previous], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
              helper.make_node("MatMul", ["flat", "head"], ["logits"])]
    shape = ["N", 1, meta.input_height_px, meta.input_width_px]
    graph = helper.make_graph(
        nodes, "heavy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def record_probes(path: Path) -> None:
    """Self-test probes from two sample images, so the model loads like a trained one."""
    import cv2

    from edge_inspect.classify import OnnxClassifier
    from edge_inspect.classify.model_file import write_metadata
    from edge_inspect.commands.model import record_probes as probes_of
    from edge_inspect.config.loader import PROJECT_ROOT

    images = [cv2.imread(str(p)) for p in sorted((PROJECT_ROOT / "sample_images").glob("*.jpg"))[:2]]
    classifier = OnnxClassifier(path, verify_selftest=False, warmup_runs=1)
    meta = dataclasses.replace(classifier.metadata, selftest_probes=probes_of(classifier, images))
    write_metadata(path, meta, path)


def time_one(path: Path, runs: int = 30) -> float:
    from edge_inspect.classify import OnnxClassifier

    classifier = OnnxClassifier(path, warmup_runs=3)
    tensor = np.zeros((1, 1, 128, 128), np.float32)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.run_tensor(tensor)
        timings.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(timings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--channels", type=int, default=20, help="convolution width (the cost grows as its square)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build(args.out, args.channels, args.layers, args.seed)
    record_probes(args.out)
    print(f"{args.out}: median {time_one(args.out):.2f} ms per inference (one thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
