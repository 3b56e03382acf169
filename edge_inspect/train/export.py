"""ONNX export of a trained network, checked against torch, with the edge-inspect metadata written in."""

from __future__ import annotations

import base64
import os
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ..classify.metadata import ModelMetadata, SelfTestProbe
from ..classify.model_file import write_metadata
from ..classify.onnx_classifier import open_session
from ..errors import ModelError

OPSET = 17
MAX_RELATIVE_ERROR = 1e-4


def defect_scores(network: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """1 - P(good) per row, computed by torch (the scores the self-test probes record)."""
    network.eval()
    with torch.no_grad():
        logits = network(torch.from_numpy(batch))
        good = torch.softmax(logits.double(), dim=1)[:, 0]
        return (1.0 - good).numpy()


def encode_probe(image_bgr: np.ndarray) -> str:
    """Base64 PNG of an image already at the model's input size."""
    ok, data = cv2.imencode(".png", image_bgr)
    if not ok:
        raise ModelError("could not encode a self-test probe as PNG")
    return base64.b64encode(data.tobytes()).decode("ascii")


def make_probes(
    network: torch.nn.Module, images_bgr: list[np.ndarray], meta: ModelMetadata
) -> tuple[SelfTestProbe, ...]:
    """Self-test probes: small images and the defect score torch gives each, fed through ``to_tensor``."""
    from ..classify.preprocess import to_tensor

    scores = defect_scores(network, to_tensor(images_bgr, meta))
    return tuple(SelfTestProbe(encode_probe(img), float(s)) for img, s in zip(images_bgr, scores))


def _export_graph(network: torch.nn.Module, meta: ModelMetadata, path: Path) -> None:
    dummy = torch.zeros(1, meta.channels, meta.input_height_px, meta.input_width_px)
    network.eval()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript (not a dependency)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            network,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def relative_error(reference: np.ndarray, other: np.ndarray) -> float:
    """Largest |a - b| relative to the largest |a| (how far ONNX output strays from torch)."""
    scale = max(float(np.abs(reference).max()), 1e-6)
    return float(np.abs(reference - other).max()) / scale


def export_onnx(network: torch.nn.Module, meta: ModelMetadata, out_path: Path, check_batch: np.ndarray) -> float:
    """Write ``out_path`` (graph + metadata); refuse if onnxruntime disagrees with torch on ``check_batch``."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    raw = out_path.with_name(f".{out_path.name}.raw")
    try:
        _export_graph(network, meta, raw)
        session = open_session(raw, ["CPUExecutionProvider"], 1, 1)
        got = session.run(None, {session.get_inputs()[0].name: check_batch})[0]
        with torch.no_grad():
            expected = network(torch.from_numpy(check_batch)).numpy()
        error = relative_error(expected, got)
        if error > MAX_RELATIVE_ERROR:
            raise ModelError(f"the exported ONNX model disagrees with torch (relative error {error:.2e})")
        write_metadata(raw, meta, out_path)
    finally:
        if raw.exists():
            os.unlink(raw)
    return error


def probe_images(images: np.ndarray, val_idx: np.ndarray, labels: np.ndarray, seed: int) -> list[np.ndarray]:
    """Up to two good and two defect validation images (at input size) to record as self-test probes."""
    rng = np.random.default_rng([6, seed])
    chosen: list[int] = []
    for wanted in (False, True):
        pool = val_idx[labels == wanted]
        chosen += [int(i) for i in rng.choice(pool, min(2, len(pool)), replace=False)]
    return [images[i] for i in chosen]


def export_outputs(
    model: torch.nn.Module, meta: ModelMetadata, out_path: Path, probes: list[np.ndarray]
) -> tuple[ModelMetadata, float]:
    """Export a patch model (outputs ``probabilities`` and ``anomaly_map``) as one graph, checked against torch.

    Returns the metadata written (with self-test probes) and onnxruntime's largest relative error.
    """
    from ..classify.onnx_classifier import ANOMALY_MAP_OUTPUT
    from ..classify.preprocess import to_tensor

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    raw = out_path.with_name(f".{out_path.name}.raw")
    batch = to_tensor(probes, meta)
    model.eval()
    with torch.no_grad():
        expected_scores, expected_map = (t.double().numpy() for t in model(torch.from_numpy(batch)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                (torch.from_numpy(batch[:1]),),
                str(raw),
                input_names=["input"],
                output_names=["probabilities", ANOMALY_MAP_OUTPUT],
                dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}, ANOMALY_MAP_OUTPUT: {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        session = open_session(raw, ["CPUExecutionProvider"], 1, 1)
        got_scores, got_map = session.run(None, {session.get_inputs()[0].name: batch})
        error = max(relative_error(expected_scores, got_scores), relative_error(expected_map, got_map))
        if error > MAX_RELATIVE_ERROR * 10:
            raise ModelError(f"the exported ONNX model disagrees with torch (relative error {error:.2e})")
        probe_list = tuple(
            SelfTestProbe(encode_probe(image), float(score)) for image, score in zip(probes, expected_scores[:, 1])
        )
        meta = replace(meta, selftest_probes=probe_list)
        write_metadata(raw, meta, out_path)
    finally:
        if raw.exists():
            os.unlink(raw)
    return meta, error
