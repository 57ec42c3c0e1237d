"""The robustness sweep: the same evaluation images after the degradations of the wild.

Each degradation runs on the decoded image, before the saved processor, so the model sees what it
would see if a user had uploaded the degraded file. With the crop processor a downscaled image is
zero-padded, as `pipeline` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pandas as pd
from PIL import Image

from modeling.degradations import downscale, gaussian_blur, reencode
from modeling.metrics import detection_metrics

Degradation = Callable[[Image.Image], Image.Image]

# module-level partials: picklable, so DataLoader workers can run them
DEGRADATIONS: dict[str, Degradation] = {
    "jpeg_q95": functools.partial(reencode, format="JPEG", quality=95),
    "jpeg_q75": functools.partial(reencode, format="JPEG", quality=75),
    "jpeg_q50": functools.partial(reencode, format="JPEG", quality=50),
    "downscale_0.5": functools.partial(downscale, factor=0.5),
    "blur_sigma1": functools.partial(gaussian_blur, sigma=1.0),
    "webp_q80": functools.partial(reencode, format="WEBP", quality=80),
}
ROW_KEYS = ("n_images", "accuracy", "roc_auc", "average_precision", "recall", "false_positive_rate", "ece")


def robustness_row(name: str, predictions: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """One line of robustness.csv: the figures of the degraded copies."""
    m = detection_metrics(predictions["label"].to_numpy(), predictions["score_ai"].to_numpy(), threshold)
    return {"degradation": name, **{k: m[k] for k in ROW_KEYS}}


def sweep(
    original: pd.DataFrame, score: Callable[[Degradation, str], pd.DataFrame], threshold: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(robustness table, every prediction with its degradation): `score(degrade, name)` scores the
    evaluation images degraded one way; `original` is the undegraded predictions."""
    rows = [robustness_row("original", original, threshold)]
    long = [original.assign(degradation="original")]
    for name, degrade in DEGRADATIONS.items():
        predictions = score(degrade, name)
        rows.append(robustness_row(name, predictions, threshold))
        long.append(predictions.assign(degradation=name))
    return pd.DataFrame(rows), pd.concat(long, ignore_index=True)
