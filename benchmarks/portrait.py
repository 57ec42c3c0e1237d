"""Portrait-mode blur at other lens radii: how a trained model's false accusations grow with the blur.

    python scripts/benchmark.py portrait --model outputs/demo
    python scripts/benchmark.py portrait --model outputs/demo --scales 0.33 1 2

Every real test image of the run's own manifest goes through `portrait_blur` with its draws keyed as the stress
test keys them, the drawn radius multiplied by each --scales value (0.33 is what a 64 px training window of a
200 px photo got when the blur was drawn for the window), and is scored by `Detector`. Printed per scale: the reals
called ai at the stored threshold and at the point that calls 1% of the plain reals ai, and the median P(ai).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from modeling.augment.camera import keyed_rng, portrait_blur
from modeling.data.manifest import load_manifest
from modeling.evaluation.stress import point_at_fpr
from modeling.inference.predictor import Detector
from modeling.labels import AI_LABEL_ID, LABEL2ID
from modeling.run_folder import MANIFEST, RunFolder

KEY_SEED = 7  # the draws' key: the same subject, depth and radius at every scale


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="outputs/demo", help="A run folder with its manifest.csv.")
    parser.add_argument("--data_dir", help="The images' folder (default: the run's own data_dir).")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.33, 1.0, 2.0])


def scores(detector: Detector, images: list[Image.Image]) -> np.ndarray:
    return np.array([row.score_ai for row in detector.predict_images(images)], dtype=float)


def run(args: argparse.Namespace) -> int:
    run_folder = RunFolder(args.model)
    data_dir = Path(args.data_dir or run_folder.data_dir() or "")
    manifest = load_manifest(run_folder / MANIFEST)
    paths = manifest[(manifest["split"] == "test") & (manifest["label"] != AI_LABEL_ID)]["path"]
    reals = [Image.open(data_dir / path).convert("RGB") for path in paths]
    detector = Detector.from_pretrained(args.model, backend="torch", provenance=False)
    plain = scores(detector, reals)
    point = point_at_fpr(pd.DataFrame({"label": LABEL2ID["real"], "score_ai": plain}))  # the stress test's 1% point
    print(f"{len(reals)} real test images; stored threshold {detector.threshold:.3f}, 1% point {point:.3f}")
    print(f"{'radius scale':>12} {'called ai':>10} {'at 1% point':>12} {'median P(ai)':>13}")
    print(f"{'plain':>12} {np.mean(plain >= detector.threshold):>10.3f} {np.mean(plain >= point):>12.3f} "
          f"{np.median(plain):>13.4f}")
    for scale in args.scales:
        blurred = [portrait_blur(image, keyed_rng(image, "portrait_blur", KEY_SEED), radius_scale=scale)
                   for image in reals]
        s = scores(detector, blurred)
        print(f"{scale:>12g} {np.mean(s >= detector.threshold):>10.3f} {np.mean(s >= point):>12.3f} "
              f"{np.median(s):>13.4f}")
    return 0
