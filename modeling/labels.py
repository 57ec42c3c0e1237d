"""The two class names in id order, and how a score becomes one of them.

Every consumer (config, dataset, metrics, predictor) reads the names here. A score is P(ai); an
image is called ai when P(ai) >= the model's `decision_threshold` (stored in config.json by
calibration; 0.5 for a model that was never calibrated).
"""

from typing import Any

LABEL_NAMES: tuple[str, ...] = ("real", "ai")
ID2LABEL: dict[int, str] = dict(enumerate(LABEL_NAMES))
LABEL2ID: dict[str, int] = {name: i for i, name in ID2LABEL.items()}
AI_LABEL_ID: int = LABEL2ID["ai"]
DEFAULT_THRESHOLD = 0.5
# the operating point chosen on validation: at most 5% of real images called ai. It depends only on the
# real images, so it does not move with which generators training happened to see (max_accuracy does)
DEFAULT_THRESHOLD_RULE = "target_fpr=0.05"


def decision_threshold(config: Any) -> float:
    """The model config's stored threshold on P(ai); 0.5 for a model that was never calibrated."""
    value = getattr(config, "decision_threshold", None)
    return DEFAULT_THRESHOLD if value is None else float(value)
