"""`from modeling.predictor import Detector` keeps working: the predictor lives in `modeling.inference.predictor`."""

from modeling.inference.predictor import BACKENDS, PRECISIONS, Detector, ModelLoadError, PredictionRow

__all__ = ["BACKENDS", "PRECISIONS", "Detector", "ModelLoadError", "PredictionRow"]
