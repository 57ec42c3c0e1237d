"""Evaluation figures as PNG files.

Built on `matplotlib.figure.Figure` directly (no pyplot): no global state, no GUI backend, safe in
worker processes and on headless machines; `savefig` renders with the Agg canvas. Every figure is
drawn from the numbers `modeling.metrics` computes, so a plot and metrics.json cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from modeling.metrics import ECE_BINS, SECTIONS, calibration_bins, roc_auc, roc_points, section_masks

DPI = 120
LOG_FPR_FLOOR = 1e-3  # the log-scale ROC starts here: forensics users read the low-FPR end


def _save(fig: Figure, path: str | Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # "tight": long tick labels are never cut off
    return Path(path)


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, log_fpr: bool = False) -> Path:
    """One ROC curve per section (all / seen / unseen) with its AUC; one-class sections are skipped.

    log_fpr: the false-positive axis on a log scale from 1e-3 to 1, where the operating points live.
    """
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.add_subplot()
    for name, (labels, scores) in curves.items():
        auc = roc_auc(labels, scores)
        if auc is None:
            continue
        fpr, tpr = roc_points(labels, scores)
        if log_fpr:
            fpr = np.maximum(fpr, LOG_FPR_FLOOR)  # fpr 0 has no place on a log axis: drawn at its left edge
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", drawstyle="steps-post" if log_fpr else "default")
    if log_fpr:
        ax.set_xscale("log")
        ax.set(xlim=(LOG_FPR_FLOOR, 1), title="ROC curve, low false-positive rates")
    else:
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(xlim=(0, 1), title="ROC curve")
    ax.set(xlabel="false-positive rate (real called ai)", ylabel="detection rate", ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_reliability(labels: np.ndarray, scores: np.ndarray, path: str | Path, n_bins: int = ECE_BINS) -> Path:
    """Fraction of ai images against mean P(ai) per bin (the ECE's bins), with the bin sizes below."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    bins = calibration_bins(scores, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    filled = counts > 0
    mean_score = np.bincount(bins, weights=scores, minlength=n_bins)[filled] / counts[filled]
    frac_ai = np.bincount(bins, weights=labels, minlength=n_bins)[filled] / counts[filled]
    fig = Figure(figsize=(5, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    top.plot(mean_score, frac_ai, marker="o", label="model")
    top.set(ylabel="fraction of ai images", title="Reliability diagram", xlim=(0, 1), ylim=(0, 1))
    top.legend(loc="upper left")
    edges = np.linspace(0, 1, n_bins + 1)
    bottom.bar(edges[:-1], counts, width=1 / n_bins, align="edge", edgecolor="white")
    bottom.set(xlabel="P(ai)", ylabel="images")
    return _save(fig, path)


def plot_confusion(sections: dict[str, dict[str, Any]], threshold: float, path: str | Path) -> Path:
    """Counts at the decision threshold, one matrix per section (all / seen / unseen); rows are true labels."""
    names = [s for s in SECTIONS if s in sections]
    fig = Figure(figsize=(3.6 * len(names), 3.8), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names, strict=True):
        m = sections[name]
        matrix = np.array([[m["true_negatives"], m["false_positives"]], [m["false_negatives"], m["true_positives"]]])
        ax.imshow(matrix, cmap="Blues", vmin=0)
        for (i, j), value in np.ndenumerate(matrix):
            colour = "white" if value > matrix.max() / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=13)
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "ai"], yticklabels=["real", "ai"],
               xlabel="predicted", ylabel="true", title=name)
    fig.suptitle(f"Confusion matrices at threshold {threshold:.3f}")
    return _save(fig, path)


def plot_per_source(table: pd.DataFrame, path: str | Path) -> Path:
    """Detection rate per AI source and false-positive rate per real source, one bar each."""
    fig = Figure(figsize=(8, 1.6 + 0.35 * max(len(table), 2)), layout="constrained")
    ax = fig.add_subplot()
    names = [f"{r.source} ({r.label}{', held out' if r.heldout else ''}, n={r.count})" for r in table.itertuples()]
    colours = ["tab:red" if label == "ai" else "tab:blue" for label in table["label"]]
    ax.barh(np.arange(len(table)), table["rate"], color=colours)
    ax.set_yticks(np.arange(len(table)), names)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), title="Images called ai, per source",
           xlabel="red: detection rate of an ai source; blue: false-positive rate of a real source")
    return _save(fig, path)


def plot_robustness(table: pd.DataFrame, path: str | Path) -> Path:
    """ROC-AUC and accuracy for each degradation of the evaluation images."""
    x = np.arange(len(table))
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    roc = pd.to_numeric(table["roc_auc"], errors="coerce").fillna(0.0)
    ax.bar(x - 0.2, roc, width=0.4, label="ROC-AUC")
    ax.bar(x + 0.2, table["accuracy"], width=0.4, label="accuracy")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x, table["degradation"], rotation=30, ha="right")
    ax.set(ylim=(0, 1), title="Robustness to degradations")
    ax.legend(loc="lower left")
    return _save(fig, path)


def plot_stress(table: pd.DataFrame, threshold: float, point: float, path: str | Path) -> Path:
    """Per processing kind: real images called ai at the stored threshold and at the 1% point, processed ai found."""
    x = np.arange(len(table))
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    for offset, column, label in ((-0.27, "false_positive_rate", f"reals called ai at the threshold {threshold:.3g}"),
                                  (0.0, "false_positive_rate_at_1pct", f"reals called ai at the 1% point {point:.3g}"),
                                  (0.27, "detection_rate", "ai images found at the threshold")):
        values = pd.to_numeric(table[column], errors="coerce").fillna(0.0)
        ax.bar(x + offset, values, width=0.27, label=label)
    ax.axhline(0.10, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x, table["kind"], rotation=30, ha="right")
    ax.set(ylim=(0, 1), title="False accusations: real photos after camera and sharing processing")
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


def plot_all(
    metrics: dict[str, Any], predictions: pd.DataFrame, per_source: pd.DataFrame,
    robustness: pd.DataFrame | None, out: Path, stress: pd.DataFrame | None = None,
) -> None:
    """Every evaluation figure into `out` (names as in `modeling.run_folder.PLOTS`)."""
    labels, scores = predictions["label"].to_numpy(), predictions["score_ai"].to_numpy()
    curves = {name: (labels[m], scores[m])
              for name, m in section_masks(predictions["heldout"].to_numpy(dtype=bool), labels).items()}
    plot_roc(curves, out / "roc_curve.png")
    plot_roc(curves, out / "roc_curve_log.png", log_fpr=True)
    plot_reliability(labels, scores, out / "reliability_diagram.png")
    plot_confusion(metrics, metrics["decision_threshold"], out / "confusion_matrix.png")
    plot_per_source(per_source, out / "per_source.png")
    if robustness is not None:
        plot_robustness(robustness, out / "robustness.png")
    if stress is not None:
        plot_stress(stress, metrics["decision_threshold"], metrics["stress"]["threshold_at_1pct"], out / "stress.png")
