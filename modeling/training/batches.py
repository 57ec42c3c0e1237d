"""Training's batch transform and collate: decode, (augment), process, and drop what failed to decode.

Attached with `dataset.with_transform`; evaluation splits get the same transform without augmentations, so
both see pixels through `modeling.images.load_image` and the saved processor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor

from modeling.augment.camera import KeyedProcessing
from modeling.images import ImageLoadError, load_image
from modeling.training.source_loss import SOURCE_KEY, SourceLabeller

logger = logging.getLogger(__name__)


class BatchTransform:
    """`dataset.with_transform` callable: decode, (augment), process -> pixel_values + labels.

    An image that fails to decode yields `pixel_values=None`; `collate_fn` drops it and counts it,
    so one bad file in epoch 17 cannot end a run. `sample_transform(image, label) -> (image, label)`
    runs first on the decoded image and may change the label (training's self-made fakes). With
    `processor_geometry=False` the transforms have already cropped (training's random crop) and the
    processor only rescales and normalises; otherwise a smaller training crop would be zero-padded
    back to the processor's size. With a `source_labeller` (training's auxiliary source loss) each row's source
    class comes out beside its label, from the row's `source` and its label before and after the sample
    transform. A row whose `process` column names a camera processing kind is processed
    that way first, its draw keyed by the image and `process_seed` (the validation split's processed copies).
    """

    def __init__(
        self,
        processor: BaseImageProcessor,
        train_transforms: Callable[[Image.Image], torch.Tensor] | None = None,
        processor_geometry: bool = True,
        sample_transform: Callable[[Image.Image, int], tuple[Any, int]] | None = None,
        process_seed: int = 0,
        source_labeller: SourceLabeller | None = None,
    ):
        self.processor = processor
        self.source_labeller = source_labeller
        self.process_seed = process_seed
        self.train_transforms = train_transforms
        self.processor_kwargs = {} if processor_geometry else {"do_resize": False, "do_center_crop": False}
        self.sample_transform = sample_transform

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        pixel_values: list[torch.Tensor | None] = []
        labels = list(batch["label"]) if "label" in batch else None
        sources: list[int | None] = [None] * len(batch["image"])
        kinds = batch.get("process") or [""] * len(batch["image"])
        for i, record in enumerate(batch["image"]):
            try:
                image = load_image(record)
            except ImageLoadError as err:
                logger.warning("skipping unreadable image: %s", err)
                pixel_values.append(None)
                continue
            if kinds[i]:
                image = KeyedProcessing(kinds[i], self.process_seed)(image)
            label_before = int(labels[i]) if labels is not None else None
            if self.sample_transform is not None and labels is not None:
                image, labels[i] = self.sample_transform(image, int(labels[i]))
            if self.source_labeller is not None and labels is not None:
                sources[i] = self.source_labeller(batch["source"][i], label_before, int(labels[i]))
            if self.train_transforms is not None:
                image = self.train_transforms(image)
            processed = self.processor(image, return_tensors="pt", **self.processor_kwargs)
            pixel_values.append(processed["pixel_values"][0])
        out: dict[str, list[Any]] = {"pixel_values": pixel_values}
        if labels is not None:
            out["labels"] = labels
        if self.source_labeller is not None and labels is not None:
            out[SOURCE_KEY] = sources
        return out


def collate_fn(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack pixel_values (N, C, H, W) and labels (N,), dropping examples that failed to decode."""
    good = [ex for ex in examples if ex["pixel_values"] is not None]
    skipped = len(examples) - len(good)
    if skipped:
        logger.warning("dropped %d unreadable image(s) from a batch of %d", skipped, len(examples))
    if not good:
        raise ImageLoadError(f"every image in a batch of {len(examples)} failed to decode")
    batch = {"pixel_values": torch.stack([ex["pixel_values"] for ex in good])}
    for key in ("labels", SOURCE_KEY):
        if key in good[0]:
            batch[key] = torch.tensor([ex[key] for ex in good], dtype=torch.long)
    return batch
