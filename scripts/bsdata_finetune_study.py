"""Fine-tuning the backbone's last feature stage with the supervised head, on held-out train positions (docs/BSDATA.md).

    python scripts/bsdata_bank_study.py cache /tmp/bsdata_split /tmp/bank-cache    # once
    python scripts/bsdata_finetune_study.py /tmp/bank-cache [EPOCHS] [SEEDS] [RATIO] # 15 epochs, seed 0, 0.1
    python scripts/bsdata_finetune_study.py /tmp/bank-cache 15 0 1.0 --tune-only      # stage 4 at the head's rate

Issue #11 asks the supervised mode to fine-tune the pretrained backbone; the product trains a patch head on
frozen features. This measures whether training the backbone too is worth its cost on this data, before
anything changes in the product. Stage 4 (3 MBConv blocks, 112 channels, stride 16) is the deepest stage the
patch features use; it runs on the cached stage 3 output, so only it and the head are trained (the stages
below it stay frozen: their features are cached). Two rows per seed, the same folds, the same 15 epochs:

- ``head``: the product's recipe (as ``edge_inspect.train.pretrained.HeadStep``: AdamW, one-cycle, random flips,
  class-weighted loss on the worst patch) on frozen stage 2 + 4 features;
- ``tune s4``: the same head, loss, flips and one-cycle schedule, and stage 4's ImageNet weights trained as well
  at RATIO times the head's learning rate (default a tenth; batch-norm statistics kept, as the product keeps
  them). ``--tune-only`` skips the ``head`` row.

Validation: the 11 train positions in 3 folds of whole positions (the bank study's folds); each fold is scored
by a model trained on the other two; figures over the pooled scores. No test image is used.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bsdata_bank_study import load

from edge_inspect.evaluation import auroc, false_reject_at_escape
from edge_inspect.train.backbone import load_backbone
from edge_inspect.train.patch_model import PatchHead, image_logit, patch_features_of
from edge_inspect.train.pretrained import PatchOptions, defect_weight, new_patch_head

BATCH = 16


class Model(nn.Module):
    """Stage 4 (ImageNet weights, trainable or not) on cached stage 3 maps, then the product's patch head."""

    def __init__(self, head: PatchHead, tune: bool) -> None:
        super().__init__()
        backbone = load_backbone()
        ends = backbone.stage_ends
        self.stage4 = nn.Sequential(*copy.deepcopy(list(backbone._blocks[ends[3] + 1 : ends[4] + 1])))
        for parameter in self.stage4.parameters():
            parameter.requires_grad_(tune)
        self.head = head

    def forward(self, s2: torch.Tensor, s3: torch.Tensor) -> torch.Tensor:
        return self.head(patch_features_of(s2, self.stage4(s3)))

    def train(self, mode: bool = True) -> Model:
        super().train(mode)
        self.stage4.eval()  # batch-norm statistics stay ImageNet's
        return self


def fit(s2: torch.Tensor, s3: torch.Tensor, s4: torch.Tensor, y: torch.Tensor, seed: int, epochs: int,
        tune: bool, ratio: float) -> Model:
    torch.manual_seed(seed)
    rng = np.random.default_rng([5, seed])
    lr = PatchOptions(data_dir=Path("."), out_path=Path("."), mode="supervised").learning_rate
    step = max(1, len(s2) // 200)  # new_patch_head's own sample, taken before pooling
    head = new_patch_head(patch_features_of(s2[::step].float(), s4[::step].float()))
    model = Model(head, tune)
    groups = [{"params": list(head.parameters()), "lr": lr}]
    if tune:
        groups.append({"params": list(model.stage4.parameters()), "lr": lr * ratio})
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-2)
    steps = (len(y) + BATCH - 1) // BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, [g["lr"] for g in groups], total_steps=epochs * steps  # type: ignore[misc]
    )
    weight = defect_weight(y)
    cached4 = not tune  # frozen stage 4: its output is the cache, no need to run it
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(y))
        for start in range(0, len(y), BATCH):
            index = order[start : start + BATCH]
            a, b = s2[index].float(), (s4 if cached4 else s3)[index].float()
            if rng.random() < 0.5:
                a, b = a.flip(3), b.flip(3)
            if rng.random() < 0.5:
                a, b = a.flip(2), b.flip(2)
            logits = head(patch_features_of(a, b)) if cached4 else model(a, b)
            loss = F.binary_cross_entropy_with_logits(image_logit(logits), y[index], pos_weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def main(argv: list[str]) -> int:
    torch.set_num_threads(2)
    tune_only = "--tune-only" in argv
    argv = [a for a in argv if a != "--tune-only"]
    folder = Path(argv[0])
    epochs = int(argv[1]) if len(argv) > 1 else 15
    seeds = [int(s) for s in argv[2].split(",")] if len(argv) > 2 else [0]
    ratio = float(argv[3]) if len(argv) > 3 else 0.1
    stages, labels, positions = load(folder, "train")
    s2, s3, s4 = stages["s2"], stages["s3"], stages["s4"]
    order = np.random.default_rng(0).permutation(sorted(set(positions)))
    for seed in seeds:
        for tune in (True,) if tune_only else (False, True):
            name = f"seed {seed}, {f'tune s4 x{ratio:g}' if tune else 'head'}"
            scores = np.zeros(len(labels))
            started = time.monotonic()
            for fold in (order[i::3] for i in range(3)):
                held = np.isin(positions, fold)
                train = np.flatnonzero(~held)
                y = torch.from_numpy(labels[train].astype(np.float32))
                model = fit(s2[train], s3[train], s4[train], y, seed, epochs, tune, ratio)
                scored = np.flatnonzero(held)
                with torch.no_grad():
                    logits = [image_logit(model(s2[part].float(), s3[part].float()) if tune
                                          else model.head(patch_features_of(s2[part].float(), s4[part].float())))
                              for part in (scored[i : i + 32] for i in range(0, len(scored), 32))]
                scores[held] = torch.cat(logits).numpy()
                print(f"{name}, fold {', '.join(map(str, fold))}: AUROC {auroc(scores[held], labels[held]):.4f} "
                      f"({time.monotonic() - started:.0f} s so far)", flush=True)
            print(f"{name}: val AUROC {auroc(scores, labels):.4f}  false rejects at <= 1 % escapes "
                  f"{false_reject_at_escape(scores, labels, 0.01):.3f}  ({time.monotonic() - started:.0f} s)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
