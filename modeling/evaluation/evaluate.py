"""Honest evaluation of a saved model folder: batched, distributed-safe, every figure recomputable.

    python scripts/evaluate.py --model outputs/demo --data_dir data/demo [--robustness]

Writes to the output folder (file names: `modeling.run_folder`):
- `predictions.csv`: one row per scored image (path, source, category, heldout, label, score_ai,
  score_ai_uncalibrated, predicted); every number in `metrics.json` is recomputable from it.
- `metrics.json`: the figures of `modeling.metrics.detection_metrics` at the model's decision
  threshold for "all" rows and, when the manifest has held-out generators, "seen" and "unseen"
  apart; the operating point (FPR on real images, detection rate on seen and unseen generators).
- `per_source.csv`: per AI source its detection rate (recall), per real source its false-positive rate.
- plots (PNG): ROC curves (linear and log-scale FPR), reliability diagram, confusion matrix per
  section, per-source bars; with robustness also `robustness.csv`, `robustness_predictions.csv`, `robustness.png`.

Pixels go through the model folder's saved image processor and `load_image` (`ImageFiles`, the
predictor's reader). Under `accelerate launch` each process scores a shard; the gathered row
indices say which image each score belongs to.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModelForImageClassification

from modeling import calibration
from modeling import metrics as figures
from modeling.augment import camera
from modeling.data.index import DataError
from modeling.data.selection import EvalData
from modeling.evaluation import plots, provenance_summary
from modeling.evaluation import stress as stress_test
from modeling.evaluation.robustness import Degradation
from modeling.evaluation.robustness import sweep as robustness_sweep
from modeling.inference.images import ImageFiles
from modeling.inference.runners import OnnxRunner, Runner, TorchRunner
from modeling.labels import AI_LABEL_ID, ID2LABEL, decision_threshold, label_map
from modeling.processing import processor_crop_size
from modeling.run_folder import (
    CALIBRATION,
    METRICS,
    ONNX_FILES,
    PER_SOURCE,
    PREDICTIONS,
    ROBUSTNESS,
    ROBUSTNESS_PREDICTIONS,
    STRESS,
    STRESS_PREDICTIONS,
    RunFolder,
)

logger = logging.getLogger(__name__)

SCORING_BACKENDS = ("auto", "torch", "onnx")


# --------------------------------------------------------------------------- scoring


def _padded_batch(items: list[tuple[int, torch.Tensor | None, str | None]], shape: tuple[int, ...]) -> dict:
    """An unreadable image becomes zeros with valid=0 rather than being dropped, so every batch keeps
    its size and `gather_for_metrics` trims the sampler's padding correctly."""
    return {
        "pixel_values": torch.stack([px[0] if px is not None else torch.zeros(shape) for _, px, _ in items]),
        "index": torch.tensor([i for i, _, _ in items]),
        "valid": torch.tensor([int(px is not None) for _, px, _ in items]),
    }


