"""Does a batch of parts cost less per part than one part per ``session.run``? (One thread, random input.)

    .venv/bin/python benchmarks/batch_cost.py [models/default.onnx]

Best of 7 rounds of 0.4 s per batch size; a model with a fixed batch dimension is run at batch 1 only.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import onnxruntime as ort


def main(path: str = "models/default.onnx") -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in model_input.shape]
    sizes = (1, 2, 3, 4, 6, 8) if not isinstance(model_input.shape[0], int) else (1,)
    rng = np.random.default_rng(0)
    for size in sizes:
        batch = rng.random((size, *shape[1:]), dtype=np.float32)
        for _ in range(20):
            session.run(None, {model_input.name: batch})
        best_s = float("inf")
        for _ in range(7):
            start, runs = time.perf_counter(), 0
            while time.perf_counter() - start < 0.4:
                session.run(None, {model_input.name: batch})
                runs += 1
            best_s = min(best_s, (time.perf_counter() - start) / runs)
        print(f"batch {size}: {best_s * 1e3:.3f} ms per run, {best_s * 1e3 / size:.3f} ms per part")


if __name__ == "__main__":
    main(*sys.argv[1:2])
