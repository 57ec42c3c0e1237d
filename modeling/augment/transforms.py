"""Training's geometry and robustness augmentations, and the uint8 tensor helpers the other augmentations share.

`build_train_transforms` does the processor's geometry the training way (a random crop where evaluation takes
the center crop; first a short-side resize for a "resize" processor) and adds the robustness augmentations
(flips, mild rescaling, blur, JPEG, grayscale). `modeling.training.batches.BatchTransform` then runs the saved
processor with its own resize and crop switched off, so normalisation is shared with evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from modeling.degradations import reencode

Tensor = torch.Tensor


def resize_by(img: torch.Tensor, factor: float) -> torch.Tensor:
    """(..., H, W) resized by `factor`: bicubic, antialiased when shrinking (as PIL and ArtiFact resize)."""
    h, w = img.shape[-2:]
    size = [max(1, round(h * factor)), max(1, round(w * factor))]
    return v2.functional.resize(img, size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)


class RandomRescale(torch.nn.Module):
    """Mild antialiased rescale by a random factor: resized images are common in the wild."""

    def __init__(self, scale_range: tuple[float, float]):
        super().__init__()
        self.scale_range = scale_range

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        lo, hi = self.scale_range
        return resize_by(img, float(torch.empty(1).uniform_(lo, hi)))



def build_train_transforms(
    crop: tuple[int, int],
    *,
    resize_short_side: int | None = None,
    rescale_prob: float = 0.0,
    rescale_range: Sequence[float] = (0.75, 1.25),
    hflip_prob: float = 0.0,
    blur_prob: float = 0.0,
    blur_sigma: Sequence[float] = (0.1, 2.0),
    jpeg_prob: float = 0.0,
    jpeg_quality: Sequence[int] = (65, 95),
    grayscale_prob: float = 0.0,
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB -> uint8 (C, H, W) tensor of the training crop size, augmented; a probability of 0 leaves a step out."""
    steps: list[torch.nn.Module] = [v2.ToImage()]
    if resize_short_side:
        steps.append(v2.Resize(resize_short_side, interpolation=v2.InterpolationMode.BICUBIC, antialias=True))
    if rescale_prob > 0:
        steps.append(v2.RandomApply([RandomRescale(tuple(rescale_range))], p=rescale_prob))
    steps.append(v2.RandomCrop(crop, pad_if_needed=True))  # native pixels: never resampled
    if hflip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(hflip_prob))
    if blur_prob > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel_size=9, sigma=list(blur_sigma))], p=blur_prob))
    if jpeg_prob > 0:
        steps.append(v2.RandomApply([v2.JPEG(quality=list(jpeg_quality))], p=jpeg_prob))
    if grayscale_prob > 0:
        steps.append(v2.RandomGrayscale(p=grayscale_prob))
    return v2.Compose(steps)


def to_uint8_tensor(image: Image.Image) -> Tensor:
    """PIL RGB -> uint8 (3, H, W)."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def to_uint8(x: Tensor) -> Tensor:
    return x.clamp(0.0, 1.0).mul(255.0).add_(0.5).floor_().to(torch.uint8)


def jpeg_roundtrip(x8: Tensor, quality: int) -> Tensor:
    """uint8 (3, H, W) -> a JPEG save at `quality` and back (PIL, as a default save) -> uint8 (3, H, W)."""
    return to_uint8_tensor(reencode(Image.fromarray(x8.permute(1, 2, 0).numpy()), "JPEG", int(quality)))

