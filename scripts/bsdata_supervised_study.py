"""Supervised patch head on BSData: one seed vs the mean of three, on held-out train positions (docs/BSDATA.md).

    python scripts/bsdata_bank_study.py cache /tmp/bsdata_split /tmp/bank-cache    # once
    python scripts/bsdata_supervised_study.py /tmp/bank-cache [EPOCHS]              # default 15 epochs
    python scripts/bsdata_supervised_study.py /tmp/bank-cache 15 --half-positions   # fewer training positions

The product's head (edge_inspect.train.patch_model.PatchHead), loss, optimiser, one-cycle schedule and flips,
trained for a fixed number of epochs on the train positions of 2 of 3 folds (whole positions, the bank study's
folds) and scored on the third; figures over all folds' scores pooled. No test image is used. With
``--half-positions`` each fold's heads train on every image of only half of the other folds' positions: what
coverage of positions is worth (the case for refitting on every position once the epoch is chosen).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bsdata_bank_study import features, load

from edge_inspect.evaluation import auroc, false_reject_at_escape
from edge_inspect.train.patch_model import PatchHead, image_logit
from edge_inspect.train.pretrained import HeadStep, PatchOptions, defect_weight, new_patch_head

SEEDS = (0, 1, 2)


def train_head(x_all: torch.Tensor, y: torch.Tensor, seed: int, epochs: int) -> PatchHead:
    """The product's supervised step (``edge_inspect.train.pretrained``) for a fixed number of epochs."""
    torch.manual_seed(seed)
    rng = np.random.default_rng([5, seed])
    defaults = PatchOptions(data_dir=Path("."), out_path=Path("."), mode="supervised")
    head = new_patch_head(x_all)
    positive_weight = defect_weight(y)
    step = HeadStep(head, defaults.learning_rate, defaults.batch_size, epochs, len(x_all))
    for _ in range(epochs):
        step.epoch(x_all, y, positive_weight, rng)
    return head.eval()


def main(argv: list[str]) -> int:
    torch.set_num_threads(2)
    half = "--half-positions" in argv
    argv = [a for a in argv if a != "--half-positions"]
    folder, epochs = Path(argv[0]), int(argv[1]) if len(argv) > 1 else 15
    stages, labels, positions = load(folder, "train")
    cfg: dict[str, object] = {}
    every = torch.cat([features(stages, np.arange(i, min(i + 32, len(labels))), cfg).half()
                       for i in range(0, len(labels), 32)])
    order = np.random.default_rng(0).permutation(sorted(set(positions)))
    logits = np.zeros((len(SEEDS), len(labels)))
    patch_mean = np.zeros(len(labels))  # the heads' patch logits averaged, then the worst patch: one graph
    for fold in (order[i::3] for i in range(3)):
        started = time.monotonic()
        held = np.isin(positions, fold)
        train = np.flatnonzero(~held)
        if half:
            others = sorted(set(positions[train]))
            train = np.flatnonzero(np.isin(positions, others[: max(1, len(others) // 2)]))
        y = torch.from_numpy(labels[train].astype(np.float32))
        scored = every[np.flatnonzero(held)]
        patch_sum: torch.Tensor | None = None
        for k, seed in enumerate(SEEDS):
            head = train_head(every[train], y, seed, epochs)
            with torch.no_grad():
                maps = torch.cat([head(scored[i : i + 32].float()) for i in range(0, len(scored), 32)])
            logits[k, held] = image_logit(maps).numpy()
            patch_sum = maps if patch_sum is None else patch_sum + maps
        assert patch_sum is not None
        patch_mean[held] = image_logit(patch_sum / len(SEEDS)).numpy()
        print(f"fold {', '.join(map(str, fold))}: {time.monotonic() - started:.0f} s", flush=True)
    rows = [(f"seed {seed}", logits[k]) for k, seed in enumerate(SEEDS)] + [("mean of 3 seeds", logits.mean(0)),
                                                                         ("mean of 3 patch maps", patch_mean)]
    for name, score in rows:
        print(f"{name}: val AUROC {auroc(score, labels):.4f}  false rejects at <= 1 % escapes "
              f"{false_reject_at_escape(score, labels, 0.01):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
