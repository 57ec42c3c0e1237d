"""Evaluation figures as PNG files.

Built on `matplotlib.figure.Figure` directly (no pyplot): no global state, no GUI backend, safe in
worker processes and on headless machines; `savefig` renders with the Agg canvas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from modeling.calibration import calibration_bins

DPI = 120


def _save(fig: Figure, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return Path(path)


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """One ROC curve per section (all / seen / unseen) with its AUC; one-class sections are skipped."""
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    for name, (labels, scores) in curves.items():
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false-positive rate (real called ai)", ylabel="detection rate", title="ROC curve",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_reliability(labels: np.ndarray, scores: np.ndarray, path: str | Path, n_bins: int = 15) -> Path:
    """Fraction of ai images against mean P(ai) per bin (the ECE's bins), with the bin sizes below."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    bins = calibration_bins(scores, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    filled = counts > 0
    mean_score = np.bincount(bins, weights=scores, minlength=n_bins)[filled] / counts[filled]
    frac_ai = np.bincount(bins, weights=labels, minlength=n_bins)[filled] / counts[filled]
    fig = Figure(figsize=(5, 6))
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    top.plot(mean_score, frac_ai, marker="o", label="model")
    top.set(ylabel="fraction of ai images", title="Reliability diagram", xlim=(0, 1), ylim=(0, 1))
    top.legend(loc="upper left")
    edges = np.linspace(0, 1, n_bins + 1)
    bottom.bar(edges[:-1], counts, width=1 / n_bins, align="edge", edgecolor="white")
    bottom.set(xlabel="P(ai)", ylabel="images")
    return _save(fig, path)


def plot_confusion(tn: int, fp: int, fn: int, tp: int, threshold: float, path: str | Path) -> Path:
    """Counts at the decision threshold; rows are the true labels."""
    matrix = np.array([[tn, fp], [fn, tp]])
    fig = Figure(figsize=(4.2, 4))
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=14)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "ai"], yticklabels=["real", "ai"],
           xlabel="predicted", ylabel="true", title=f"Confusion matrix (threshold {threshold:.3f})")
    return _save(fig, path)


def plot_per_source(table: pd.DataFrame, path: str | Path) -> Path:
    """Detection rate per AI source and false-positive rate per real source, one bar each."""
    fig = Figure(figsize=(7, 1.4 + 0.35 * max(len(table), 2)))
    ax = fig.add_subplot()
    names = [f"{r.source} ({r.label}{', held out' if r.heldout else ''}, n={r.count})" for r in table.itertuples()]
    colours = ["tab:red" if label == "ai" else "tab:blue" for label in table["label"]]
    ax.barh(np.arange(len(table)), table["rate"], color=colours)
    ax.set_yticks(np.arange(len(table)), names)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), title="Images called ai, per source",
           xlabel="ai source (red): detection rate; real source (blue): false-positive rate")
    return _save(fig, path)


def plot_robustness(table: pd.DataFrame, path: str | Path) -> Path:
    """ROC-AUC and accuracy for each degradation of the evaluation images."""
    x = np.arange(len(table))
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    roc = pd.to_numeric(table["roc_auc"], errors="coerce").fillna(0.0)
    ax.bar(x - 0.2, roc, width=0.4, label="ROC-AUC")
    ax.bar(x + 0.2, table["accuracy"], width=0.4, label="accuracy")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x, table["degradation"], rotation=30, ha="right")
    ax.set(ylim=(0, 1), title="Robustness to degradations")
    ax.legend(loc="lower left")
    return _save(fig, path)
