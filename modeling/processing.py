"""The saved image processor: the preprocessing every consumer reads from the model folder, and native multi-crop.

A model folder's `preprocessor_config.json` is a stock transformers processor, so `pipeline` and
`AutoImageProcessor` load it; evaluation, prediction and the web demo take size, crop, mean and std from it and
never restate them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import BitImageProcessor, ConvNextImageProcessor
from transformers.image_processing_utils import BaseImageProcessor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROCESSOR_KINDS = ("crop", "resize")


def build_image_processor(
    kind: str = "crop",
    image_size: int = 200,
    image_mean: Sequence[float] = IMAGENET_MEAN,
    image_std: Sequence[float] = IMAGENET_STD,
) -> BaseImageProcessor:
    """The processor saved beside the weights; every value is set explicitly (class defaults differ).

    - "crop" (default): native-resolution center crop, zero-padded when smaller. Pixels are never
      resampled, so high-frequency generator traces reach the model untouched.
    - "resize": resize the short side to `image_size` (antialiased) then center-crop, the way
      ArtiFact made its own 200x200 images from larger ones.
    Both are stock transformers classes, so `AutoImageProcessor` and `pipeline` load them.
    """
    common = dict(
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(image_mean),
        image_std=list(image_std),
        do_convert_rgb=True,
    )
    if kind == "crop":
        return BitImageProcessor(
            do_resize=False,
            do_center_crop=True,
            crop_size={"height": image_size, "width": image_size},
            **common,
        )
    if kind == "resize":
        return ConvNextImageProcessor(
            do_resize=True,
            size={"shortest_edge": image_size},
            crop_pct=1.0,
            resample=Image.Resampling.BICUBIC,
            **common,
        )
    raise ValueError(f"processor kind must be one of {PROCESSOR_KINDS}, got {kind!r}")


def processor_crop_size(processor: BaseImageProcessor) -> tuple[int, int]:
    """(height, width) of the processor's output, read from the processor itself."""
    crop = getattr(processor, "crop_size", None)
    if getattr(processor, "do_center_crop", False) and crop:
        return int(crop["height"]), int(crop["width"])
    size = processor.size
    edge = size.get("shortest_edge") or size.get("height")
    return int(edge), int(size.get("width", edge))


def crop_grid(n: int, width: int, height: int) -> tuple[int, int]:
    """(rows, cols) with rows * cols == n whose shape is closest to the image's."""
    pairs = [(r, n // r) for r in range(1, n + 1) if n % r == 0]
    return min(pairs, key=lambda rc: abs(math.log((rc[0] / rc[1]) / (height / width))))


def crop_origins(n: int, width: int, height: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
    """(left, top) of up to n native-resolution crops spread evenly over the image, the outer ones at its
    borders; a single crop is centred as the processor's own. Duplicates (small images) are dropped."""
    rows, cols = crop_grid(n, width, height)

    def spread(count: int, size: int, crop: int) -> list[int]:
        if count == 1:
            return [int((size - crop) / 2.0)]  # transformers' center_crop
        return [round(i * (size - crop) / (count - 1)) for i in range(count)]

    origins = [(x, y) for y in spread(rows, height, crop_h) for x in spread(cols, width, crop_w)]
    return list(dict.fromkeys(origins))


def process_image(processor: BaseImageProcessor, image: Image.Image, crops: int = 1) -> torch.Tensor:
    """(k, C, H, W) model input of one decoded image: the saved processor's own single crop, or for
    `crops` > 1 and an image larger than the crop, k native-resolution crops spread over it.

    Several crops apply only to a processor that does not resize (the native "crop" kind): each crop is
    then exactly the processor's output size, so its center crop changes nothing and normalisation
    is the processor's. Prediction averages the crops' logits into one score.
    """
    height, width = processor_crop_size(processor)
    resizes = getattr(processor, "do_resize", False)
    if crops <= 1 or resizes or image.width < width or image.height < height:
        return processor(image, return_tensors="pt")["pixel_values"]
    boxes = [(x, y, x + width, y + height) for x, y in crop_origins(crops, image.width, image.height, width, height)]
    return processor([image.crop(box) for box in boxes], return_tensors="pt")["pixel_values"]