def predict_logits(
    model: torch.nn.Module | Runner,
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

    `model`: the torch model (run channels-last on CPU) or a runner (`scoring_runner`: one process only).
    Every process gets the complete result (gathered), so any of them can write the files.
    """
    accelerator = accelerator or Accelerator()
    forward = TorchRunner(model, device=accelerator.device) if isinstance(model, torch.nn.Module) else model
    collate = functools.partial(_padded_batch, shape=(3, *processor_crop_size(processor)))
    loader = DataLoader(ImageFiles(paths, processor, degrade), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=collate)
    loader = accelerator.prepare(loader)  # shards across processes; moves batches to the device
    logits: np.ndarray | None = None
    valid = np.zeros(len(paths), dtype=bool)
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process):
        out = torch.from_numpy(forward(batch["pixel_values"])).to(accelerator.device)
        # gather_for_metrics drops the samples the sampler repeated to even out the last batch
        index, out, ok = accelerator.gather_for_metrics((batch["index"], out, batch["valid"]))
        index = index.cpu().numpy()
        if logits is None:
            logits = np.full((len(paths), out.shape[1]), np.nan, dtype=np.float32)
        logits[index] = out.cpu().numpy()
        valid[index] = ok.cpu().numpy().astype(bool)
    if logits is None:  # no paths
        logits = np.zeros((0, 2), dtype=np.float32)
    return logits, valid


def scoring_runner(model_dir: str | Path, model: torch.nn.Module, accelerator: Accelerator,
                   backend: str = "auto") -> Runner:
    """The fp32 forward that scores the evaluation: "auto" takes the folder's fp32 ONNX export on a single CPU
    process when its check passed for these weights (its scores equal torch's within the export's tolerance,
    and on 2 cores it is ~1.4x faster: docs/results.md, "Evaluation speed"), else torch; "torch" or "onnx"
    force one ("onnx" fails without a usable export)."""
    if backend not in SCORING_BACKENDS:
        raise ValueError(f"backend must be one of {SCORING_BACKENDS}, got {backend!r}")
    if backend != "torch":
        reason = RunFolder(model_dir).usable_onnx("fp32") if Path(model_dir).is_dir() else "not a local folder"
        if accelerator.num_processes > 1 or accelerator.device.type != "cpu":
            reason = reason or "ONNX scoring runs in one CPU process"
        elif importlib.util.find_spec("onnxruntime") is None:
            reason = reason or "onnxruntime is not installed"
        if reason is None:
            return OnnxRunner(Path(model_dir) / ONNX_FILES["fp32"], "fp32", concurrent_runs=1)
        if backend == "onnx":
            raise ValueError(f"{model_dir}: no usable fp32 ONNX export for evaluation: {reason}")
    return TorchRunner(model, device=accelerator.device)


def build_predictions(
    data: EvalData, logits: np.ndarray, valid: np.ndarray, threshold: float, temperature: float | None = None,
    bias: float = 0.0, ai_id: int = AI_LABEL_ID,
) -> pd.DataFrame:
    """The scored rows (unreadable images left out): calibrated P(ai), the thresholded prediction and,
    with a folded calibration, the P(ai) the model gave before it (from the logits with the folded map
    undone: rebuilding it from the calibrated score would saturate at 0 and 1). `ai_id`: the model's AI class."""
    rows = data.frame[valid].reset_index(drop=True)
    scores = figures.ai_scores(logits[valid], ai_id)
    raw = scores
    if temperature:
        raw = figures.ai_scores(calibration.undo_scaling(logits[valid], temperature, bias), ai_id)
    return rows.assign(score_ai=scores, score_ai_uncalibrated=raw, predicted=(scores >= threshold).astype(int))


def metrics_by_section(predictions: pd.DataFrame, threshold: float) -> dict[str, dict[str, Any]]:
    """Figures per section, plus the ECE the uncalibrated model had on the same images."""
    labels = predictions["label"].to_numpy()
    heldout = predictions["heldout"].to_numpy(dtype=bool)
    out = figures.metrics_by_section(labels, predictions["score_ai"].to_numpy(), heldout, threshold)
    raw = predictions["score_ai_uncalibrated"].to_numpy()
    for name, mask in figures.section_masks(heldout, labels).items():
        out[name]["ece_before_calibration"] = figures.expected_calibration_error(labels[mask], raw[mask])
    return out


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


# --------------------------------------------------------------------------- the whole run


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    per_source: pd.DataFrame
    robustness: pd.DataFrame | None
    output_dir: Path
    stress: pd.DataFrame | None = None
    long_predictions: dict[str, pd.DataFrame] = field(default_factory=dict)  # file name -> the sweeps' rows


def read_head(config: Any, ai_label: str | int | None = None) -> tuple[float, float | None, float, int]:
    """(threshold, calibration temperature, bias, AI class id): how a model's logits become P(ai) and a label.

    A model from elsewhere has no calibration and a threshold of 0.5; its AI class comes from `ai_label` or
    its label names (`modeling.labels.label_map`, a ValueError when they do not say).
    """
    labels = label_map(config.id2label, ai_label)
    if not labels.is_own:
        logger.info("labels: %s", labels.describe())
    ai_id = labels.ai_id
    bias = float(getattr(config, "calibration_bias", None) or 0.0)
    return decision_threshold(config), getattr(config, "calibration_temperature", None), bias, ai_id


def add_provenance(result: EvalResult, root: Path, enabled: bool, trust_anchors: str | Path | None) -> None:
    """What each scored file claims about its origin, beside its score: columns of predictions.csv and a
    per-label summary in metrics.json; the scores and figures never use it."""
    if enabled:
        result.predictions = provenance_summary.with_columns(result.predictions, root, trust_anchors)
        result.metrics["provenance"] = provenance_summary.summarize(result.predictions)


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
    stress: bool | Sequence[str] = False,
    stress_balanced: bool = False,
    stress_ai_ratio: float = 1.0,
    accelerator: Accelerator | None = None,
    ai_label: str | int | None = None, provenance: bool = True, trust_anchors: str | Path | None = None,
    backend: str = "auto",
) -> EvalResult:
    """Score `data` with the model folder, write every output file (main process), return the results.

    robustness: the degradation sweep; stress: the real-photo stress test (True: every processing kind, or the
    names of some of `modeling.augment.camera.KINDS`), on every image or, `stress_balanced`, on every real one
    and `stress_ai_ratio` times as many ai ones (`modeling.evaluation.stress.balanced_rows`); backend: see
    `scoring_runner`."""
    accelerator = accelerator or Accelerator()
    model, processor = load_model_folder(model_dir)
    threshold, temperature, bias, ai_id = read_head(model.config, ai_label)
    runner = scoring_runner(model_dir, model, accelerator, backend)
    score_logits = functools.partial(predict_logits, runner, processor, batch_size=batch_size,
                                     num_workers=num_workers, accelerator=accelerator)

    def score(degrade: Degradation | None = None, desc: str = "evaluating", part: EvalData = data) -> pd.DataFrame:
        logits, valid = score_logits(paths=part.paths, degrade=degrade, desc=desc)
        return build_predictions(part, logits, valid, threshold, temperature, bias, ai_id)

    predictions = score()
    if predictions.empty:
        raise DataError(f"None of the {len(data.frame)} images could be decoded ({data.description}).")
    rule = getattr(model.config, "decision_threshold_rule", None) or "default 0.5"
    metrics = {"model": str(model_dir), "data": data.description, "decision_threshold": threshold,
               "decision_threshold_rule": rule, "calibration_temperature": temperature, "calibration_bias": bias,
               "num_processes": accelerator.num_processes, "scoring_backend": runner.name,
               **section_figures(predictions, threshold, len(data.frame))}
    result = EvalResult(metrics, predictions, per_source_table(predictions), None, Path(output_dir))
    stress_part = data.subset(stress_test.balanced_rows(data.frame, ai_ratio=stress_ai_ratio),
                              f"every real image and {stress_ai_ratio:g} ai per real") \
        if stress and stress_balanced else None
    run_sweeps(result, score, threshold, robustness, stress, stress_part)
    add_provenance(result, data.root, provenance, trust_anchors)
    if accelerator.is_main_process:
        write_outputs(result)
    accelerator.wait_for_everyone()
    return result


