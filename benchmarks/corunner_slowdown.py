"""How much the model slows when the other core works: the bench's ceiling runs it with that core idle.

Pins the bare ``session.run`` loop to CPU 0 and, in a second process pinned to CPU 1, runs in turn:
nothing; the appliance's preprocessing (``to_tensor``) of a sample frame; preprocessing plus a JPEG
encode of the frame (what the stream and the QA log add). Prints the model's µs per inference beside
each (median of 5 rounds of 300). Needs 2 CPUs; Linux only (``sched_setaffinity``).

    .venv/bin/python benchmarks/corunner_slowdown.py [--model models/default.onnx]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from edge_inspect.classify import OnnxClassifier, read_metadata
from edge_inspect.classify.preprocess import to_tensor

ROOT = Path(__file__).resolve().parents[1]


def sample_frame() -> np.ndarray:
    frame = cv2.imread(str(sorted((ROOT / "sample_images").glob("*.jpg"))[0]))
    assert frame is not None, "sample_images/ holds no readable JPEG"
    return frame


def corunner(kind: str, model: Path, stop: multiprocessing.synchronize.Event) -> None:
    os.sched_setaffinity(0, {1})
    cv2.setNumThreads(1)
    meta = read_metadata(model)
    frame = sample_frame()
    while not stop.is_set():
        to_tensor([frame], meta)
        if kind == "prepare + JPEG":
            cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])


def model_us(classifier: OnnxClassifier, tensor: np.ndarray) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(300):
            classifier.run_tensor(tensor)
        rounds.append((time.perf_counter() - start) / 300 * 1e6)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default.onnx")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    classifier = OnnxClassifier(args.model)
    frame = sample_frame()
    tensor = to_tensor([frame], classifier.metadata)
    model_us(classifier, tensor)  # warm
    alone = model_us(classifier, tensor)
    print(f"model alone on CPU 0: {alone:.0f} µs")
    for kind in ("prepare", "prepare + JPEG"):
        stop = multiprocessing.Event()
        worker = multiprocessing.Process(target=corunner, args=(kind, args.model, stop), daemon=True)
        worker.start()
        time.sleep(1.0)  # its imports and session done, the loop running
        beside = model_us(classifier, tensor)
        stop.set()
        worker.join(10)
        print(f"model beside {kind} on CPU 1: {beside:.0f} µs ({beside / alone:.2f} x alone)")
    print(f"model alone again: {model_us(classifier, tensor):.0f} µs")


if __name__ == "__main__":
    main()
