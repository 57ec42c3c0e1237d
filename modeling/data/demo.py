"""A small, offline, deterministic dataset in the exact ArtiFact layout, for the demo and tests.

Real content is procedurally generated (no photographs are shipped or downloaded): smooth 1/f
"natural" backgrounds, textured shapes with soft edges, and sensor noise, rendered at a larger
size the way a camera would. "AI" images are the *same kind of content* passed through a
generator-like decoder: the scene is encoded to a low-resolution latent and decoded back with
learned-looking upsampling layers (nearest/transposed-conv upsampling + fixed 3x3 filters), which
leaves the band-limited, periodic traces that GAN and latent-diffusion decoders leave.

Both classes then go through ArtiFact's own recipe (random square crop of side 160..min(W, H),
resize to 200 - antialiased when shrinking, bicubic when enlarging - and JPEG at a random quality
in 65..100), so size, format and compression carry no label signal, as in ArtiFact.

Sources (one folder each, `metadata.csv` with image_path,target,category):
- real: `scenes`, `textures` (two content styles)
- ai:   `upconv_gan` (nearest x2 upsampling + 3x3 convs, two stages: a GAN-like decoder),
        `latent_decoder` (x4 latent, transposed-conv upsampling: a latent-diffusion-like decoder,
        a differently made fingerprint, meant to be held out of training as the unseen generator)
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modeling.data.generated import GeneratedSet, set_exists, write_set
from modeling.system import available_cores

logger = logging.getLogger(__name__)

ARTIFACT_SIZE = 200
DEMO_DATA_DIR = Path("data/demo")  # the demo's own folder (configs/demo.yaml), relative to the working directory
DEMO_MARKER = ".demo_data.json"  # the spec that wrote the folder; hidden, so the ArtiFact index ignores it
REAL_SOURCES = ("scenes", "textures")
AI_SOURCES = ("upconv_gan", "latent_decoder")
# target codes as in ArtiFact copies: 0 real, non-zero a generator-family code (not always 1)
TARGETS = {"scenes": 0, "textures": 0, "upconv_gan": 1, "latent_decoder": 6}
CATEGORIES = ("blobs", "stripes", "landscape", "clutter")


@dataclass
class DemoSpec:
    """How many images per source, and the seed that fixes every pixel."""

    images_per_source: int = 600
    seed: int = 0
    # near ArtiFact's 200 px, so its crop-and-resize keeps a scale near 1 and the trace survives
    min_render: int = 200
    max_render: int = 224
    # ArtiFact cropped a side of 160..min(W, H) and resized it to 200; 200..200 keeps native pixels
    min_crop: int = 200
    max_crop: int | None = 200


# ---------------------------------------------------------------- content ("the world")
def _pink_noise(rng: np.random.Generator, h: int, w: int, alpha: float) -> np.ndarray:
    """Gaussian field with a 1/f^alpha amplitude spectrum (natural images sit near alpha=1)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal((h, w // 2 + 1)) + 1j * rng.standard_normal((h, w // 2 + 1))) / f**alpha
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(h, w))
    return (field / (field.std() + 1e-8)).astype(np.float32)


def _draw_shape(rng: np.random.Generator, img: np.ndarray, fields: list[np.ndarray], category: str) -> None:
    """Paint one textured, soft-edged superellipse into `img` in place (only inside its box)."""
    h, w = img.shape[:2]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(0.05, 0.35) * h, rng.uniform(0.05, 0.35) * w
    theta = rng.uniform(0, np.pi)
    power = 2.0 if category != "clutter" else rng.uniform(0.8, 6.0)
    edge = rng.uniform(0.5, 2.5)  # soft edges in pixels, as a lens renders them
    color = rng.uniform(0, 1, size=3).astype(np.float32)
    field = fields[int(rng.integers(len(fields)))]
    shift = (int(rng.integers(h)), int(rng.integers(w)))
    stripes = (rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4))
    reach = 1.5 * max(rx, ry) + 8  # the mask is ~0 beyond this: compute only inside the box
    y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
    x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    dist = np.abs(u) ** power + np.abs(v) ** power
    mask = (1 / (1 + np.exp(np.clip((dist - 1) * max(rx, ry) / edge, -30, 30))))[..., None]
    # textures reuse a few noise fields, shifted: one FFT per shape would dominate the cost
    texture = 0.15 * np.roll(field, shift, axis=(0, 1))[y0:y1, x0:x1, None]
    if category == "stripes":
        texture = texture + 0.15 * np.sin(xx * stripes[0] + yy * stripes[1])[..., None]
    region = img[y0:y1, x0:x1]
    region[:] = region * (1 - mask) + (color + texture) * mask


