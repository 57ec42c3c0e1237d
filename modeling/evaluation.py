"""Honest evaluation of a saved model folder: batched, distributed-safe, every figure recomputable.

    python scripts/evaluate.py --model outputs/demo --data_dir data/demo [--robustness]

Writes to the output folder:
- `predictions.csv`: one row per scored image (path, source, category, heldout, label, score_ai,
  predicted); every number in `metrics.json` can be recomputed from it with scikit-learn.
- `metrics.json`: accuracy, precision, recall, F1 and false-positive rate at the model's decision
  threshold, ROC-AUC, average precision, TPR at 1% and 5% FPR, ECE, Brier score and counts, for
  "all" rows and, when the manifest has held-out generators, "seen" and "unseen" apart.
- `per_source.csv`: per AI source its detection rate (recall), per real source its false-positive rate.
- plots (PNG): ROC curve, reliability diagram, confusion matrix, per-source bars.
- with robustness: `robustness.csv`, `robustness_predictions.csv`, `robustness.png`.

Pixels go through the model folder's saved image processor and the package's `load_image` via
`BatchTransform`, exactly as in training. Under `accelerate launch` each process scores a shard; the
gathered row indices say which image each score belongs to.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from accelerate import Accelerator
from PIL import Image, ImageFilter
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModelForImageClassification

from modeling import calibration, plots
from modeling.data import DataError, load_manifest, read_index
from modeling.labels import AI_LABEL_ID, ID2LABEL
from modeling.processing import BatchTransform, processor_crop_size

logger = logging.getLogger(__name__)

# names of files that training writes into a model folder (modeling/training.py)
MODEL_MANIFEST = "manifest.csv"
TRAINING_CONFIG = "training_config.yaml"
DEFAULT_EVAL_DIR = "eval"
EVAL_COLUMNS = ["path", "label", "source", "category", "heldout"]
FPR_TARGETS = {"tpr_at_fpr_1pct": 0.01, "tpr_at_fpr_5pct": 0.05}

Degradation = Callable[[Image.Image], Image.Image]


# --------------------------------------------------------------------------- which images


@dataclass
class EvalData:
    """Rows to score (columns EVAL_COLUMNS, paths relative to root) and where they came from."""

    frame: pd.DataFrame
    root: Path
    description: str


def training_data_dir(model_dir: str | Path) -> str | None:
    """The data_dir recorded in the model folder's training_config.yaml, if any."""
    path = Path(model_dir) / TRAINING_CONFIG
    if not path.is_file():
        return None
    return (yaml.safe_load(path.read_text()) or {}).get("data_dir")


def resolve_eval_data(
    model_dir: str | Path,
    data_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    split: str = "test",
    use_model_manifest: bool = True,
    layout: str = "auto",
) -> EvalData:
    """Pick the images: an explicit manifest, else the model's own manifest, else every image in data_dir.

    The model's manifest (written by training) is the default so that `--split test` means exactly
    the images held out of that training run. `use_model_manifest=False` indexes data_dir instead
    (ArtiFact layout or real/ + ai/ folders) and scores all of it.
    """
    model_dir = Path(model_dir)
    if manifest is None and use_model_manifest and (model_dir / MODEL_MANIFEST).is_file():
        manifest = model_dir / MODEL_MANIFEST
    if data_dir is None:
        data_dir = training_data_dir(model_dir)
        if data_dir is None:
            raise DataError(f"No --data_dir given and {model_dir / TRAINING_CONFIG} records none; pass --data_dir.")
    root = Path(data_dir)
    if manifest is None:
        frame = read_index(root, layout).assign(heldout=False)
        return EvalData(frame[EVAL_COLUMNS].reset_index(drop=True), root, f"every image under {root}")
    frame = load_manifest(manifest)
    if split != "all":
        present = sorted(frame["split"].unique())
        frame = frame[frame["split"] == split]
        if frame.empty:
            raise DataError(f"Manifest {str(manifest)!r} has no {split!r} rows (splits present: {present}).")
    first = root / frame["path"].iloc[0]
    if not first.is_file():
        raise DataError(
            f"{str(first)!r} from manifest {str(manifest)!r} does not exist: is --data_dir the data the model was "
            "trained on? To score every image of another folder instead, pass --no_manifest."
        )
    description = f"manifest {manifest}, split {split}, images under {root}"
    return EvalData(frame[EVAL_COLUMNS].reset_index(drop=True), root, description)


# --------------------------------------------------------------------------- scoring


