"""Good-only by distillation on BSData: a student that predicts deep features from shallow ones, against the
product's memory bank, on held-out train positions (docs/BSDATA.md).

    python scripts/bsdata_bank_study.py cache /tmp/bsdata_split /tmp/bank-cache    # once
    python scripts/bsdata_student_study.py /tmp/bank-cache [EPOCHS] [SEED]          # default 30 epochs, seed 0

Issue #11 lets good-only be a memory bank (the product) or student-teacher distillation, "your call, measured".
This measures the second on the bank study's protocol, with the product's student (``fit_student``, what
``edge-inspect train --mode good-only`` now ships). Teacher: the frozen EfficientNet-Lite0 stage 4 map (112
channels, stride 16), each channel standardised by the training goods' mean and spread. Student: a small network
from scratch (three 3 x 3 convolutions, 128 wide, one of them stride 2, then a 1 x 1 to 112 channels, ~0.36 M
weights) that sees only the stage 2 map (40 channels, stride 8, standardised the same way) and learns, on goods
only, to reproduce stage 4: what stages 3 and 4 make of a good surface. Where the input is unlike any good, the
student's guess departs from the teacher; a patch's anomaly is the squared error summed over channels ("mse") or
one minus the cosine of the two vectors ("cos", the product's), an image's score its largest patch ("max") or the
mean of its 10 largest ("top10", the product's at this input size). Trained with AdamW (learning rate 1e-3,
weight decay 1e-4, one-cycle), batch 8, random horizontal and vertical flips of input and target together, a
fixed number of epochs (nothing chosen on the scored images).

Validation: the bank study's 3 folds of whole train positions; each fold's images (good and pitting) are scored by
a student trained on every good of the other folds' positions, AUROC over the folds' scores pooled. The product's
bank is scored on the same folds from the same goods (every good, not every second as in the bank study's
table). Test: trained on every train good, every test image scored; reported, not chosen on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bsdata_bank_study import Features, load, score

from edge_inspect.evaluation import auroc, false_reject_at_escape
from edge_inspect.train.backbone import load_backbone
from edge_inspect.train.pretrained import PatchOptions, fit_student


class Distilled:
    """The product's student (``edge_inspect.train.pretrained.fit_student``) trained on goods ``fit_idx``;
    scores the cached maps four ways."""

    def __init__(self, stages: Features, fit_idx: np.ndarray, epochs: int, seed: int) -> None:
        options = PatchOptions(Path("."), Path("."), "good-only", seed=seed, epochs=epochs)
        self.model = fit_student(BACKBONE, stages["s2"], stages["s4"], fit_idx, options, _epochs_only)

    def scores(self, stages: Features, idx: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {}
        with torch.no_grad():
            for start in range(0, len(idx), 16):
                rows = idx[start : start + 16]
                guess = self.model.guess(stages["s2"][rows].float())
                target = self.model.target(stages["s4"][rows].float())
                maps = {
                    "mse": ((guess - target) ** 2).sum(1).flatten(1),
                    "cos": (1 - F.cosine_similarity(guess, target, dim=1)).flatten(1),  # the product's
                }
                for kind, flat in maps.items():
                    out.setdefault(f"{kind} max", []).append(flat.max(1).values.numpy())
                    out.setdefault(f"{kind} top10", []).append(flat.topk(10, 1).values.mean(1).numpy())
        return {key: np.concatenate(values) for key, values in out.items()}


def _epochs_only(line: str) -> None:
    if " 50 % " in line or " 100 % " in line:
        print(f"  {line}", flush=True)


BACKBONE = load_backbone()


def _report(name: str, scores: dict[str, np.ndarray], y: np.ndarray) -> None:
    print(f"{name}: " + "  ".join(
        f"{key} {auroc(s, y):.3f} (fr@1%esc {100 * false_reject_at_escape(s, y, 0.01):.1f} %)"
        for key, s in scores.items()), flush=True)


def main(argv: list[str]) -> int:
    torch.set_num_threads(2)
    folder = Path(argv[0])
    epochs = int(argv[1]) if len(argv) > 1 else 30
    seed = int(argv[2]) if len(argv) > 2 else 0
    train, y_train, p_train = load(folder, "train")
    test, y_test, _ = load(folder, "test")
    positions = np.random.default_rng(0).permutation(sorted(set(p_train)))
    folds = [positions[i::3] for i in range(3)]

    started = time.monotonic()
    student_val: dict[str, np.ndarray] = {}
    bank_val: dict[str, np.ndarray] = {}
    for number, fold in enumerate(folds, 1):
        held = np.isin(p_train, fold)
        goods = np.flatnonzero(~held & ~y_train)
        print(f"fold {number}: {len(goods)} goods of {len(set(p_train[~held]))} positions, "
              f"{int(held.sum())} images scored", flush=True)
        distilled = Distilled(train, goods, epochs, seed)
        for key, s in distilled.scores(train, np.flatnonzero(held)).items():
            student_val.setdefault(key, np.zeros(len(y_train)))[held] = s
        for key, s in score(train, goods, train, np.flatnonzero(held), {}).items():
            if key in ("max", "top10"):
                bank_val.setdefault(key, np.zeros(len(y_train)))[held] = s
        fold_y = y_train[held]
        print(f"  fold {number}: student mse max {auroc(student_val['mse max'][held], fold_y):.3f}, "
              f"bank max {auroc(bank_val['max'][held], fold_y):.3f}", flush=True)
    print(f"validation ({time.monotonic() - started:.0f} s, {epochs} epochs, seed {seed}):")
    _report("  student", student_val, y_train)
    _report("  bank (every good)", bank_val, y_train)

    started = time.monotonic()
    distilled = Distilled(train, np.flatnonzero(~y_train), epochs, seed)
    test_scores = distilled.scores(test, np.arange(len(y_test)))
    bank_test = {k: v for k, v in score(train, np.flatnonzero(~y_train), test, np.arange(len(y_test)), {}).items()
                 if k in ("max", "top10")}
    print(f"test ({time.monotonic() - started:.0f} s):")
    _report("  student", test_scores, y_test)
    _report("  bank (every good)", bank_test, y_test)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