def section_figures(predictions: pd.DataFrame, threshold: float, n_rows: int) -> dict[str, Any]:
    """The figures of each section, the operating point, and how many rows could not be scored."""
    sections = metrics_by_section(predictions, threshold)
    return {"ece_bins": figures.ECE_BINS, "n_unreadable": int(n_rows - len(predictions)),
            "operating_point": figures.operating_point(sections), **sections}


def run_sweeps(result: EvalResult, score: Callable[..., pd.DataFrame], threshold: float, robustness: bool,
               stress: bool | Sequence[str], stress_part: EvalData | None = None) -> None:
    """The robustness sweep and the stress test (on `stress_part`'s rows when given), into `result` (tables,
    metrics, long predictions)."""
    if robustness:
        result.robustness, result.long_predictions[ROBUSTNESS_PREDICTIONS] = robustness_sweep(
            result.predictions, score, threshold)
    if stress:
        kinds = tuple(camera.KINDS) if stress is True else tuple(stress)
        original = result.predictions
        if stress_part is not None:
            score = functools.partial(score, part=stress_part)
            original = original[original["path"].isin(set(stress_part.frame["path"]))].reset_index(drop=True)
        table, long, point = stress_test.sweep(original, score, threshold, kinds)
        result.stress, result.long_predictions[STRESS_PREDICTIONS] = table, long
        result.metrics["stress"] = stress_test.summary(table, threshold, point)


def write_outputs(result: EvalResult) -> None:
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS).write_text(json.dumps(result.metrics, indent=2) + "\n")
    result.predictions.to_csv(out / PREDICTIONS, index=False)
    result.per_source.to_csv(out / PER_SOURCE, index=False)
    plots.plot_all(result.metrics, result.predictions, result.per_source, result.robustness, out, result.stress)
    for name, table in ((ROBUSTNESS, result.robustness), (STRESS, result.stress)):
        if table is not None:
            table.to_csv(out / name, index=False)
    for name, rows in result.long_predictions.items():
        rows.to_csv(out / name, index=False)
    logger.info("evaluation written to %s", out)


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
    if not label_map(model.config.id2label).is_own:  # the fold into the head assumes real=0, ai=1
        raise ValueError(f"{model_dir}: calibration re-saves this package's model folders only (labels real, ai)")
    logits, valid = predict_logits(model, processor, data.paths, batch_size=batch_size, num_workers=num_workers,
                                   accelerator=accelerator, desc="calibrating")
    model = model.cpu().to(memory_format=torch.contiguous_format)  # scored channels-last; saved contiguous
    report = calibration.calibrate_model(model, logits[valid], data.frame["label"].to_numpy()[valid], rule)
    if report is not None and accelerator.is_main_process:
        model.save_pretrained(str(model_dir))  # safetensors; config.json now carries the threshold
        RunFolder(model_dir).write_json(CALIBRATION, report.to_dict())
    accelerator.wait_for_everyone()
    return report


# --------------------------------------------------------------------------- console summary


def format_summary(result: EvalResult) -> str:
    """A plain-text report for the console: sections, operating point, per-source and robustness tables."""
    m = result.metrics
    sections = [s for s in figures.SECTIONS if s in m]
    table = pd.DataFrame({s: [m[s].get(k) for k in figures.REPORT_KEYS] for s in sections},
                         index=list(figures.REPORT_KEYS), dtype=object)
    point = ", ".join(f"{k} {'n/a' if v is None else f'{v:.4f}'}" for k, v in m["operating_point"].items())
    lines = [
        f"data: {m['data']}",
        f"decision threshold {m['decision_threshold']:.4f} ({m['decision_threshold_rule']}): {point}; "
        f"unreadable images: {m['n_unreadable']}",
        "",
        table.map(lambda v: "n/a" if v is None else v if isinstance(v, int) else f"{v:.4f}").to_string(),
        "",
        result.per_source.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
    ]
    for table in (result.robustness, result.stress):
        if table is not None:
            lines += ["", table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="n/a")]
    lines += [*provenance_summary.format_lines(m.get("provenance")), "", f"files in {result.output_dir}"]
    return "\n".join(lines)
