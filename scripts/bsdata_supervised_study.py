"""Supervised patch head on BSData: one seed vs the mean of three, on held-out train positions (docs/BSDATA.md).

    python scripts/bsdata_bank_study.py cache /tmp/bsdata_split /tmp/bank-cache    # once
    python scripts/bsdata_supervised_study.py /tmp/bank-cache [EPOCHS]              # default 15 epochs

The product's head (edge_inspect.train.patch_model.PatchHead), loss, optimiser, one-cycle schedule and flips,
trained for a fixed number of epochs on the train positions of 2 of 3 folds (whole positions, the bank study's
folds) and scored on the third; figures over all folds' scores pooled. No test image is used.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bsdata_bank_study import features, load

from edge_inspect.evaluation import auroc, false_reject_at_escape
from edge_inspect.train.patch_model import PatchHead, image_logit

SEEDS = (0, 1, 2)


def train_head(x_all: torch.Tensor, y: torch.Tensor, seed: int, epochs: int) -> PatchHead:
    torch.manual_seed(seed)
    rng = np.random.default_rng([5, seed])
    head = PatchHead()
    sample = x_all[:: max(1, len(x_all) // 200)].float()
    head.feature_mean.copy_(sample.mean((0, 2, 3), keepdim=True))
    head.feature_std.copy_(sample.std((0, 2, 3), keepdim=True) + 1e-3)
    positive_weight = torch.tensor(float((y == 0).sum() / y.sum()))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
    steps = (len(x_all) + 15) // 16
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=epochs * steps)
    for _ in range(epochs):
        head.train()
        order = rng.permutation(len(x_all))
        for start in range(0, len(x_all), 16):
            batch = order[start : start + 16]
            x = x_all[batch].float()
            if rng.random() < 0.5:
                x = x.flip(3)
            if rng.random() < 0.5:
                x = x.flip(2)
            loss = F.binary_cross_entropy_with_logits(image_logit(head(x)), y[batch], pos_weight=positive_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return head.eval()


def main(argv: list[str]) -> int:
    torch.set_num_threads(2)
    folder, epochs = Path(argv[0]), int(argv[1]) if len(argv) > 1 else 15
    stages, labels, positions = load(folder, "train")
    cfg: dict[str, object] = {}
    every = torch.cat([features(stages, np.arange(i, min(i + 32, len(labels))), cfg).half()
                       for i in range(0, len(labels), 32)])
    order = np.random.default_rng(0).permutation(sorted(set(positions)))
    logits = np.zeros((len(SEEDS), len(labels)))
    for fold in (order[i::3] for i in range(3)):
        started = time.monotonic()
        held = np.isin(positions, fold)
        train = np.flatnonzero(~held)
        y = torch.from_numpy(labels[train].astype(np.float32))
        for k, seed in enumerate(SEEDS):
            head = train_head(every[train], y, seed, epochs)
            with torch.no_grad():
                scored = every[np.flatnonzero(held)]
                logits[k, held] = torch.cat([image_logit(head(scored[i : i + 32].float()))
                                             for i in range(0, len(scored), 32)]).numpy()
        print(f"fold {', '.join(map(str, fold))}: {time.monotonic() - started:.0f} s", flush=True)
    rows = [(f"seed {seed}", logits[k]) for k, seed in enumerate(SEEDS)] + [("mean of 3 seeds", logits.mean(0))]
    for name, score in rows:
        print(f"{name}: val AUROC {auroc(score, labels):.4f}  false rejects at <= 1 % escapes "
              f"{false_reject_at_escape(score, labels, 0.01):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
