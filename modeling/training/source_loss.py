"""Training's auxiliary source loss: a second, throw-away head that names each training image's source.

Why: the binary head alone has to find one direction that puts every generator on the ai side, and when the
generators lie on both sides of the real photos along the easiest cue (one smoother than a camera, another
noisier), the loss stays near ln 2 for hundreds of steps: a single direction gains nothing until a two-sided
feature exists. A head that must tell each generator from the reals and from the others rewards each source's
own feature from the first step, and the binary head then reads them (docs/recipe.md, "Source classes").

Classes: 0 for every real image (processed or not), one per ai source of the training split (sorted by name),
and one for the self-made fakes. The head is not part of the saved model: the shipped network stays a stock
two-label `ConvNextForImageClassification`. A resumed run starts the head afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from modeling.training.losses import WeightedCrossEntropy

REAL_CLASS = 0
SELF_FAKE = "<self-fake>"  # the self-made fakes' class name (no folder can be called this)
SOURCE_KEY = "source_labels"  # the batch key that carries the source classes


def source_classes(manifest: pd.DataFrame) -> dict[str, int]:
    """The ai sources of the training split -> classes 1..G, sorted by name; the self-fakes -> G + 1."""
    train = manifest[(manifest["split"] == "train") & (manifest["label"] == 1)]
    names = sorted(set(train["source"]))
    return {**{name: i + 1 for i, name in enumerate(names)}, SELF_FAKE: len(names) + 1}


def source_class_counts(manifest: pd.DataFrame, classes: Mapping[str, int], self_fake_prob: float) -> list[float]:
    """Expected training images per class and epoch (reals less the share that becomes self-fakes)."""
    train = manifest[manifest["split"] == "train"]
    counts = [0.0] * (max(classes.values()) + 1)
    num_real = int((train["label"] == 0).sum())
    counts[REAL_CLASS] = num_real * (1.0 - self_fake_prob)
    counts[classes[SELF_FAKE]] = num_real * self_fake_prob
    for source, n in train.loc[train["label"] == 1, "source"].value_counts().items():
        counts[classes[source]] = float(n)
    return counts


class SourceLabeller:
    """A training image's source class from its folder's source and its label before and after the sample
    transform: real stays class 0, a real made into a self-fake is the self-fake class."""

    def __init__(self, classes: Mapping[str, int]):
        self.classes = dict(classes)

    def __call__(self, source: str, label_before: int, label_after: int) -> int:
        if label_after == 0:
            return REAL_CLASS
        if label_before == 0:
            return self.classes[SELF_FAKE]
        if source not in self.classes:
            raise KeyError(f"source {source!r} is not an ai source of the training split: {sorted(self.classes)}")
        return self.classes[source]


class SourceHead(torch.nn.Module):
    """A linear head on the network's pooled features and its class-weighted cross-entropy, times `weight`."""

    def __init__(self, hidden_size: int, class_weights: list[float], weight: float):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, len(class_weights))
        self.criterion = WeightedCrossEntropy(tuple(class_weights))
        self.weight = weight

    def loss(self, pooled: torch.Tensor, sources: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        """The weighted loss, reduced as the real/ai loss is (sum / items when the Trainer gives items)."""
        logits = self.linear(pooled.float())
        return self.weight * self.criterion({"logits": logits}, sources.to(logits.device), num_items_in_batch)
