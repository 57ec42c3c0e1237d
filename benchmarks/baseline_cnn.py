"""A plain-CNN reference baseline: how hard is a data set's trace for a detector with no special start?

    python -m benchmarks.baseline_cnn --data_dir data/blind --seeds 3

A reference, not the product: four 3x3 convolutions with BatchNorm and ReLU (the first at stride 1, then
stride 2), global average pooling and a 2-way linear head (94,618 parameters), trained with AdamW at 1e-3
on random 64 px crops of the train split, class-balanced batches, for a fixed number of steps (~2 minutes
on one CPU core), then scored on the full 200 px centre crop of the test split. Printed per seed: test
ROC-AUC overall and for each AI source against all test reals; then min / median / max.

The split is the recipe's: the manifest is built by `modeling.training.data.prepare_manifest` from the
configuration `scripts/train.py` resolves for `--data_dir DIR --holdout_generators none --num_real 0
--num_ai 0 --seed S` with configs/demo.yaml (its validation and test fractions; the seed also picks the
split, as in training). The difficulty of the outside, blind and sealed sets is set with it, and its own
settings are not tuned on them. Everything goes under --output_dir (a folder per seed with its manifest, and
baseline.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from benchmarks import DEMO_CONFIG
from modeling.config import parse_config
from modeling.images import load_image
from modeling.training.data import prepare_manifest

EVAL_SIZE = 200  # ArtiFact's image side: the test images are scored whole
EVAL_BATCH = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data_dir", default="data/blind", help="An ArtiFact-layout folder.")
    parser.add_argument("--seeds", type=int, default=3, help="Train with seeds 0..N-1.")
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600, help="Training steps (~2 minutes on one CPU core).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fair on a shared machine).")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--crop", type=int, default=64, help="Side of the random training crops.")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="The YAML whose split fractions are used.")
    parser.add_argument("--output_dir", default="outputs/baseline_cnn")


class PlainCNN(nn.Module):
    """Four 3x3 conv + BatchNorm + ReLU layers (stride 1, then 2, 2, 2), global average pool, linear 2-way."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 64, 96)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, cout in enumerate(widths):
            layers += [nn.Conv2d(cin, cout, 3, 1 if i == 0 else 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def split_for_seed(data_dir: str, seed: int, config: str, output_dir: Path) -> pd.DataFrame:
    """The manifest `scripts/train.py --data_dir DIR --holdout_generators none --num_real 0 --num_ai 0
    --seed S` would build (and check), written to output_dir like a run's."""
    output_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        "--config",
        config,
        "--data_dir",
        data_dir,
        "--holdout_generators",
        "none",
        "--num_real",
        "0",
        "--num_ai",
        "0",
        "--seed",
        str(seed),
        "--output_dir",
        str(output_dir),
        "--preparation_workers",
        "1",
    ]
    return prepare_manifest(parse_config(argv), output_dir)


def load_images(root: str, paths: list[str]) -> dict[str, np.ndarray]:
    """Decode every image once, the way training does (`load_image`), as uint8 (H, W, 3)."""
    return {path: np.asarray(load_image(str(Path(root) / path))) for path in paths}


def _to_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) arrays of one size -> a float batch in [-1, 1]."""
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def _random_crop(img: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    return img[y : y + crop, x : x + crop]


def _center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window (the whole image when it is smaller)."""
    h, w = img.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[y : y + size, x : x + size]


def train_model(images: list[np.ndarray], labels: np.ndarray, args: argparse.Namespace, seed: int) -> PlainCNN:
    """Fixed-step AdamW training on random crops; each batch half real, half AI (the set may be unbalanced)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = PlainCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    by_label = [np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)]
    half = args.batch_size // 2
    target = torch.tensor([0] * half + [1] * (args.batch_size - half))
    model.train()
    for _ in range(args.steps):
        picks = np.concatenate([rng.choice(by_label[0], half), rng.choice(by_label[1], args.batch_size - half)])
        batch = _to_batch([_random_crop(images[i], args.crop, rng) for i in picks])
        loss = F.cross_entropy(model(batch), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def score(model: PlainCNN, images: list[np.ndarray]) -> np.ndarray:
    """P(ai) of each image's centre crop, in batches of equal-sized crops."""
    model.eval()
    crops = [_center_crop(img, EVAL_SIZE) for img in images]
    out = np.zeros(len(crops))
    for shape in sorted({c.shape for c in crops}):
        idx = [i for i, c in enumerate(crops) if c.shape == shape]
        for start in range(0, len(idx), EVAL_BATCH):
            part = idx[start : start + EVAL_BATCH]
            out[part] = model(_to_batch([crops[i] for i in part])).softmax(-1)[:, 1].numpy()
    return out


def auc_figures(test: pd.DataFrame, scores: np.ndarray) -> dict[str, Any]:
    """ROC-AUC over the whole test split and for each AI source against all test reals (sklearn)."""
    labels = test["label"].to_numpy()
    real = labels == 0
    per_source = {}
    for source in sorted(test.loc[~real, "source"].unique()):
        keep = real | (test["source"] == source).to_numpy()
        per_source[source] = float(roc_auc_score(labels[keep], scores[keep]))
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "per_source": per_source,
        "n_test_real": int(real.sum()),
        "n_test_ai": int((~real).sum()),
    }


def run_seed(args: argparse.Namespace, seed: int, cache: dict[str, np.ndarray]) -> dict[str, Any]:
    """One seed: its split, training, and the test figures."""
    start = time.time()
    manifest = split_for_seed(args.data_dir, seed, args.config, Path(args.output_dir) / f"seed{seed}")
    missing = [p for p in manifest["path"] if p not in cache]
    cache.update(load_images(args.data_dir, missing))
    train = manifest[manifest["split"] == "train"]
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    model = train_model([cache[p] for p in train["path"]], train["label"].to_numpy(), args, seed)
    result = {"seed": seed, **auc_figures(test, score(model, [cache[p] for p in test["path"]]))}
    result["n_train"], result["wall_s"] = len(train), round(time.time() - start, 1)
    return result


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    cache: dict[str, np.ndarray] = {}  # decoded images, shared by the seeds (their splits differ)
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        result = run_seed(args, seed, cache)
        results.append(result)
        per_source = "  ".join(f"{s} {v:.4f}" for s, v in result["per_source"].items())
        print(
            f"seed {seed}: test ROC-AUC {result['roc_auc']:.4f}  ({per_source})  {result['wall_s']:.0f} s", flush=True
        )
    aucs = [r["roc_auc"] for r in results]
    summary = {"min": min(aucs), "median": statistics.median(aucs), "max": max(aucs)}
    print("min / median / max: " + " / ".join(f"{v:.4f}" for v in summary.values()))
    params = sum(p.numel() for p in PlainCNN().parameters())
    report = {
        "data_dir": args.data_dir,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "crop": args.crop,
        "parameters": params,
        "seeds": results,
        "roc_auc": summary,
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "baseline.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    import logging
    import sys

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
