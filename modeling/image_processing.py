"""The one preprocessing path: decoding, the saved image processor, and batching.

Training, evaluation, prediction and the web demo all decode with `load_image` and normalise with
the image processor saved beside the weights, so every consumer sees the same pixels. Training's
augmentations (`modeling.augmentation`) run between the two, and only there.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers import BitImageProcessor, ConvNextImageProcessor
from transformers.image_processing_utils import BaseImageProcessor

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROCESSOR_KINDS = ("crop", "resize")
# what training indexes in a folder and prediction picks up from one: the formats PIL decodes here
IMAGE_EXTENSIONS = frozenset(".jpg .jpeg .jpe .jfif .png .webp .gif .bmp .tif .tiff .avif .ppm .pgm .pbm".split())

ImageInput = str | Path | bytes | Image.Image | dict


def is_image_name(name: str | Path) -> bool:
    """True for a file name with one of IMAGE_EXTENSIONS (any case)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


class ImageLoadError(ValueError):
    """An input that cannot be turned into an RGB image; the message names the file and the cause."""


def load_image(image: ImageInput) -> Image.Image:
    """Decode any supported input to an 8-bit RGB PIL image, the way `pipeline` does.

    Mirrors `transformers.image_utils.load_image` (EXIF orientation applied, then `convert("RGB")`)
    so that our predictions equal `pipeline("image-classification")`'s, with two additions that
    `convert` gets wrong: 16-bit images are scaled to 8 bits instead of clipped to white, and
    animated files use their first frame. Accepts a path, raw bytes, a PIL image, or the
    `{"bytes", "path"}` dict that `datasets.Image(decode=False)` yields.
    """
    name = _describe(image)
    try:
        pil = _open(image)
        pil.seek(0)  # animated GIF/WebP: score the first frame
        pil = ImageOps.exif_transpose(pil)
        if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
            pil = _to_8bit(pil)
        pil = pil.convert("RGB")
        pil.load()
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"{name}: too many pixels ({err}); downscale it first") from err
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageLoadError(f"{name}: cannot decode image ({err})") from err
    if min(pil.size) < 1:
        raise ImageLoadError(f"{name}: image has no pixels")
    return pil


def _describe(image: ImageInput) -> str:
    if isinstance(image, dict):
        return str(image.get("path") or "<bytes>")
    if isinstance(image, (str, Path)):
        return str(image)
    return f"<{type(image).__name__}>"


def _open(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, dict):
        data, path = image.get("bytes"), image.get("path")
        image = data if data is not None else path
        if image is None:
            raise ImageLoadError("image record has neither bytes nor path")
    if isinstance(image, bytes):
        if not image:
            raise ImageLoadError("<bytes>: empty file")
        return Image.open(io.BytesIO(image))
    path = Path(image)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    with warnings.catch_warnings():
        # PIL warns (not raises) between 1x and 2x the pixel limit; treat that as an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombWarning as err:
            raise Image.DecompressionBombError(str(err)) from err


def _to_8bit(pil: Image.Image) -> Image.Image:
    """Scale a 16/32-bit integer grayscale image to 8 bits by its type's range."""
    arr = np.asarray(pil, dtype=np.float64)
    # I;16* is 16-bit by definition (a dark one must stay dark); mode "I" does not say, so look at the values
    top = 65535.0 if pil.mode.startswith("I;16") or arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


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


class BatchTransform:
    """`dataset.with_transform` callable: decode, (augment), process -> pixel_values + labels.

    An image that fails to decode yields `pixel_values=None`; `collate_fn` drops it and counts it,
    so one bad file in epoch 17 cannot end a run. `sample_transform(image, label) -> (image, label)`
    runs first on the decoded image and may change the label (training's self-made fakes). With
    `processor_geometry=False` the transforms have already cropped (training's random crop) and the
    processor only rescales and normalises; otherwise a smaller training crop would be zero-padded
    back to the processor's size.
    """

    def __init__(
        self,
        processor: BaseImageProcessor,
        train_transforms: Callable[[Image.Image], torch.Tensor] | None = None,
        processor_geometry: bool = True,
        sample_transform: Callable[[Image.Image, int], tuple[Any, int]] | None = None,
    ):
        self.processor = processor
        self.train_transforms = train_transforms
        self.processor_kwargs = {} if processor_geometry else {"do_resize": False, "do_center_crop": False}
        self.sample_transform = sample_transform

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        pixel_values: list[torch.Tensor | None] = []
        labels = list(batch["label"]) if "label" in batch else None
        for i, record in enumerate(batch["image"]):
            try:
                image = load_image(record)
            except ImageLoadError as err:
                logger.warning("skipping unreadable image: %s", err)
                pixel_values.append(None)
                continue
            if self.sample_transform is not None and labels is not None:
                image, labels[i] = self.sample_transform(image, int(labels[i]))
            if self.train_transforms is not None:
                image = self.train_transforms(image)
            processed = self.processor(image, return_tensors="pt", **self.processor_kwargs)
            pixel_values.append(processed["pixel_values"][0])
        out: dict[str, list[Any]] = {"pixel_values": pixel_values}
        if labels is not None:
            out["labels"] = labels
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
    if "labels" in good[0]:
        batch["labels"] = torch.tensor([ex["labels"] for ex in good], dtype=torch.long)
    return batch
