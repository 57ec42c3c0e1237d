"""Native-resolution crop vs resize: which preprocessing keeps the generator trace (demo data).

    python scripts/benchmark.py preprocessing --model outputs/demo

Scores the same images through the model twice, once with the "crop" processor (native pixels,
center crop) and once with the "resize" processor (short side resized to the model's input), on
(a) ArtiFact-sized 200 px test images and (b) 400 px images straight from the demo camera and
generators, and prints ROC-AUC and accuracy side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoModelForImageClassification

from modeling.data.demo import AI_SOURCES, REAL_SOURCES, make_large_image
from modeling.data.manifest import load_manifest
from modeling.images import load_image
from modeling.labels import AI_LABEL_ID
from modeling.metrics import detection_metrics
from modeling.processing import build_image_processor, processor_crop_size
from modeling.run_folder import MANIFEST


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="outputs/demo", help="a trained model folder (with manifest.csv)")
    parser.add_argument("--data_dir", default="data/demo", help="the data the manifest refers to")
    parser.add_argument("--num_large", type=int, default=60, help="400 px images per source")


@torch.no_grad()
def _scores(model, processor, images, batch_size: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        pixels = processor(images[i : i + batch_size], return_tensors="pt")["pixel_values"]
        out.append(model(pixel_values=pixels).logits.softmax(-1)[:, AI_LABEL_ID])
    return torch.cat(out).numpy()


def _row(name: str, labels: np.ndarray, scores: np.ndarray) -> str:
    figures = detection_metrics(labels, scores, 0.5)
    auc, acc = figures["roc_auc"], figures["accuracy"]
    return f"{name:<34} {auc:>8.4f} {acc:>9.4f}"


def run(args: argparse.Namespace) -> int:
    model = AutoModelForImageClassification.from_pretrained(args.model, use_safetensors=True).eval()
    saved = AutoImageProcessor.from_pretrained(args.model)
    side = processor_crop_size(saved)[0]
    kinds = {k: build_image_processor(k, side, saved.image_mean, saved.image_std) for k in ("crop", "resize")}

    manifest = load_manifest(Path(args.model) / MANIFEST)
    test = manifest[(manifest["split"] == "test")]
    small = [load_image(Path(args.data_dir) / p) for p in test["path"]]
    small_labels = test["label"].to_numpy()
    large, large_labels = [], []
    for source in REAL_SOURCES + AI_SOURCES:
        for i in range(args.num_large):
            large.append(load_image(make_large_image(source, i)))
            large_labels.append(int(source in AI_SOURCES))
    large_labels = np.asarray(large_labels)

    print(f"model {args.model} (input {side}px); test split n={len(small)}, 400px set n={len(large)}")
    print(f"{'set / preprocessing':<34} {'ROC-AUC':>8} {'accuracy':>9}")
    for kind, processor in kinds.items():
        print(_row(f"200px test split / {kind}", small_labels, _scores(model, processor, small)))
    for kind, processor in kinds.items():
        print(_row(f"400px camera+generator / {kind}", large_labels, _scores(model, processor, large)))
    return 0