class EvalImages(Dataset):
    """Row i -> pixel_values, index, valid. An unreadable image gives zeros and valid=0 rather than
    being dropped, so every batch keeps its size and `gather_for_metrics` trims padding correctly."""

    def __init__(self, paths: Sequence[str], processor: Any, degrade: Degradation | None = None):
        self.paths = list(paths)
        self.transform = BatchTransform(processor, degrade)  # load_image -> degrade -> processor
        self.shape = (3, *processor_crop_size(processor))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pixels = self.transform({"image": [self.paths[i]]})["pixel_values"][0]
        valid = pixels is not None
        return {"pixel_values": pixels if valid else torch.zeros(self.shape), "index": i, "valid": int(valid)}


def predict_logits(
    model: torch.nn.Module,
    processor: Any,
    paths: Sequence[str],
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    degrade: Degradation | None = None,
    accelerator: Accelerator | None = None,
    desc: str = "scoring",
) -> tuple[np.ndarray, np.ndarray]:
    """(N, num_labels) logits in the order of `paths`, and a bool mask of the images that decoded.

    Every process gets the complete result (gathered), so any of them can write the files.
    """
    accelerator = accelerator or Accelerator()
    loader = DataLoader(EvalImages(paths, processor, degrade), batch_size=batch_size, num_workers=num_workers)
    loader = accelerator.prepare(loader)  # shards across processes; moves batches to the device
    model = model.to(accelerator.device).eval()
    logits = np.full((len(paths), model.config.num_labels), np.nan, dtype=np.float32)
    valid = np.zeros(len(paths), dtype=bool)
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process):
        with torch.inference_mode():
            out = model(pixel_values=batch["pixel_values"]).logits.float()
        # gather_for_metrics drops the samples the sampler repeated to even out the last batch
        index, out, ok = accelerator.gather_for_metrics((batch["index"], out, batch["valid"]))
        index = index.cpu().numpy()
        logits[index] = out.cpu().numpy()
        valid[index] = ok.cpu().numpy().astype(bool)
    return logits, valid


# --------------------------------------------------------------------------- metrics


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Highest detection rate among thresholds whose false-positive rate is at most max_fpr."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def detection_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | int | None]:
    """Every figure of one section; None where a metric is undefined (e.g. ROC-AUC with one class)."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[0, 1]).ravel())
    n_real, n_ai = int((labels == 0).sum()), int((labels == 1).sum())
    both = n_real > 0 and n_ai > 0
    out: dict[str, float | int | None] = {
        "n_images": len(labels),
        "n_real": n_real,
        "n_ai": n_ai,
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=np.nan)),
        "recall": float(recall_score(labels, predicted, zero_division=np.nan)),
        "f1": float(f1_score(labels, predicted, zero_division=np.nan)),
        "false_positive_rate": _rate(fp, n_real),
        "roc_auc": float(roc_auc_score(labels, scores)) if both else None,
        "average_precision": float(average_precision_score(labels, scores)) if both else None,
        "ece": calibration.expected_calibration_error(labels, scores),
        "brier": calibration.brier_score(labels, scores),
    }
    for key, max_fpr in FPR_TARGETS.items():
        out[key] = tpr_at_fpr(labels, scores, max_fpr) if both else None
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def section_masks(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """"all", and with held-out generators: "seen" (heldout False) and "unseen" (held-out rows scored
    against the same real images as "seen", so that its ROC-AUC is defined)."""
    heldout = frame["heldout"].to_numpy(dtype=bool)
    masks = {"all": np.ones(len(frame), dtype=bool)}
    if heldout.any():
        masks["seen"] = ~heldout
        masks["unseen"] = heldout | (frame["label"].to_numpy() == 0)
    return masks


def per_source_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per (source, label): count, images called ai, and the rate that matters for that label.

    AI rows: detection rate (recall). Real rows: false-positive rate. A folder with both labels
    (e.g. cycle_gan) gets one row per label.
    """
    grouped = predictions.groupby(["source", "label"], sort=True)
    table = grouped.agg(
        heldout=("heldout", "any"),
        count=("predicted", "size"),
        called_ai=("predicted", "sum"),
        mean_score_ai=("score_ai", "mean"),
    ).reset_index()
    table["rate"] = table["called_ai"] / table["count"]
    table["rate_name"] = np.where(table["label"] == AI_LABEL_ID, "detection_rate", "false_positive_rate")
    table["label"] = table["label"].map(ID2LABEL)
    table = table.sort_values(["label", "source"], ascending=[True, True], ignore_index=True)
    return table[["source", "label", "heldout", "count", "called_ai", "rate", "rate_name", "mean_score_ai"]]