def render_scene(rng: np.random.Generator, h: int, w: int, style: str) -> tuple[np.ndarray, str]:
    """A float RGB image in [0, 1] of shape (H, W, 3) and its content category."""
    category = str(rng.choice(CATEGORIES))
    fields = [_pink_noise(rng, h, w, a) for a in (0.9, 1.3)]
    base = rng.uniform(0.2, 0.8, size=3)
    tint = rng.uniform(-0.25, 0.25, size=3)
    img = base + 0.12 * _pink_noise(rng, h, w, 1.6)[..., None] * (1 + tint)
    img = img.astype(np.float32)
    if category == "landscape":  # a horizon: sky above, ground below
        horizon = h * rng.uniform(0.3, 0.7) + 0.1 * h * _pink_noise(rng, 1, w, 1.8)[0]
        ground = rng.uniform(0.1, 0.6, size=3)
        yy = np.arange(h, dtype=np.float32)[:, None]
        mask = 1 / (1 + np.exp(np.clip(-(yy - horizon) / 1.5, -30, 30)))
        img = img * (1 - mask[..., None]) + (ground + 0.1 * fields[1][..., None]) * mask[..., None]
    n_shapes = int(rng.integers(3, 9)) if style == "scenes" else int(rng.integers(1, 4))
    for _ in range(n_shapes):
        _draw_shape(rng, img, fields, category)
    if style == "textures":  # fine texture everywhere, like foliage or fabric
        img = img + 0.08 * fields[0][..., None]
    # camera: photon + read noise at full resolution
    img = img + rng.normal(0, rng.uniform(0.004, 0.015), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32), category


# ---------------------------------------------------------------- "generators"
def _conv3x3(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per-channel 3x3 correlation with reflect padding; (H, W, C) -> (H, W, C)."""
    pad = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    for dy in range(3):
        for dx in range(3):
            out += kernel[dy, dx] * pad[dy : dy + h, dx : dx + w]
    return out


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Area-average encoder stand-in: (H, W, C) -> (H/f, W/f, C)."""
    h, w, c = img.shape
    h, w = h // factor * factor, w // factor * factor
    return img[:h, :w].reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def _fixed_kernel(seed: int) -> np.ndarray:
    """A fixed, 'learned-looking' 3x3 filter summing to 1 (a generator's weights do not change)."""
    k = np.random.default_rng(seed).normal(0, 0.12, size=(3, 3))
    k[1, 1] += 1.0
    return k / k.sum()


_GAN_KERNELS = (_fixed_kernel(101), _fixed_kernel(102))
_GAN_BIAS = np.random.default_rng(103).normal(0, 0.08, size=(2, 2, 3))  # per-phase bias: checkerboard
# the first decoder layer's bias pattern, carried through three x2 upsamplings: an 8-pixel grid
# (latent-diffusion VAEs and progressive GANs leave such period-8 traces)
_GAN_GRID = np.random.default_rng(104).normal(0, 0.05, size=(8, 8, 3))
# 4x4 stride-2 transposed conv: bilinear weights, perturbed the way trained weights are, so the
# four output phases get slightly different gains (the checkerboard of Odena et al., 2016)
_LDM_KERNEL = np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]) + np.random.default_rng(201).normal(
    0, 0.08, size=(4, 4)
)


