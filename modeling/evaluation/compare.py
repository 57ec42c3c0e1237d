"""Several detectors on the same images: one side-by-side table and one ROC plot.

    python scripts/evaluate.py --model outputs/demo --model path/to/swin::artificial --data_dir data/demo \
        --output_dir comparison

Every model is evaluated by `run_evaluation` exactly as it would be alone (its full evaluation in its own
subfolder), on one `EvalData`, so the figures differ only by the model. This module only lays the results
side by side: `comparison.csv` and `comparison.md` (one column per model: ROC-AUC, AP, TPR at 1% and 5%
FPR, the false-positive rate on reals at the model's own threshold and at a shared 5% FPR point, seen and
unseen sections, per-source rates, the stress test where a model's metrics have one), and
`comparison_roc.png` / `comparison_roc_log.png` with every model's curve.

The shared point is, per model, the threshold that calls 5% of these real images ai: a model from
elsewhere carries no calibrated threshold for this data (0.5 is arbitrary for it), so comparing detection
rates at one false-positive budget is the fair reading.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from transformers import AutoConfig

from modeling import metrics as figures
from modeling.calibration import choose_threshold
from modeling.data.selection import EvalData, resolve_eval_data
from modeling.evaluation.evaluate import EvalResult, run_evaluation
from modeling.evaluation.plots import plot_roc
from modeling.labels import LabelMap, label_map
from modeling.run_folder import MANIFEST

logger = logging.getLogger(__name__)

SHARED_FPR = 0.05
TABLE, MARKDOWN, ROC, ROC_LOG = "comparison.csv", "comparison.md", "comparison_roc.png", "comparison_roc_log.png"
HEADLINE = ("roc_auc", "average_precision", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct")
AUTO = "auto"  # an --ai_label value that keeps the inferred mapping for that model


@dataclass(frozen=True)
class ModelSpec:
    """One model to compare: folder or Hub id, its AI label (None: inferred), its column and subfolder name."""

    model: str
    ai_label: str | None
    name: str


def _names(models: Sequence[str]) -> list[str]:
    """Column and subfolder names: the folder or repo name, made unique and filesystem-safe."""
    bases = [re.sub(r"[^\w.-]+", "_", Path(m.rstrip("/")).name or m) or "model" for m in models]
    return [base if bases.count(base) == 1 else f"{i + 1}_{base}" for i, base in enumerate(bases)]


def parse_model_specs(models: Sequence[str], ai_labels: Sequence[str] | None = None) -> list[ModelSpec]:
    """`MODEL` or `MODEL::AI_LABEL` per --model; --ai_label values, if any, one per --model in order ("auto": infer)."""
    split = [tuple(m.rsplit("::", 1)) if "::" in m else (m, None) for m in models]
    given = list(ai_labels or [])
    if given and len(given) != len(split):
        raise ValueError(f"{len(given)} --ai_label for {len(split)} --model: give one per --model, in order "
                         f"('{AUTO}' to infer one), or write MODEL::AI_LABEL")
    specs = []
    for (model, inline), name, flag in zip(split, _names([m for m, _ in split]), given or [None] * len(split),
                                           strict=True):
        flag = None if flag == AUTO else flag
        if inline and flag and inline != flag:
            raise ValueError(f"{model}: AI label {inline!r} in --model and {flag!r} in --ai_label")
        specs.append(ModelSpec(model, inline or flag, name))
    return specs


def comparison_data(
    models: Sequence[str], data_dir: str | Path | None, manifest: str | Path | None = None, split: str = "test",
    use_model_manifest: bool = True, layout: str = "auto",
) -> EvalData:
    """The one set of images every model is scored on: an explicit manifest; else the split of the first
    model folder that has its own manifest (its test images: never trained on by that model); else every
    image under data_dir."""
    owner = next((m for m in models if (Path(m) / MANIFEST).is_file()), None) if use_model_manifest else None
    return resolve_eval_data(owner or models[0], data_dir, manifest, split,
                             use_model_manifest=owner is not None, layout=layout)


def shared_point(predictions: pd.DataFrame, rate: float = SHARED_FPR) -> dict[str, float | None]:
    """The threshold that calls at most `rate` of these reals ai (`choose_threshold`'s target_fpr rule), and
    the false-positive and detection rates it gives; None without both classes."""
    labels, scores = predictions["label"].to_numpy(dtype=int), predictions["score_ai"].to_numpy()
    if not ((labels == 0).any() and (labels == 1).any()):
        return {"threshold": None, "false_positive_rate_real": None, "detection_rate": None}
    threshold = choose_threshold(labels, scores, f"target_fpr={rate}")
    counts = figures.confusion_counts(labels, scores, threshold)
    real = counts["false_positives"] + counts["true_negatives"]
    ai = counts["true_positives"] + counts["false_negatives"]
    return {"threshold": threshold, "false_positive_rate_real": counts["false_positives"] / real,
            "detection_rate": counts["true_positives"] / ai}


def stress_rates(stress: Any) -> dict[tuple[str, str], Any]:
    """Per processing kind the false-positive rates on real photos, from a metrics.json `stress` section
    (`modeling.evaluation.stress.summary`: {"kinds": {kind: {"false_positive_rate": ..., ...}}}); empty without."""
    kinds = stress.get("kinds") if isinstance(stress, dict) else None
    if not isinstance(kinds, dict):
        return {}
    rows: dict[tuple[str, str], Any] = {}
    for kind, figures_of_kind in kinds.items():
        for key in ("false_positive_rate", "false_positive_rate_at_1pct"):
            if isinstance(figures_of_kind, dict) and key in figures_of_kind:
                rows[("stress test (real photos)", f"{kind}: {key}")] = figures_of_kind[key]
    return rows


def model_column(spec: ModelSpec, labels: LabelMap, result: EvalResult) -> dict[tuple[str, str], Any]:
    """One model's column of the table, keyed by (section, metric)."""
    m = result.metrics
    point = shared_point(result.predictions)
    column: dict[tuple[str, str], Any] = {
        ("model", "source"): spec.model,
        ("model", "labels"): labels.describe(),
        **{("all", key): m["all"].get(key) for key in ("n_images", "n_real", "n_ai", *HEADLINE)},
        ("own threshold", "threshold"): m["decision_threshold"],
        ("own threshold", "false_positive_rate_real"): m["all"].get("false_positive_rate"),
        ("own threshold", "detection_rate"): m["all"].get("recall"),
        **{(f"shared {SHARED_FPR:.0%} FPR point", key): value for key, value in point.items()},
    }
    for section in ("seen", "unseen"):
        if section in m:
            column.update({(section, key): m[section].get(key) for key in HEADLINE})
    for row in result.per_source.itertuples():
        column[("per source", f"{row.source} ({row.label}): {row.rate_name}")] = row.rate
    return {**column, **stress_rates(m.get("stress"))}


def comparison_table(columns: dict[str, dict[tuple[str, str], Any]]) -> pd.DataFrame:
    """section, metric, then one column per model; rows in the order they first appear."""
    keys = list(dict.fromkeys(key for column in columns.values() for key in column))
    table = pd.DataFrame({"section": [k[0] for k in keys], "metric": [k[1] for k in keys]})
    for name, column in columns.items():
        table[name] = [column.get(key) for key in keys]
    return table


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def markdown(table: pd.DataFrame, data: EvalData) -> str:
    """comparison.md: what was compared on which images, then the table."""
    names = [c for c in table.columns if c not in ("section", "metric")]
    lines = [
        "# Detector comparison", "",
        f"Images: {data.description}. Each model's full evaluation is in its subfolder ({', '.join(names)}).",
        f"The shared point is, per model, the threshold that calls {SHARED_FPR:.0%} of these real images ai.", "",
        "| " + " | ".join(["section", "metric", *names]) + " |",
        "|" + "---|" * 2 + "---:|" * len(names),
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_comparison(table: pd.DataFrame, results: dict[str, EvalResult], data: EvalData, out: Path) -> None:
    """comparison.csv, comparison.md and the two ROC plots (linear and low-FPR) with every model."""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / TABLE, index=False)
    (out / MARKDOWN).write_text(markdown(table, data), encoding="utf-8")
    curves = {name: (r.predictions["label"].to_numpy(), r.predictions["score_ai"].to_numpy())
              for name, r in results.items()}
    plot_roc(curves, out / ROC)
    plot_roc(curves, out / ROC_LOG, log_fpr=True)
    logger.info("comparison written to %s", out)


def run_comparison(
    specs: Sequence[ModelSpec], data: EvalData, output_dir: str | Path, **evaluation: Any
) -> tuple[pd.DataFrame, dict[str, EvalResult]]:
    """Evaluate every model on `data` (`run_evaluation` keyword arguments in `evaluation`), then write the
    side-by-side files (main process) into `output_dir`; returns the table and each model's result."""
    out = Path(output_dir)
    # every model's labels first: an ambiguous one is refused before any image is scored
    labels = {spec.name: label_map(AutoConfig.from_pretrained(spec.model).id2label, spec.ai_label) for spec in specs}
    results = {}
    for spec in specs:
        logger.info("evaluating %s (%s)", spec.name, spec.model)
        results[spec.name] = run_evaluation(spec.model, data, out / spec.name, ai_label=spec.ai_label, **evaluation)
    table = comparison_table({s.name: model_column(s, labels[s.name], results[s.name]) for s in specs})
    accelerator = evaluation.get("accelerator")
    if accelerator is None or accelerator.is_main_process:
        write_comparison(table, results, data, out)
    return table, results


def format_comparison(table: pd.DataFrame) -> str:
    """The console view: the headline rows (no per-source or stress rows)."""
    shown = table[~table["section"].isin(["per source", "stress test (real photos)", "model"])]
    return shown.map(_cell).to_string(index=False)
