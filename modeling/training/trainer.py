"""The Trainer the run uses: batches that survive unreadable files and a group-wide SIGTERM, and its metric.

- `collate_counting_skips` + `ReliableTrainer`: unreadable images dropped by `collate_fn` are
  counted in the batch itself, so the count survives DataLoader worker processes, and the trainer
  adds it to every training log line (`skipped_images`) and to eval metrics (`<prefix>_skipped_images`).
  Its DataLoader workers ignore SIGTERM, so a signal to the whole process group still ends cleanly.
- `DetectionMetrics`: the `compute_metrics` callable, accuracy and ROC-AUC through the bundled
  `evaluate` module (`detection_metric.py`), whose arithmetic is `modeling.metrics`.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import evaluate
import torch
from torch.utils.data import DataLoader
from transformers import EvalPrediction, Trainer

from modeling.metrics import ai_scores
from modeling.training.batches import collate_fn
from modeling.training.source_loss import SOURCE_KEY, SourceHead

logger = logging.getLogger(__name__)

SKIPPED_KEY = "num_skipped_images"
METRIC_MODULE = Path(__file__).resolve().parent / "detection_metric.py"


class DetectionMetrics:
    """`compute_metrics` for Trainer: accuracy and ROC-AUC of P(ai) from the logits."""

    def __init__(self) -> None:
        self.metric = evaluate.load(str(METRIC_MODULE))

    def __call__(self, pred: EvalPrediction) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        return self.metric.compute(predictions=ai_scores(logits), references=pred.label_ids)


def collate_counting_skips(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """`collate_fn`, plus how many examples it dropped; the count travels with the batch."""
    skipped = sum(1 for ex in examples if ex["pixel_values"] is None)
    batch = collate_fn(examples)
    batch[SKIPPED_KEY] = skipped
    return batch


class _IgnoreSigterm:
    """DataLoader `worker_init_fn` wrapper: workers ignore SIGTERM and leave stopping to the main process.

    torch's workers die on SIGTERM, and the main process then raises from its SIGCHLD handler in the
    middle of a step; a scheduler signals the whole process group, so without this no checkpoint
    is saved. Workers still exit when the main process ends (they are daemons and watch it).
    """

    def __init__(self, inner: Callable[[int], None] | None):
        self.inner = inner

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.inner is not None:
            self.inner(worker_id)


def shield_workers_from_sigterm(loader: DataLoader) -> DataLoader:
    """Make `loader`'s worker processes ignore SIGTERM (idempotent; no-op without workers)."""
    target = getattr(loader, "base_dataloader", loader)  # accelerate wraps the torch DataLoader
    if target.num_workers > 0 and not isinstance(target.worker_init_fn, _IgnoreSigterm):
        target.worker_init_fn = _IgnoreSigterm(target.worker_init_fn)
    return loader


class ReliableTrainer(Trainer):
    """A Trainer whose batches carry a skip count and whose workers survive a group-wide SIGTERM.

    The skip count is removed before the model sees the batch and added to the logs. Counts are
    per process (a multi-GPU run logs rank 0's), since the start of this process.
    """

    def __init__(self, *args: Any, source_head: SourceHead | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.skipped_images = 0
        self._eval_skipped = 0
        self._eval_prefix: str | None = None
        self.source_head = source_head
        self._pooled: torch.Tensor | None = None
        if source_head is not None:  # the pooled features reach the source head through a hook on the backbone
            source_head.to(self.args.device)
            self.model.convnext.register_forward_hook(self._keep_pooled)

    def _keep_pooled(self, module: Any, args: Any, output: Any) -> None:
        self._pooled = output.pooler_output

    def create_optimizer(self):
        """The Trainer's optimizer, plus the source head's parameters when it is made here (not on later calls)."""
        made_here = self.optimizer is None
        optimizer = super().create_optimizer()
        if made_here and self.source_head is not None:
            optimizer.add_param_group({"params": list(self.source_head.parameters()),
                                       "weight_decay": self.args.weight_decay})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The configured loss, plus the source head's when the batch carries source classes (training)."""
        sources = inputs.pop(SOURCE_KEY, None)
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        if self.source_head is None or sources is None:
            return result
        loss, outputs = result if return_outputs else (result, None)
        loss = loss + self.source_head.loss(self._pooled, sources, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def get_train_dataloader(self) -> DataLoader:
        return shield_workers_from_sigterm(super().get_train_dataloader())

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        return shield_workers_from_sigterm(super().get_eval_dataloader(eval_dataset))

    def get_test_dataloader(self, test_dataset) -> DataLoader:
        return shield_workers_from_sigterm(super().get_test_dataloader(test_dataset))

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.skipped_images += int(inputs.pop(SKIPPED_KEY, 0))
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        self._eval_skipped += int(inputs.pop(SKIPPED_KEY, 0))
        inputs.pop(SOURCE_KEY, None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        self._eval_skipped, self._eval_prefix = 0, metric_key_prefix
        try:
            return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        finally:
            self._eval_prefix = None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs or "train_runtime" in logs:
            logs["skipped_images"] = self.skipped_images
        elif self._eval_prefix and f"{self._eval_prefix}_runtime" in logs:
            logs[f"{self._eval_prefix}_skipped_images"] = self._eval_skipped
        super().log(logs, start_time)
