"""Good-only memory-bank variants on BSData's held-out positions, from features cached once (docs/BSDATA.md).

    python scripts/bsdata_bank_study.py cache /tmp/bsdata_split /tmp/bank-cache   # features, ~3 min
    python scripts/bsdata_bank_study.py run /tmp/bank-cache                        # the table in BSDATA.md

Training goods: every second good image of the train split; scored: every test image. Image score: the
largest nearest-neighbour distance of its patches (or the mean of the k largest).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge_inspect.evaluation import auroc
from edge_inspect.train.backbone import load_backbone
from edge_inspect.train.data import load_dataset
from edge_inspect.train.patch_model import PatchFeatures, greedy_coreset
from edge_inspect.train.pretrained import PatchOptions, extract, patch_metadata

FINE, COARSE, ALL = list(range(40)), list(range(40, 152)), list(range(152))


def cache(split: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = patch_metadata(PatchOptions(Path("."), Path("x.onnx"), "good-only"), 624, 256)
    features = PatchFeatures(load_backbone()).eval()
    for name in ("test", "train"):
        data = load_dataset(split / name, "good", meta, require_defects=False)
        index = np.arange(len(data.names)) if name == "test" else np.flatnonzero(~data.is_defect)[::2]
        np.save(out / f"{name}_x.npy", extract(features, data.images[index], meta, print).numpy())
        np.save(out / f"{name}_y.npy", data.is_defect[index])


def score(folder: Path, channels: list[int], bank_size: int, coreset: bool = True, top: int = 1,
          standardise: bool = False, seed: int = 0) -> float:
    train = torch.from_numpy(np.load(folder / "train_x.npy"))
    test, labels = torch.from_numpy(np.load(folder / "test_x.npy")), np.load(folder / "test_y.npy")
    patches = train[:, channels].float().permute(0, 2, 3, 1).reshape(-1, len(channels))
    mean = patches.mean(0) if standardise else torch.zeros(len(channels))
    std = patches.std(0) + 1e-3 if standardise else torch.ones(len(channels))
    patches = (patches - mean) / std
    generator = torch.Generator().manual_seed(seed)
    pool = patches[torch.randperm(len(patches), generator=generator)[: 20 * bank_size]]
    bank = pool[greedy_coreset(pool, bank_size, seed)] if coreset else pool[:bank_size]
    bank_t, bank_sq = bank.t().contiguous(), (bank * bank).sum(1)
    scores = []
    for start in range(0, len(test), 8):
        x = test[start : start + 8][:, channels].float()
        n, c, h, w = x.shape
        f = (x.permute(0, 2, 3, 1).reshape(n, h * w, c) - mean) / std
        distance = ((f * f).sum(2, keepdim=True) - 2 * f @ bank_t + bank_sq).min(2).values.clamp_min(0).sqrt()
        scores.append(distance.topk(top, dim=1).values.mean(1))
    return auroc(torch.cat(scores).numpy(), labels)


def main(argv: list[str]) -> int:
    torch.set_num_threads(2)
    if argv[:1] == ["cache"]:
        cache(Path(argv[1]), Path(argv[2]))
        return 0
    folder = Path(argv[1])
    variants = [
        ("coreset 2048", dict(channels=ALL, bank_size=2048)),
        ("random 2048, seed 0", dict(channels=ALL, bank_size=2048, coreset=False)),
        ("random 2048, seed 1", dict(channels=ALL, bank_size=2048, coreset=False, seed=1)),
        ("random 8192", dict(channels=ALL, bank_size=8192, coreset=False)),
        ("random 16384", dict(channels=ALL, bank_size=16384, coreset=False)),
        ("coreset 2048, stage 2 only", dict(channels=FINE, bank_size=2048)),
        ("coreset 2048, stage 4 only", dict(channels=COARSE, bank_size=2048)),
        ("coreset 2048, standardised", dict(channels=ALL, bank_size=2048, standardise=True)),
        ("random 2048, mean of 10 worst", dict(channels=ALL, bank_size=2048, coreset=False, top=10)),
    ]
    for name, kwargs in variants:
        started = time.monotonic()
        print(f"{name}: test AUROC {score(folder, **kwargs):.4f} ({time.monotonic() - started:.0f} s)", flush=True)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
