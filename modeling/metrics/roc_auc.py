"""Binary ROC-AUC as an `evaluate` module (scikit-learn does the arithmetic)."""

import datasets
import evaluate
from sklearn.metrics import roc_auc_score


class RocAuc(evaluate.Metric):
    """Area under the ROC curve of a score for the positive class (`ai`)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Binary ROC-AUC of a positive-class score.",
            citation="",
            inputs_description="prediction_scores: P(positive); references: 0/1 labels.",
            features=datasets.Features(
                {"prediction_scores": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, prediction_scores, references):
        if len(set(references)) < 2:
            # ROC-AUC is undefined with one class; NaN says so instead of crashing a training run.
            return {"roc_auc": float("nan")}
        return {"roc_auc": float(roc_auc_score(references, prediction_scores))}