def build_predictions(data: EvalData, logits: np.ndarray, valid: np.ndarray, threshold: float) -> pd.DataFrame:
    """The scored rows (unreadable images left out), with score_ai and the thresholded prediction."""
    rows = data.frame[valid].reset_index(drop=True)
    scores = calibration.ai_scores(logits[valid])
    return rows.assign(score_ai=scores, predicted=(scores >= threshold).astype(int))


def uncalibrate(scores: np.ndarray, temperature: float) -> np.ndarray:
    """P(ai) the model gave before the temperature was folded in: sigmoid(logit(score) * T)."""
    with np.errstate(divide="ignore"):
        gap = np.log(scores) - np.log1p(-scores)  # logit(ai) - logit(real)
    return 1.0 / (1.0 + np.exp(-gap * temperature))


def metrics_by_section(
    predictions: pd.DataFrame, threshold: float, temperature: float | None = None
) -> dict[str, dict[str, Any]]:
    """Metrics per section; with a folded temperature also the ECE the uncalibrated model had on these images."""
    labels, scores = predictions["label"].to_numpy(), predictions["score_ai"].to_numpy()
    out = {}
    for name, m in section_masks(predictions).items():
        out[name] = detection_metrics(labels[m], scores[m], threshold)
        if temperature:
            raw = uncalibrate(scores[m], temperature)
            out[name]["ece_before_calibration"] = calibration.expected_calibration_error(labels[m], raw)
    return out


# --------------------------------------------------------------------------- robustness


def reencode(image: Image.Image, format: str, quality: int) -> Image.Image:
    """Save and reload with a lossy codec, as an upload or a messenger would."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def downscale(image: Image.Image, factor: float) -> Image.Image:
    """Antialiased resize of both sides by factor (the processor then crops or pads as usual)."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)


def gaussian_blur(image: Image.Image, sigma: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))  # PIL's radius is the standard deviation


# module-level partials: picklable, so DataLoader workers can run them
DEGRADATIONS: dict[str, Degradation | None] = {
    "original": None,
    "jpeg_q95": functools.partial(reencode, format="JPEG", quality=95),
    "jpeg_q75": functools.partial(reencode, format="JPEG", quality=75),
    "jpeg_q50": functools.partial(reencode, format="JPEG", quality=50),
    "downscale_0.5": functools.partial(downscale, factor=0.5),
    "blur_sigma1": functools.partial(gaussian_blur, sigma=1.0),
    "webp_q80": functools.partial(reencode, format="WEBP", quality=80),
}


def robustness_row(name: str, predictions: pd.DataFrame, threshold: float) -> dict[str, Any]:
    m = detection_metrics(predictions["label"].to_numpy(), predictions["score_ai"].to_numpy(), threshold)
    keys = ("n_images", "accuracy", "roc_auc", "average_precision", "recall", "false_positive_rate", "ece")
    return {"degradation": name, **{k: m[k] for k in keys}}


# --------------------------------------------------------------------------- the whole run


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    per_source: pd.DataFrame
    robustness: pd.DataFrame | None
    output_dir: Path


def load_model_folder(model_dir: str | Path) -> tuple[torch.nn.Module, Any]:
    """The saved model and its saved image processor: the only preprocessing evaluation uses."""
    model = AutoModelForImageClassification.from_pretrained(str(model_dir), use_safetensors=True)  # never a pickle
    processor = AutoImageProcessor.from_pretrained(str(model_dir))
    return model, processor


def run_evaluation(
    model_dir: str | Path,
    data: EvalData,
    output_dir: str | Path,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    robustness: bool = False,
    accelerator: Accelerator | None = None,
) -> EvalResult:
    """Score `data` with the model folder, write every output file (main process), return the results."""
    accelerator = accelerator or Accelerator()
    output_dir = Path(output_dir)
    model, processor = load_model_folder(model_dir)
    threshold = calibration.decision_threshold(model.config)
    temperature = getattr(model.config, "calibration_temperature", None)
    paths = [str(data.root / p) for p in data.frame["path"]]
    score = functools.partial(
        predict_logits, model, processor, paths, batch_size=batch_size, num_workers=num_workers, accelerator=accelerator
    )
    logits, valid = score(desc="evaluating")
    predictions = build_predictions(data, logits, valid, threshold)
    if predictions.empty:
        raise DataError(f"None of the {len(paths)} images could be decoded ({data.description}).")
    metrics = {
        "model": str(model_dir),
        "data": data.description,
        "decision_threshold": threshold,
        "decision_threshold_rule": getattr(model.config, "decision_threshold_rule", None) or "default 0.5",
        "calibration_temperature": temperature,
        "ece_bins": calibration.ECE_BINS,
        "n_unreadable": int((~valid).sum()),
        "num_processes": accelerator.num_processes,
        **metrics_by_section(predictions, threshold, temperature),
    }
    per_source = per_source_table(predictions)
    sweep = None
    if robustness:
        rows, long = [robustness_row("original", predictions, threshold)], [predictions.assign(degradation="original")]
        for name, degrade in DEGRADATIONS.items():
            if degrade is None:
                continue
            d_logits, d_valid = score(degrade=degrade, desc=name)
            d_pred = build_predictions(data, d_logits, d_valid, threshold)
            rows.append(robustness_row(name, d_pred, threshold))
            long.append(d_pred.assign(degradation=name))
        sweep = pd.DataFrame(rows)
    if accelerator.is_main_process:
        write_outputs(output_dir, metrics, predictions, per_source, sweep, long if robustness else None)
    accelerator.wait_for_everyone()
    return EvalResult(metrics, predictions, per_source, sweep, output_dir)