def _upconv_gan(img: np.ndarray) -> np.ndarray:
    """Nearest-x2 + 3x3 conv stages from a x4 latent, each adding its per-phase bias: GAN-like traces."""
    x = _downsample(img, 4)
    for k in _GAN_KERNELS:
        x = x.repeat(2, axis=0).repeat(2, axis=1)
        x = _conv3x3(x, k)
        h, w = x.shape[:2]
        x = x + np.tile(_GAN_BIAS, (h // 2, w // 2, 1))
    h, w = x.shape[:2]
    return x + np.tile(_GAN_GRID, (h // 8 + 1, w // 8 + 1, 1))[:h, :w]


def _transposed_conv_x2(x: np.ndarray) -> np.ndarray:
    """Stride-2 transposed conv with a 4x4 kernel: uneven overlap gives checkerboard artifacts."""
    h, w, c = x.shape
    out = np.zeros((2 * h + 2, 2 * w + 2, c), dtype=x.dtype)
    k = _LDM_KERNEL / _LDM_KERNEL.sum() * 4  # each output pixel gets ~1x the input on average
    for dy in range(4):
        for dx in range(4):
            out[dy : dy + 2 * h : 2, dx : dx + 2 * w : 2] += k[dy, dx] * x
    return out[1 : 2 * h + 1, 1 : 2 * w + 1]


def _latent_decoder(img: np.ndarray) -> np.ndarray:
    """x4 latent decoded by two transposed-conv upsamplings: a latent-diffusion-like trace."""
    x = _downsample(img, 4)
    for _ in range(2):
        x = _transposed_conv_x2(x)
    return x


GENERATORS = {"upconv_gan": _upconv_gan, "latent_decoder": _latent_decoder}


# ---------------------------------------------------------------- ArtiFact's own recipe
def artifact_postprocess(
    img: np.ndarray, rng: np.random.Generator, min_side: int = 160, max_side: int | None = None
) -> bytes:
    """Random square crop (min_side..min(W, H)), resize to 200, JPEG at quality 65..100, as ArtiFact did.

    ArtiFact's sides run from 160 to the image size; the demo uses 200..200 (a native crop, no
    resampling) so that a tiny model learns the trace in minutes. Both classes get the same recipe.
    """
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    w, h = pil.size
    top_side = min(w, h, max_side or min(w, h))
    side = int(rng.integers(min(min_side, top_side), top_side + 1))
    left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    pil = pil.crop((left, top, left + side, top + side))
    # PIL's resize antialiases when shrinking; bicubic when enlarging
    pil = pil.resize((ARTIFACT_SIZE, ARTIFACT_SIZE), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(rng.integers(65, 101)))
    return buf.getvalue()


def make_image(source: str, index: int, spec: DemoSpec) -> tuple[bytes, str]:
    """JPEG bytes and category of image `index` of `source`; a pure function of its arguments."""
    source_id = (REAL_SOURCES + AI_SOURCES).index(source)
    rng = np.random.default_rng([spec.seed, source_id, index])
    size = int(rng.integers(spec.min_render, spec.max_render + 1)) // 4 * 4
    style = str(rng.choice(REAL_SOURCES)) if source in AI_SOURCES else source
    img, category = render_scene(rng, size, size, style)
    if source in GENERATORS:
        img = GENERATORS[source](img)
    return artifact_postprocess(img, rng, spec.min_crop, spec.max_crop), category


def make_large_image(source: str, index: int, size: int = 400, seed: int = 1) -> Image.Image:
    """A larger-than-200 px image straight from the 'camera' or 'generator' (JPEG q95, no ArtiFact crop).

    Users score photos larger than ArtiFact's 200 px; these test what each preprocessing choice
    (native crop vs resize, one crop vs several) does to the trace at such sizes.
    """
    return Image.open(io.BytesIO(large_image_bytes(source, index, size, seed)))


def large_image_bytes(source: str, index: int, size: int = 400, seed: int = 1) -> bytes:
    """The JPEG file of `make_large_image`."""
    source_id = (REAL_SOURCES + AI_SOURCES).index(source)
    rng = np.random.default_rng([seed, 1000 + source_id, index])
    style = str(rng.choice(REAL_SOURCES)) if source in AI_SOURCES else source
    img, _ = render_scene(rng, size, size, style)
    if source in GENERATORS:
        img = GENERATORS[source](img)
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _image_job(source: str, index: int, seed: int, prepared: Any, *, spec: DemoSpec) -> tuple[bytes, str]:
    """`make_image` as the shared writer calls it: the seed comes with the job, the render sizes with `spec`."""
    return make_image(source, index, replace(spec, seed=seed))


def demo_set(spec: DemoSpec) -> GeneratedSet:
    """The demo data of `spec` as a generated set (its image count and seed go to `write_set`)."""
    return GeneratedSet(
        name="demo",
        targets=TARGETS,
        categories=CATEGORIES,
        make_image=partial(_image_job, spec=spec),  # a partial of a module-level function: the workers can load it
        root=DEMO_DATA_DIR,
        description="the demo's training data: 1/f scenes and two upsampling decoders",
    )


def make_demo_data(root: str | Path, spec: DemoSpec | None = None, progress: bool = True) -> Path:
    """Write the demo dataset under `root` in the ArtiFact layout; returns the root.

    Deterministic: the same spec writes byte-identical files. Writes each source's
    `metadata.csv` last, so an interrupted run leaves no folder that claims missing images.
    """
    spec = spec or DemoSpec()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text(json.dumps(asdict(spec)) + "\n")  # first: the folder is the demo's from now on
    # rendering is numpy-bound: one process per core
    workers = min(available_cores(), 8)
    write_set(demo_set(spec), root, spec.images_per_source, spec.seed, workers=workers, progress=progress)
    logger.info("wrote %d demo images to %s", spec.images_per_source * len(TARGETS), root)
    return root


def demo_data_exists(root: str | Path) -> bool:
    """True when every demo source folder has its metadata.csv (written last, so complete)."""
    return set_exists(demo_set(DemoSpec()), root)


def is_demo_data(root: str | Path) -> bool:
    """True for a folder `make_demo_data` wrote (it leaves its marker there first)."""
    return (Path(root) / DEMO_MARKER).is_file()


def may_generate_into(root: str | Path) -> bool:
    """Whether training may write demo data into `root`: only the demo's own folder (DEMO_DATA_DIR),
    and only while it is absent, empty or already the demo's. A user's folder is never written."""
    root = Path(root)
    if root.resolve() != DEMO_DATA_DIR.resolve():
        return False
    return not root.exists() or is_demo_data(root) or not any(root.iterdir())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write the offline demo dataset in the ArtiFact layout.")
    parser.add_argument("--output_dir", default="data/demo", help="where to write (default: data/demo)")
    parser.add_argument("--images_per_source", type=int, default=DemoSpec.images_per_source)
    parser.add_argument("--seed", type=int, default=DemoSpec.seed)
    return parser
