"""What happens to images in the wild: lossy re-saves, downscaling, blur.

Pure PIL -> PIL functions shared by the robustness sweep (`modeling.evaluation.robustness`) and
the web demo's stability check, so both degrade an image the same way.
"""

from __future__ import annotations

import io

from PIL import Image, ImageFilter


def reencode(image: Image.Image, format: str = "JPEG", quality: int = 75) -> Image.Image:
    """Save and reload with a lossy codec (JPEG, WEBP), as an upload or a messenger would."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=format, quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def downscale(image: Image.Image, factor: float = 0.5) -> Image.Image:
    """Bicubic resize of both sides by factor (PIL antialiases when shrinking), at least 1 px a side."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC)


def gaussian_blur(image: Image.Image, sigma: float = 1.0) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))  # PIL's radius is the standard deviation
