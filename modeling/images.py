"""Decoding: any supported input to the 8-bit RGB image that training, evaluation and prediction all see.

`load_image` is the one decoder of the package (training's `BatchTransform`, evaluation, `Detector`, the web
demo, file validation), so every consumer sees the same pixels; `IMAGE_EXTENSIONS` is the one list of the
file types a folder is searched for.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

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

