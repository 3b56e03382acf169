"""``edge-inspect model inspect|set-meta``: read or write the metadata contract of an ONNX file.

``set-meta`` brings a classifier exported elsewhere (PyTorch, Ultralytics classification, anomalib) into
edge-inspect without retraining: it writes the keys the runtime needs, then loads the result with
onnxruntime to prove it runs.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..classify import OnnxClassifier
from ..classify.metadata import PREFIX, ModelMetadata, SelfTestProbe
from ..classify.model_file import next_free_name, read_props, write_metadata
from ..classify.onnx_classifier import open_session
from ..classify.preprocess import fit_to_input_bgr
from ..errors import ImageError, ModelError
from ..sources.replay import list_images

PROBES_MAX = 8  # each probe is a PNG at the model's input size inside the model file: keep it small


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("model", help="inspect or set a model file's edge-inspect metadata")
    actions = parser.add_subparsers(dest="model_action", metavar="ACTION", required=True)
    inspect = actions.add_parser("inspect", help="print a model's metadata, inputs and outputs")
    inspect.add_argument("model", type=Path)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=run_inspect)
    set_meta = actions.add_parser("set-meta", help="write edge-inspect metadata into an ONNX classifier")
    set_meta.add_argument("model", type=Path)
    set_meta.add_argument("--out", type=Path, help="write here (default: MODEL.meta.onnx beside it)")
    set_meta.add_argument("--name", dest="model_name", help="model name")
    set_meta.add_argument("--version", dest="model_version", help="model version")
    set_meta.add_argument("--input-size-px", help="WIDTHxHEIGHT, e.g. 224x224")
    set_meta.add_argument("--labels", help="output columns in order, comma-separated, e.g. good,defect")
    set_meta.add_argument("--good-label", help="the pass class")
    set_meta.add_argument("--threshold", type=float, help="defect-score threshold, 0..1")
    set_meta.add_argument("--color-order", choices=["RGB", "BGR", "GRAY"])
    set_meta.add_argument("--layout", choices=["NCHW", "NHWC"])
    set_meta.add_argument(
        "--preprocess-order", choices=["resize_then_convert", "convert_then_resize"],
        help="GRAY models: resize then turn grey (the default for a file without the key) or grey first",
    )
    set_meta.add_argument("--scale", type=float, help="pixel multiplier before mean/std (1/255: 0.00392156862745098)")
    set_meta.add_argument("--mean", help="comma-separated, e.g. 0.485,0.456,0.406")
    set_meta.add_argument("--std", help="comma-separated, e.g. 0.229,0.224,0.225")
    set_meta.add_argument("--output", choices=["logits", "probabilities", "sigmoid"], help="what the output holds")
    set_meta.add_argument("--tile-size-px", type=int, help="tile side for native-resolution tiling (0: off)")
    set_meta.add_argument("--tile-stride-px", type=int, help="tile stride")
    set_meta.add_argument(
        "--probe-image", type=Path, action="append", default=[], metavar="IMAGE|FOLDER",
        help=f"sample image(s) recorded as self-test probes with the scores this model gives them now "
        f"(repeatable; a folder gives its first images; at most {PROBES_MAX})",
    )
    set_meta.set_defaults(func=run_set_meta)


def _io_summary(session: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": i.name, "shape": i.shape, "type": i.type} for i in session.get_inputs()],
        "outputs": [{"name": o.name, "shape": o.shape, "type": o.type} for o in session.get_outputs()],
    }


def run_inspect(args: argparse.Namespace) -> int:
    path: Path = args.model
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    session = open_session(path, ["CPUExecutionProvider"], 1, 1)
    io = _io_summary(session)
    props = dict(session.get_modelmeta().custom_metadata_map)
    problem = None
    try:
        meta = ModelMetadata.from_props(props, str(path))
    except ModelError as error:
        meta, problem = None, str(error)
    if args.json:
        print(json.dumps({**io, "metadata": props, "problem": problem}, indent=2))
    else:
        for kind in ("inputs", "outputs"):
            for entry in io[kind]:
                print(f"{kind[:-1]:6}  {entry['name']}  {entry['shape']}  {entry['type']}")
        for key in sorted(props):
            value = props[key] if len(props[key]) < 80 else props[key][:60] + f"... ({len(props[key])} chars)"
            print(f"{key} = {value}")
        if meta is not None:
            print(f"self-test probes: {len(meta.selftest_probes)}")
    if problem:
        print(f"edge-inspect: {problem}")
        return 1
    return 0


def _updated(base: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    props = dict(base)
    simple = {
        "model_name": args.model_name, "model_version": args.model_version, "labels": args.labels,
        "good_label": args.good_label, "color_order": args.color_order, "layout": args.layout,
        "preprocess_order": args.preprocess_order,
        "mean": args.mean, "std": args.std, "output": args.output,
        "threshold": None if args.threshold is None else repr(args.threshold),
        "scale": None if args.scale is None else repr(args.scale),
        "tile_size_px": None if args.tile_size_px is None else str(args.tile_size_px),
        "tile_stride_px": None if args.tile_stride_px is None else str(args.tile_stride_px),
    }
    for key, value in simple.items():
        if value is not None:
            props[PREFIX + key] = value
    if args.input_size_px:
        try:
            width, height = (int(v) for v in args.input_size_px.lower().split("x"))
        except ValueError:
            raise ModelError(f"--input-size-px {args.input_size_px!r} is not WIDTHxHEIGHT") from None
        props[PREFIX + "input_width_px"], props[PREFIX + "input_height_px"] = str(width), str(height)
    return props


def probe_images(paths: list[Path]) -> list[tuple[Path, np.ndarray]]:
    """The sample images named (files, or a folder's first images), decoded; a bad one is an error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise ImageError(f"--probe-image {path}: no images in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ImageError(f"--probe-image {path} does not exist")
    if len(files) > PROBES_MAX:
        files = files[:PROBES_MAX]
    decoded = []
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise ImageError(f"--probe-image {file} is not a readable image")
        decoded.append((file, image))
    return decoded


def record_probes(classifier: OnnxClassifier, images: list[np.ndarray]) -> tuple[SelfTestProbe, ...]:
    """Each image at the model's input size (PNG: lossless) with the score this model gives it now.

    The scores come from this runtime, so the probes catch later changes (another provider, changed
    preprocessing, a damaged or swapped file), not a model exported wrongly in the first place.
    """
    meta = classifier.metadata
    probes = []
    for image in images:
        small = fit_to_input_bgr(image, meta)  # what the runtime makes of it (grey first if the model says so)
        ok, png = cv2.imencode(".png", small)
        if not ok:
            raise ModelError("could not encode a self-test probe as PNG")
        decoded = cv2.imdecode(png, cv2.IMREAD_COLOR)  # score exactly what a later load decodes
        if decoded is None:
            raise ModelError("could not decode a self-test probe's PNG")
        score = float(classifier.score_crops([decoded])[0])
        probes.append(SelfTestProbe(base64.b64encode(png.tobytes()).decode("ascii"), score))
    return tuple(probes)


def run_set_meta(args: argparse.Namespace) -> int:
    source: Path = args.model
    props = _updated(read_props(source), args)
    meta = ModelMetadata.from_props(props, str(source))  # names any key still missing or wrong
    images = probe_images(args.probe_image)  # before writing anything: a bad image leaves no file behind
    destination = args.out or next_free_name(source, "meta")
    if destination.resolve() == source.resolve():
        raise ModelError("--out must differ from the input model: the original is kept")
    write_metadata(source, meta, destination)
    try:
        # proves the input shape agrees and a run succeeds
        classifier = OnnxClassifier(destination, warmup_runs=1, verify_selftest=not images)
        if images:
            meta = dataclasses.replace(meta, selftest_probes=record_probes(classifier, [i for _, i in images]))
            write_metadata(source, meta, destination)
            OnnxClassifier(destination, warmup_runs=0)  # the probes just recorded pass
    except (ModelError, ImageError):
        destination.unlink(missing_ok=True)
        raise
    print(f"edge-inspect: wrote {destination} ({meta.model_name} {meta.model_version}, threshold {meta.threshold})")
    probes = len(meta.selftest_probes)
    if probes:
        print(f"edge-inspect: {probes} self-test probe(s) recorded: every load re-checks their scores")
    else:
        print(
            "edge-inspect: warning: this model has no self-test probes and will run UNTESTED; "
            "add some with --probe-image SAMPLE.png (e.g. one good and one defective part)"
        )
    return 0
