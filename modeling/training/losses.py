"""Training's losses: cross-entropy with a weight per class, and the balanced weights it usually gets."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class WeightedCrossEntropy:
    """`compute_loss_func` for Trainer: cross-entropy with a weight per label.

    Why: with self-made fakes (or a folder with more of one label) the training stream can be 1:5 real:ai;
    an unweighted loss then sits at the prior's entropy, and the little it gains from the weak
    generator trace is easily outweighed. "balanced" weights make each label count half. The sum is
    divided by the number of labels across gradient-accumulation steps when the Trainer gives it,
    like transformers' own losses, so accumulation does not change the scale.
    """

    def __init__(self, weights: tuple[float, ...]):
        self.weights = torch.tensor(weights, dtype=torch.float32)

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        losses = F.cross_entropy(logits.float(), labels, weight=self.weights.to(logits.device), reduction="none")
        if num_items_in_batch is None:
            return losses.mean()
        return losses.sum() / num_items_in_batch


def balanced_weights(counts: tuple[float, ...]) -> tuple[float, ...]:
    """Per-label weights total / (labels present x count), 0 for an absent label: each label's images together
    weigh the same."""
    total, present = sum(counts), sum(1 for c in counts if c > 0)
    return tuple(total / (present * c) if c > 0 else 0.0 for c in counts)