def write_outputs(
    output_dir: Path,
    metrics: dict[str, Any],
    predictions: pd.DataFrame,
    per_source: pd.DataFrame,
    sweep: pd.DataFrame | None,
    sweep_predictions: list[pd.DataFrame] | None,
) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    predictions.to_csv(output_dir / "predictions.csv", index=False)
    per_source.to_csv(output_dir / "per_source.csv", index=False)
    labels, scores = predictions["label"].to_numpy(), predictions["score_ai"].to_numpy()
    masks = section_masks(predictions)
    plots.plot_roc({name: (labels[m], scores[m]) for name, m in masks.items()}, output_dir / "roc_curve.png")
    plots.plot_reliability(labels, scores, output_dir / "reliability_diagram.png", n_bins=calibration.ECE_BINS)
    all_ = metrics["all"]
    plots.plot_confusion(
        all_["true_negatives"], all_["false_positives"], all_["false_negatives"], all_["true_positives"],
        metrics["decision_threshold"], output_dir / "confusion_matrix.png",
    )
    plots.plot_per_source(per_source, output_dir / "per_source.png")
    if sweep is not None:
        sweep.to_csv(output_dir / "robustness.csv", index=False)
        pd.concat(sweep_predictions, ignore_index=True).to_csv(output_dir / "robustness_predictions.csv", index=False)
        plots.plot_robustness(sweep, output_dir / "robustness.png")
    logger.info("evaluation written to %s", output_dir)


# --------------------------------------------------------------------------- calibrating a saved folder


def calibrate_folder(
    model_dir: str | Path,
    data: EvalData,
    rule: str = calibration.DEFAULT_RULE,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    accelerator: Accelerator | None = None,
) -> calibration.CalibrationReport | None:
    """Calibrate an already trained folder on `data` (its validation rows) and re-save it in place."""
    accelerator = accelerator or Accelerator()
    model, processor = load_model_folder(model_dir)
    paths = [str(data.root / p) for p in data.frame["path"]]
    logits, valid = predict_logits(
        model, processor, paths, batch_size=batch_size, num_workers=num_workers, accelerator=accelerator,
        desc="calibrating",
    )
    labels = data.frame["label"].to_numpy()[valid]
    model = model.cpu()
    report = calibration.calibrate_model(model, logits[valid], labels, rule)
    if report is not None and accelerator.is_main_process:
        model.save_pretrained(str(model_dir))  # safetensors; config.json now carries the threshold
        calibration.write_report(report, model_dir)
    accelerator.wait_for_everyone()
    return report


# --------------------------------------------------------------------------- console summary


def format_summary(result: EvalResult) -> str:
    """A plain-text report for the console: sections, per-source table, robustness table."""
    m = result.metrics
    keys = ("n_images", "accuracy", "roc_auc", "average_precision", "f1", "precision", "recall",
            "false_positive_rate", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct", "ece", "ece_before_calibration", "brier")
    sections = [s for s in ("all", "seen", "unseen") if s in m]
    table = pd.DataFrame({s: [m[s].get(k) for k in keys] for s in sections}, index=list(keys), dtype=object)
    lines = [
        f"data: {m['data']}",
        f"decision threshold {m['decision_threshold']:.4f} ({m['decision_threshold_rule']}); "
        f"unreadable images: {m['n_unreadable']}",
        "",
        table.map(lambda v: "n/a" if v is None else v if isinstance(v, int) else f"{v:.4f}").to_string(),
        "",
        result.per_source.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
    ]
    if result.robustness is not None:
        lines += ["", result.robustness.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="n/a")]
    lines += ["", f"files in {result.output_dir}"]
    return "\n".join(lines)
