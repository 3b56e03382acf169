"""``edge-inspect quantize MODEL DATA --out INT8.onnx``: onnxruntime static INT8 quantization.

Calibration images go through the same preprocessing the runtime uses. The quantized network scores
differently from the float one, so the self-test probes are re-recorded from the INT8 model (the
float model's probes would, rightly, refuse it) and the threshold is kept: run ``edge-inspect
evaluate`` on both and ``calibrate`` the INT8 file if its rates moved.
"""

from __future__ import annotations

import argparse
import base64
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ..classify import OnnxClassifier
from ..classify.metadata import SelfTestProbe
from ..classify.model_file import write_metadata
from ..dataset import list_labelled
from ..errors import DataError, ModelError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("quantize", help="INT8 static quantization calibrated on images")
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="calibration images: good/ and defect folders")
    parser.add_argument("--out", type=Path, required=True, help="the INT8 model file (MODEL is kept)")
    parser.add_argument("--max-images", type=int, default=200, help="calibration images used at most")
    parser.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    parser.add_argument("--reduce-range", action="store_true", help="7-bit weights (x86 CPUs without VNNI)")
    parser.add_argument(
        "--all-ops",
        action="store_true",
        help="patch models: quantize every op (default: only the convolutions; the pooling, upsampling "
        "and the anomaly map stay float)",
    )
    parser.set_defaults(func=run)


class _ImageReader:
    """onnxruntime's CalibrationDataReader over preprocessed images, one per call."""

    def __init__(self, input_name: str, tensors: list[np.ndarray]) -> None:
        self._items: Iterator[dict[str, np.ndarray]] = iter({input_name: t} for t in tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def calibration_tensors(classifier: OnnxClassifier, data: Path, max_images: int) -> list[np.ndarray]:
    items = list_labelled(data, classifier.metadata.good_label, require_defects=False)  # goods calibrate too
    rng = np.random.default_rng(0)
    chosen = [items[i] for i in sorted(rng.permutation(len(items))[:max_images])]
    tensors = []
    for item in chosen:
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is not None:
            tensors.append(classifier.prepare(image).tensor[:1])
    if not tensors:
        raise DataError(f"data folder {data}: no readable calibration image")
    return tensors


def run(args: argparse.Namespace) -> int:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if args.out.resolve() == args.model.resolve():
        raise ModelError("--out must differ from MODEL: the float model is kept")
    float_model = OnnxClassifier(args.model, warmup_runs=0)
    if float_model.metadata.extra.get("training.mode") == "good-only":
        raise ModelError(
            f"{args.model} is a good-only model: its threshold sits on a small raw score (a nearest-neighbour "
            "distance, or a student's disagreement with the backbone) that INT8 features move past it (a memory "
            "bank on BSData rejected every part, AUROC 0.79 -> 0.28); keep the float32 model (docs/PERFORMANCE.md)"
        )
    tensors = calibration_tensors(float_model, args.data, args.max_images)
    patch_model = "training.mode" in float_model.metadata.extra
    op_types = None if args.all_ops or not patch_model else ["Conv"]
    with tempfile.TemporaryDirectory() as tmp:
        raw_int8 = Path(tmp) / "int8.onnx"
        quantize_static(
            str(args.model), str(raw_int8), _ImageReader(float_model._input_name, tensors),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            per_channel=args.per_channel, reduce_range=args.reduce_range,
            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=op_types,
        )
        int8 = OnnxClassifier(raw_int8, warmup_runs=0, verify_selftest=False)
        meta = float_model.metadata
        probes = tuple(
            SelfTestProbe(p.png_b64, float(int8.score_crops([_decode(p.png_b64)])[0])) for p in meta.selftest_probes
        )
        new_meta = replace(meta, model_version=f"{meta.model_version}-int8", selftest_probes=probes)
        write_metadata(raw_int8, new_meta, args.out)
    OnnxClassifier(args.out, warmup_runs=0)  # loads and passes the re-recorded self-test
    print(f"edge-inspect: wrote {args.out} ({len(tensors)} calibration images); "
          f"compare with: edge-inspect evaluate {args.out} {args.data}")
    return 0


def _decode(png_b64: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(png_b64), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image
