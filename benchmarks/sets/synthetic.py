"""What the generated evaluation sets share: array/tensor conversions, PIL resizing in float mode (the sensor's
area-averaging shrink among them), a Gaussian blur, random colours, pixel grids, and the blind and sealed sets'
common recipe for one image. One owner, so that the sets' bytes cannot drift apart by a copy being edited.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from modeling.data.demo import artifact_postprocess  # ArtiFact's finish, one owner
from modeling.data.generated import GeneratedSet

# the blind and sealed sets: each image rendered at a side of 200..264 px (rounded down to a multiple of 8),
# then ArtiFact's finish from a crop side of 160 up
RENDER_MIN, RENDER_MAX = 200, 264
MIN_CROP = 160
REAL_SHARE = 1.5  # images per real source = 1.5 x images_per_source: two real sources as many as three AI ones
RealImage = Callable[[str, np.random.Generator, int], tuple[np.ndarray, str]]  # (source, rng, side) -> image, category
GeneratorFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # (real image, rng) -> its fake


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array -> (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]


def to_array(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) float32 array."""
    return x[0].permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def resize(img: np.ndarray, w: int, h: int, method: Image.Resampling) -> np.ndarray:
    """Resize a float (H, W, C) image per channel in PIL's float mode (antialiased when shrinking)."""
    chans = [np.asarray(Image.fromarray(img[..., c]).resize((w, h), method)) for c in range(img.shape[2])]
    return np.stack(chans, axis=-1).astype(np.float32)


def shrink(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-average resize: how a sensor integrates a finer image."""
    return resize(img, w, h, Image.Resampling.BOX)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (1, C, H, W) tensor, replicate padding."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k[:, :, None, :], groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k[:, :, :, None], groups=x.shape[1])


def random_colour(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    """A random RGB colour, each channel in lo..hi."""
    return rng.uniform(lo, hi, size=3).astype(np.float32)


def pixel_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1): (y, x), each (n, n)."""
    axis = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.meshgrid(axis, axis, indexing="ij")


def finished_image(
    source: str,
    index: int,
    seed: int,
    prepared: None = None,
    *,
    sources: tuple[str, ...],
    real_image: RealImage,
    generators: Mapping[str, GeneratorFn],
) -> tuple[bytes, str]:
    """JPEG bytes and category of image `index` of `source` in a set whose fakes are its real content passed through
    a generator: a real source's content (a random real source's, for an AI source), its generator, ArtiFact's
    finish. A pure function of its arguments, at a fixed torch thread count (a convolution's sums depend on it)."""
    real_sources = tuple(s for s in sources if s not in generators)
    rng = np.random.default_rng([seed, sources.index(source), index])
    size = int(rng.integers(RENDER_MIN, RENDER_MAX + 1)) // 8 * 8
    content = source if source in real_sources else str(rng.choice(real_sources))
    img, category = real_image(content, rng, size)
    if source in generators:
        img = generators[source](img, rng)
    return artifact_postprocess(img, rng, min_side=MIN_CROP), category


def camera_set(
    name: str,
    targets: Mapping[str, int],
    categories: Mapping[str, tuple[str, ...]],
    real_image: RealImage,
    generators: Mapping[str, GeneratorFn],
    description: str,
) -> GeneratedSet:
    """A set made by `finished_image`: real sources (`categories` maps each to its own) and AI sources (`generators`)
    in `targets`' order, REAL_SHARE times as many images per real source, kept in data/<name>."""
    return GeneratedSet(
        name=name,
        targets=targets,
        categories=tuple(c for cats in categories.values() for c in cats),
        # a partial of a module-level function, with module-level functions bound: the workers can load it
        make_image=partial(finished_image, sources=tuple(targets), real_image=real_image, generators=generators),
        root=Path("data") / name,
        real_share=REAL_SHARE,
        description=description,
    )
