"""The real-photo stress test: how often real photos are called ai after camera and sharing processing.

Each kind of `modeling.augment.camera` (digital zoom, night mode, HDR tone mapping, skin smoothing,
re-sharing, screenshot, other sizes) is applied to every evaluation image, real and ai alike, after decoding
and before the saved processor, as if the user had uploaded the processed file. Per kind: the false-positive
rate on real images at the model's stored threshold and at the threshold that calls 1% of the *unprocessed*
test reals ai, and the detection rate of the processed ai images (seen and held-out generators apart).

The processing parameters are drawn per image from a generator keyed by (STRESS_SEED, kind, the image's
pixels): the same image gets the same draw in any order, process count or worker, and these draws are not
training's, which come from the Trainer's seeded stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from modeling.augment.camera import KINDS, KeyedProcessing, check_kinds
from modeling.calibration import choose_threshold
from modeling.labels import AI_LABEL_ID
from modeling.metrics import roc_auc

STRESS_SEED = 7_705_219
POINT_FPR = 0.01  # the second operating point: 1% of the unprocessed test reals called ai
COLUMNS = ("kind", "n_real", "false_positive_rate", "false_positive_rate_at_1pct", "n_ai", "detection_rate",
           "detection_rate_seen", "detection_rate_unseen", "roc_auc")


def _rate(called: pd.Series) -> float | None:
    return float(called.mean()) if len(called) else None


def stress_row(kind: str, rows: pd.DataFrame, threshold: float, point: float) -> dict[str, Any]:
    """One line of stress.csv, from the predictions of one kind's processed images."""
    real, ai = rows[rows["label"] != AI_LABEL_ID], rows[rows["label"] == AI_LABEL_ID]
    heldout = ai["heldout"].astype(bool) if "heldout" in ai else pd.Series(False, index=ai.index)
    return {
        "kind": kind,
        "n_real": len(real),
        "false_positive_rate": _rate(real["score_ai"] >= threshold),
        "false_positive_rate_at_1pct": _rate(real["score_ai"] >= point),
        "n_ai": len(ai),
        "detection_rate": _rate(ai["score_ai"] >= threshold),
        "detection_rate_seen": _rate(ai.loc[~heldout, "score_ai"] >= threshold),
        "detection_rate_unseen": _rate(ai.loc[heldout, "score_ai"] >= threshold),
        "roc_auc": roc_auc(rows["label"].to_numpy(), rows["score_ai"].to_numpy()),
    }


def point_at_fpr(original: pd.DataFrame, rate: float = POINT_FPR) -> float:
    """The lowest threshold that calls at most `rate` of the unprocessed reals ai (the calibration rule's own)."""
    labels = original["label"].to_numpy()
    if (labels == AI_LABEL_ID).all() or (labels != AI_LABEL_ID).all():
        scores = original["score_ai"].to_numpy()
        return float(np.quantile(scores, 1 - rate)) if len(scores) else 1.0
    return choose_threshold(labels, original["score_ai"].to_numpy(), f"target_fpr={rate}")


def stress_table(predictions: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, float]:
    """(one row per kind, "none" first; the 1% point) from the long predictions (a `kind` column)."""
    original = predictions[predictions["kind"] == "none"]
    point = point_at_fpr(original)
    rows = [stress_row(kind, group, threshold, point) for kind, group in predictions.groupby("kind", sort=False)]
    return pd.DataFrame(rows, columns=list(COLUMNS)), point


def balanced_rows(frame: pd.DataFrame, seed: int = STRESS_SEED, ai_ratio: float = 1.0) -> np.ndarray:
    """Row positions of every real image and `ai_ratio` times as many ai ones (a seeded draw, or all when there
    are fewer): the stress test's false-positive rates keep every real, its detection rates a fair sample, at
    less cost."""
    if ai_ratio <= 0:
        raise ValueError(f"the stress test's ai images per real one must be > 0, got {ai_ratio}")
    real = np.flatnonzero(frame["label"].to_numpy() != AI_LABEL_ID)
    ai = np.flatnonzero(frame["label"].to_numpy() == AI_LABEL_ID)
    wanted = max(1, round(ai_ratio * len(real)))
    if len(ai) > wanted:
        ai = np.sort(np.random.default_rng(seed).choice(ai, size=wanted, replace=False))
    return np.sort(np.concatenate([real, ai]))


def sweep(
    original: pd.DataFrame,
    score: Callable[[Callable[[Image.Image], Image.Image], str], pd.DataFrame],
    threshold: float,
    kinds: Sequence[str] = tuple(KINDS),
) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """(stress table, every prediction with its kind, the 1% point): `score(degrade, name)` scores the evaluation
    images processed one way; `original` is their unprocessed predictions."""
    parts = [original.assign(kind="none")]
    for kind in check_kinds(kinds):
        parts.append(score(KeyedProcessing(kind, STRESS_SEED), f"stress: {kind}").assign(kind=kind))
    long = pd.concat(parts, ignore_index=True)
    table, point = stress_table(long, threshold)
    return table, long, point


def summary(table: pd.DataFrame, threshold: float, point: float) -> dict[str, Any]:
    """The metrics.json section: the two thresholds and each kind's figures."""
    kinds = {row["kind"]: {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()
                           if k != "kind"} for row in table.to_dict("records")}
    processed = [k for k in kinds if k != "none"]
    worst = max(processed, key=lambda k: kinds[k]["false_positive_rate"] or 0.0) if processed else None
    return {"threshold": threshold, "threshold_at_1pct": point, "seed": STRESS_SEED, "kinds": kinds,
            "worst_kind": worst, "worst_false_positive_rate": kinds[worst]["false_positive_rate"] if worst else None}
