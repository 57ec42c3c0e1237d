"""The Trainer's metric as an `evaluate` module: accuracy and ROC-AUC of P(ai), by `modeling.metrics`.

`evaluate.load("accuracy")` goes to the Hub and fails offline (even with HF_EVALUATE_OFFLINE=1);
`evaluate.load(<absolute path to this file>)` works offline, so `DetectionMetrics` loads it by path.
evaluate copies the file into its module cache, so it must stand alone: it imports `modeling`
as an installed package, never relatively.
"""

import datasets
import evaluate

from modeling.metrics import detection_metrics

THRESHOLD = 0.5  # during training nothing is calibrated yet: P(ai) >= 0.5 is the argmax of two classes


class DetectionMetric(evaluate.Metric):
    """Accuracy at P(ai) >= 0.5 and ROC-AUC (NaN with one class, so a tiny run never crashes)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Accuracy and ROC-AUC of AI-generated image detection from P(ai).",
            citation="",
            inputs_description="predictions: P(ai) per image; references: 0 (real) or 1 (ai).",
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references):
        figures = detection_metrics(references, predictions, THRESHOLD)
        roc_auc = figures["roc_auc"]
        return {"accuracy": figures["accuracy"], "roc_auc": float("nan") if roc_auc is None else roc_auc}
