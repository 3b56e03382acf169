"""What each step of one part costs, in µs, on the real objects, one thread, best of several rounds.

The best of N rounds is what the step costs when nothing else is running; on a shared, loaded machine
it moves far less than a throughput figure does. Run it against two checkouts to compare them:

    .venv/bin/python benchmarks/per_part_costs.py [--model models/default.onnx] [--json F]
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/per_part_costs.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def best_us(step: Callable[[], object], loops: int = 30, rounds: int = 40) -> float:
    """Many short rounds: on a busy machine the best one is likely to have run undisturbed."""
    step()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loops):
            step()
        best = min(best, (time.perf_counter() - start) / loops)
    return round(best * 1e6, 2)


def hand_off_us(make_queue: Callable[[], Any], put: Callable[[Any, int], object],
                get: Callable[[Any], object], items: int = 3000) -> float:
    """A thread hands items to another that sleeps waiting for each, and back (the wake-ups are the cost)."""
    best = float("inf")
    for _ in range(3):
        first, back = make_queue(), make_queue()

        def echo() -> None:
            for _ in range(items):
                put(back, get(first))  # noqa: B023 (the queues of this round)

        thread = threading.Thread(target=echo)
        thread.start()
        start = time.perf_counter()
        for i in range(items):
            put(first, i)
            get(back)
        best = min(best, (time.perf_counter() - start) / (2 * items))
        thread.join()
    return round(best * 1e6, 2)


def main(argv: list[str] | None = None) -> int:
    from edge_inspect import bus
    from edge_inspect.classify import OnnxClassifier
    from edge_inspect.classify.preprocess import scores_from_output, to_tensor
    from edge_inspect.config.loader import PROJECT_ROOT
    from edge_inspect.decision import decide, is_defect
    from edge_inspect.events import PartResult, RegionResult, Verdict
    from edge_inspect.sources.replay import ReplaySource

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "default.onnx")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from edge_inspect.config import load_config

    config = load_config(None)
    source = ReplaySource(config.source)  # type: ignore[arg-type]
    source.open()
    frame = source.read(timeout_s=1.0)
    assert frame is not None
    classifier = OnnxClassifier(args.model)
    meta = classifier.metadata
    costs: dict[str, Any] = {"edge_inspect": str(Path(bus.__file__).parent), "model": str(args.model),
                             "frame_px": list(frame.image.shape)}
    costs["prepare (to_tensor, this model's order)"] = best_us(lambda: classifier.prepare(frame.image))
    if hasattr(meta, "preprocess_order"):
        for order in ("resize_then_convert", "convert_then_resize"):
            other = dataclasses.replace(meta, preprocess_order=order)
            costs[f"to_tensor {order}"] = best_us(lambda other=other: to_tensor([frame.image], other))
    prepared = classifier.prepare(frame.image)
    session, name = classifier._session, classifier._input_name
    costs["model (session.run)"] = best_us(lambda: session.run(None, {name: prepared.tensor}), loops=10)
    costs["infer (run + scores)"] = best_us(lambda: classifier.infer(prepared), loops=10)
    raw = session.run(None, {name: prepared.tensor})[0]
    costs["scores_from_output"] = best_us(lambda: scores_from_output(raw, meta), loops=300)
    scores = classifier.infer(prepared)

    def verdict() -> object:
        regions = tuple(RegionResult(s.region.name, s.region.x_px, s.region.y_px, s.region.width_px,
                                     s.region.height_px, s.defect_score, is_defect(s.defect_score, 0.4),
                                     s.tile_scores) for s in scores)
        return decide(regions, time.monotonic())

    costs["regions + decide"] = best_us(verdict, loops=300)
    result = PartResult(1, "r-1", 1, 0.0, 0.0, Verdict.GOOD, None, False, (), 0.4, "m", "v", 1.0, 0.25, None,
                        image=frame.image)
    costs["PartResult"] = best_us(lambda: dataclasses.replace(result, part_id=2), loops=300)
    fan_out: Any = bus.EventBus()
    subscriptions = [fan_out.subscribe(n, 10_000) for n in ("bench", "defect_log", "web", "metrics")]

    def publish() -> None:
        fan_out.publish(result)
        for subscription in subscriptions:
            subscription.get(timeout_s=0)

    costs["bus publish to 4 consumers (+ their get)"] = best_us(publish, loops=300)
    jobs: queue.Queue[int] = queue.Queue(maxsize=8)
    costs["queue.Queue put + get, no waiter"] = best_us(lambda: (jobs.put_nowait(1), jobs.get(timeout=0.2)),
                                                        loops=300)
    costs["hand-off to a sleeping thread (queue.Queue)"] = hand_off_us(
        lambda: queue.Queue(maxsize=8), lambda q, i: q.put(i), lambda q: q.get(timeout=5.0))
    costs["hand-off to a sleeping thread (bus Subscription)"] = hand_off_us(
        lambda: bus.Subscription("x", 8), lambda q, i: q.offer(i), lambda q: q.get(timeout_s=5.0))
    print(json.dumps(costs, indent=2))
    if args.json:
        args.json.write_text(json.dumps(costs, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
