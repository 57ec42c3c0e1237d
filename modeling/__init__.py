"""AI-generated image detection with a stock transformers ConvNext: train, evaluate, predict.

    from modeling import Detector     # the batch predictor (loaded on first use: torch + transformers)
"""

from typing import Any

from modeling.labels import AI_LABEL_ID, ID2LABEL, LABEL2ID, LABEL_NAMES

__version__ = "0.1.0"
__all__ = ["AI_LABEL_ID", "ID2LABEL", "LABEL2ID", "LABEL_NAMES", "Detector", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Detector":  # lazily: `import modeling.labels` must not import torch
        from modeling.inference.predictor import Detector

        return Detector
    raise AttributeError(f"module 'modeling' has no attribute {name!r}")
