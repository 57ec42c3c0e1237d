"""Every figure the package reports, computed in one place: training, calibration, evaluation,
export checks, plots and benchmarks all call these functions.

Scores are P(ai) (the label `ai` is class 1); thresholded figures call an image ai when
P(ai) >= threshold. A figure that is undefined for the data (ROC-AUC with one class, precision with
no image called ai) is None, never a made-up number. The "unseen" section (held-out generators)
is scored against the same real images as "seen", so its ROC-AUC is defined and the two differ only
in which generators the AI images come from (`section_masks`).

scikit-learn is imported on first use: it belongs to the `train` extra, and prediction, which
imports this module for `ai_scores` alone, must not need it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from modeling.labels import AI_LABEL_ID

ECE_BINS = 15
FPR_TARGETS = {"tpr_at_fpr_1pct": 0.01, "tpr_at_fpr_5pct": 0.05}
SECTIONS = ("all", "seen", "unseen")
# the rows a report shows per section, in this order
REPORT_KEYS = ("n_images", "accuracy", "roc_auc", "average_precision", "f1", "precision", "recall",
               "false_positive_rate", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct", "ece", "ece_before_calibration", "brier")


def _sklearn_metrics() -> Any:
    import sklearn.metrics  # a `train` extra: see the module docstring

    return sklearn.metrics


# --------------------------------------------------------------------------- from logits


def ai_scores(logits: np.ndarray, ai_id: int = AI_LABEL_ID) -> np.ndarray:
    """P(ai) from (N, num_labels) logits, in float64, computed stably (the head is already calibrated).

    `ai_id` is the AI class of another detector (`modeling.labels.LabelMap.ai_id`); this package's is 1.
    """
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted[:, ai_id] / shifted.sum(axis=-1)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of the logits: the Trainer's loss, and what temperature scaling minimises."""
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(logits)), np.asarray(labels, dtype=int)].mean())


# --------------------------------------------------------------------------- calibration figures


def calibration_bins(scores: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin id of each P(ai) on equal-width bins of [0, 1], edges as in sklearn's `calibration_curve`."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], np.asarray(scores, dtype=np.float64))


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of P(ai): sum over bins of (bin size / N) * |fraction ai - mean P(ai)|.

    Binned on P(ai) (not on the top-label confidence) so it reads off the reliability diagram.
    """
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return float("nan")
    bins = calibration_bins(scores, n_bins)
    gap = np.bincount(bins, weights=labels, minlength=n_bins) - np.bincount(bins, weights=scores, minlength=n_bins)
    return float(np.abs(gap).sum() / len(scores))


def brier_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean squared error of P(ai) against the 0/1 label."""
    labels = np.asarray(labels, dtype=int)
    return float(_sklearn_metrics().brier_score_loss(labels, np.asarray(scores, dtype=np.float64), pos_label=1))


# --------------------------------------------------------------------------- ranking figures


def _both_classes(labels: np.ndarray) -> bool:
    labels = np.asarray(labels)
    return bool((labels == 0).any() and (labels == 1).any())


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC of P(ai); None with a single class."""
    if not _both_classes(labels):
        return None
    return float(_sklearn_metrics().roc_auc_score(np.asarray(labels, dtype=int), np.asarray(scores)))


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, detection rates) of every threshold, for plots."""
    fpr, tpr, _ = _sklearn_metrics().roc_curve(np.asarray(labels, dtype=int), np.asarray(scores))
    return fpr, tpr


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float | None:
    """Highest detection rate among thresholds whose false-positive rate is at most max_fpr."""
    if not _both_classes(labels):
        return None
    fpr, tpr, _ = _sklearn_metrics().roc_curve(np.asarray(labels, dtype=int), scores, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def confusion_counts(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    """True/false positives/negatives when P(ai) >= threshold means ai."""
    labels = np.asarray(labels, dtype=int)
    called_ai = np.asarray(scores, dtype=np.float64) >= threshold
    return {
        "true_positives": int((called_ai & (labels == 1)).sum()),
        "false_positives": int((called_ai & (labels == 0)).sum()),
        "true_negatives": int((~called_ai & (labels == 0)).sum()),
        "false_negatives": int((~called_ai & (labels == 1)).sum()),
    }


def detection_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | int | None]:
    """Every figure of one section; None where a figure is undefined."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    counts = confusion_counts(labels, scores, threshold)
    tp, fp, tn, fn = (counts[k] for k in ("true_positives", "false_positives", "true_negatives", "false_negatives"))
    precision, recall = _rate(tp, tp + fp), _rate(tp, tp + fn)
    both = _both_classes(labels)
    out: dict[str, float | int | None] = {
        "n_images": len(labels),
        "n_real": int((labels == 0).sum()),
        "n_ai": int((labels == 1).sum()),
        **counts,
        "accuracy": _rate(tp + tn, len(labels)),
        "precision": precision,
        "recall": recall,
        "f1": _rate(2 * tp, 2 * tp + fp + fn) if tp else (0.0 if fp + fn else None),
        "false_positive_rate": _rate(fp, fp + tn),
        "roc_auc": roc_auc(labels, scores),
        "average_precision": (float(_sklearn_metrics().average_precision_score(labels, scores)) if both else None),
        "ece": expected_calibration_error(labels, scores) if len(labels) else None,
        "brier": brier_score(labels, scores) if len(labels) else None,
        **{key: tpr_at_fpr(labels, scores, rate) for key, rate in FPR_TARGETS.items()},
    }
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


# --------------------------------------------------------------------------- sections and reports


def section_masks(heldout: Sequence[bool], labels: Sequence[int]) -> dict[str, np.ndarray]:
    """Row masks of "all" and, when generators were held out, "seen" and "unseen".

    seen = every row of a generator present in training, real rows included; unseen = held-out AI
    rows plus the same real rows, so both sections rank their AI images against identical reals.
    """
    heldout = np.asarray(heldout, dtype=bool)
    real = np.asarray(labels) == 0
    masks = {"all": np.ones(len(heldout), dtype=bool)}
    if heldout.any():
        masks["seen"] = ~heldout
        masks["unseen"] = heldout | (real & ~heldout)
    return masks


def metrics_by_section(
    labels: np.ndarray, scores: np.ndarray, heldout: Sequence[bool], threshold: float
) -> dict[str, dict[str, Any]]:
    """`detection_metrics` for each of `section_masks`."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    return {name: detection_metrics(labels[m], scores[m], threshold)
            for name, m in section_masks(heldout, labels).items()}


def operating_point(sections: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """What the decision threshold gives: FPR on real images, detection rate on seen and unseen generators.

    Without held-out generators every AI image is a seen one.
    """
    seen = sections.get("seen") or sections["all"]
    return {
        "false_positive_rate_real": sections["all"].get("false_positive_rate"),
        "detection_rate_seen": seen.get("recall"),
        "detection_rate_unseen": (sections.get("unseen") or {}).get("recall"),
    }


def with_prefix(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """`{prefix}_{key}` for the numeric values, the Trainer's `*_results.json` format."""
    return {f"{prefix}_{k}": v for k, v in values.items() if isinstance(v, (int, float)) or v is None}
