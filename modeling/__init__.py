"""AI-generated image detection with a stock transformers ConvNext: train, evaluate, predict."""

from modeling.labels import AI_LABEL_ID, ID2LABEL, LABEL2ID, LABEL_NAMES

__version__ = "0.1.0"
__all__ = ["AI_LABEL_ID", "ID2LABEL", "LABEL2ID", "LABEL_NAMES", "__version__"]
