"""Whole images at native resolution: one center crop vs several crops spread over a large image.

    python scripts/benchmark.py multicrop --model outputs/demo                 # 1024 px demo-made images
    python scripts/benchmark.py multicrop --model outputs/demo --crops 1 4 9 16 --size 1280

Images at least 1000 px on the short side, real and AI made the way the demo makes them (the same
procedural camera and generator decoders, `modeling.data.demo.make_large_image`) but at full size
with no ArtiFact crop, are written once as JPEG q95 and scored by `Detector` with each --crops
setting, in alternating rounds. Printed per setting: ROC-AUC with the seen generator and with the
held-out one (each against the same real images), images/s end to end, and the ratio to one crop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from modeling.data.demo import AI_SOURCES, REAL_SOURCES, large_image_bytes
from modeling.inference.predictor import Detector
from modeling.metrics import roc_auc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="outputs/demo", help="A model folder trained on the demo data.")
    parser.add_argument("--crops", type=int, nargs="+", default=[1, 4, 9, 16])
    parser.add_argument("--size", type=int, default=1024, help="Side of the square test images (>= 1000).")
    parser.add_argument("--per_source", type=int, default=30, help="Images per demo source (4 sources).")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"))
    parser.add_argument("--rounds", type=int, default=2, help="Timing passes per setting; the fastest is kept.")
    parser.add_argument("--work_dir", help="Keep the images here (default: a temporary folder).")


def write_images(folder: Path, size: int, per_source: int) -> dict[str, list[str]]:
    """source -> JPEG paths of full-size demo-made images (real camera or generator, no ArtiFact crop)."""
    paths: dict[str, list[str]] = {}
    for source in REAL_SOURCES + AI_SOURCES:
        (folder / source).mkdir(parents=True, exist_ok=True)
        paths[source] = []
        for i in range(per_source):
            path = folder / source / f"img{i:04d}.jpg"
            if not path.is_file():
                path.write_bytes(large_image_bytes(source, i, size=size, seed=7))
            paths[source].append(str(path))
    return paths


def score(detector: Detector, paths: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    scores = np.array([row.score_ai for row in detector.predict(paths)], dtype=np.float64)
    return scores, time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    if args.size < 1000:
        raise SystemExit("--size must be at least 1000: the point is large images")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.work_dir or tmp)
        by_source = write_images(folder, args.size, args.per_source)
        real = [p for s in REAL_SOURCES for p in by_source[s]]
        seen, unseen = by_source[AI_SOURCES[0]], by_source[AI_SOURCES[1]]
        paths = real + seen + unseen
        detectors = {n: Detector.from_pretrained(args.model, backend=args.backend, crops=n) for n in args.crops}
        times = {n: float("inf") for n in args.crops}
        results: dict[int, np.ndarray] = {}
        for _ in range(args.rounds):  # alternate settings so machine load hits all of them alike
            for n, detector in detectors.items():
                results[n], seconds = score(detector, paths)
                times[n] = min(times[n], seconds)
    labels = np.array([0] * len(real) + [1] * (len(seen) + len(unseen)))
    n_real, n_seen = len(real), len(seen)
    print(f"{args.model}: {len(paths)} images of {args.size}x{args.size} ({len(real)} real, {n_seen} seen-generator "
          f"{AI_SOURCES[0]}, {len(unseen)} held-out {AI_SOURCES[1]}); backend {detectors[args.crops[0]].backend_name}")
    print(f"{'crops':>5} {'ROC-AUC seen':>13} {'ROC-AUC unseen':>15} {'images/s':>9} {'vs 1 crop':>10}")
    base = times.get(1)
    for n in args.crops:
        s = results[n]
        auc_seen = roc_auc(labels[: n_real + n_seen], s[: n_real + n_seen])
        auc_unseen = roc_auc(np.r_[labels[:n_real], labels[n_real + n_seen :]], np.r_[s[:n_real], s[n_real + n_seen :]])
        speed = len(paths) / times[n]
        ratio = f"{base / times[n]:.2f}x" if base else "-"
        print(f"{n:>5} {auc_seen:>13.4f} {auc_unseen:>15.4f} {speed:>9.2f} {ratio:>10}")
    return 0
