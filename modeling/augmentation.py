"""Training-time augmentations: what only training batches see, before the shared processor.

`build_train_transforms` does the processor's geometry the training way (a random crop where
evaluation takes the center crop; first a short-side resize for a "resize" processor) and adds the
robustness augmentations (flips, mild rescaling, blur, JPEG, grayscale); `BatchTransform` then runs
the same processor as evaluation with its own resize/crop switched off, so normalisation is shared.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2

from modeling.config import AugmentArguments


class RandomRescale(torch.nn.Module):
    """Mild antialiased rescale by a random factor: resized images are common in the wild."""

    def __init__(self, scale_range: tuple[float, float]):
        super().__init__()
        self.scale_range = scale_range

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        lo, hi = self.scale_range
        factor = float(torch.empty(1).uniform_(lo, hi))
        h, w = img.shape[-2:]
        size = [max(1, round(h * factor)), max(1, round(w * factor))]
        return v2.functional.resize(img, size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)


def build_train_transforms(
    crop: tuple[int, int], aug: AugmentArguments, resize_short_side: int | None = None
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB -> uint8 (C, H, W) tensor of the training crop size, augmented (see the module docstring)."""
    steps: list[torch.nn.Module] = [v2.ToImage()]
    if resize_short_side:
        steps.append(v2.Resize(resize_short_side, interpolation=v2.InterpolationMode.BICUBIC, antialias=True))
    if aug.rescale_prob > 0:
        steps.append(v2.RandomApply([RandomRescale(tuple(aug.rescale_range))], p=aug.rescale_prob))
    steps.append(v2.RandomCrop(crop, pad_if_needed=True))  # native pixels: never resampled
    if aug.hflip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(aug.hflip_prob))
    if aug.blur_prob > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel_size=9, sigma=aug.blur_sigma)], p=aug.blur_prob))
    if aug.jpeg_prob > 0:
        steps.append(v2.RandomApply([v2.JPEG(quality=list(aug.jpeg_quality))], p=aug.jpeg_prob))
    if aug.grayscale_prob > 0:
        steps.append(v2.RandomGrayscale(p=aug.grayscale_prob))
    return v2.Compose(steps)
