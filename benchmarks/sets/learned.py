"""The learned-decoder set: a sealed evaluation set in the ArtiFact layout whose fakes are reconstructions by small
autoencoders trained on the set's own real content, each with a decoder unlike the upsampling layers the detector's
self-made fakes use (nearest or bilinear x2 + conv, 4x4 stride-2 transposed conv, conv + pixel shuffle).

Never tune a detector against it, nor train the recipe on it while choosing settings. Its trace strengths were set
with a plain CNN only (`benchmarks.baseline_cnn`), never with the recipe.

Real sources (target 0), each scene rendered at 1x-1.5x the image size, blurred by the lens and area-averaged onto
the sensor grid, then shot by `synthetic`'s phone-like camera: RGGB mosaic with shot and read noise at 10 bits,
white balance, Malvar-He-Cutler demosaic, a colour matrix, guided-filter luma and blurred chroma noise reduction, an
exponential-shoulder sRGB tone curve with an S-curve, cored luma sharpening and the camera's JPEG (4:2:0).
- ``indoor``: book spines on shelves (rounded spines, title bands, boards), a floor of wooden planks (growth rings
  of a tilted log cut flat, so cathedral arches; knots; gaps and end joints; a varnish sheen).
- ``outdoor``: a beach of pebbles (domed stones with speckles and quartz veins, wet highlights, contact shadows on
  sand), farmland from the air (fields cut by wavy lines, crop rows per field, roads, hedgerows and trees).

AI sources (each reconstructs the images of both real sources, picked per image, so content is no cue). Each is an
autoencoder (a patch-embedding encoder: pixel unshuffle and convs, then its decoder) fitted by `fit_decoders` in the
set's prepare() on a separate pool of real content (another seed stream than any written image's), with an L1 loss
plus an L1 loss between amplitude spectra (which asks the decoder for fine-detail energy, as perceptual and
adversarial losses do), Adam, one thread, a fixed number of steps. A fake is the real image moved MIX of the way to
its reconstruction (a trace strength: at 1 the reconstructions' blur alone gives them away):
- ``skip_decoder`` (target 13): StyleGAN2-like skip decoder from a x8 latent: 3x3 stride-2 transposed convs
  followed by the [1, 3, 3, 1] FIR blur; a toRGB at every scale, the RGB sum upsampled by the same FIR.
- ``groupnorm_decoder`` (target 14): residual blocks (GroupNorm, SiLU, 3x3 convs) and bicubic x2 upsampling from
  a x4 latent, as in latent-diffusion VAE decoders.
- ``transposed3_decoder`` (target 15): 3x3 stride-2 transposed convolutions (uneven overlap of the kernel on the
  output grid: a checkerboard of phases) from a x2 latent.
- ``coordinate_decoder`` (target 16): a LIIF-like implicit decoder: a SIREN (sine-activated per-pixel MLP) reads
  the features of the four nearest cells of a x4 latent grid and the pixel's offset from each, blended by area.

GENERATOR_SEED fixes the training pool, the initial weights and the batches, whatever the dataset seed.
`synthetic.finished_image` makes each image from these parts and gives both classes ArtiFact's finish.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.sets import synthetic
from benchmarks.sets.synthetic import fit_on_crops, pixel_grid, random_colour, smooth_field
from modeling.data.generated import GeneratedSet

GENERATOR_SEED = 6_472_015  # fixes the decoders' training pool, initial weights and batches
TARGETS = {"indoor": 0, "outdoor": 0, "skip_decoder": 13, "groupnorm_decoder": 14, "transposed3_decoder": 15,
           "coordinate_decoder": 16}  # fmt: skip
CATEGORIES = {"indoor": ("bookshelf", "planks"), "outdoor": ("pebbles", "farmland")}  # per real source
REAL_SOURCES = tuple(CATEGORIES)
# the decoders' sizes (latent stride, latent channels, width at the latent) and MIX, set with the plain CNN
# (baseline_cnn.py, 600 steps, the four decoders together) so that it lands between chance and trivial; frozen:
# every fake depends on them
SHAPES = {
    "skip_decoder": (8, 96, 32),
    "groupnorm_decoder": (4, 32, 32),
    "transposed3_decoder": (2, 8, 16),
    "coordinate_decoder": (4, 32, 16),
}
MIX = 0.35  # share of the reconstruction in a fake (the rest: the real image it reconstructs)
FIT = {"steps": 300, "batch": 8, "crop": 48, "pool": 24, "pool_side": 128, "spectral": 1.0}  # the fitting schedule
LEARNING_RATE = {"skip_decoder": 2e-3, "groupnorm_decoder": 2e-3, "transposed3_decoder": 2e-3,
                 "coordinate_decoder": 5e-4}  # fmt: skip


# ---------------------------------------------------------------- real content: indoor
def _bookshelf(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows of book spines standing on shelf boards against a shadowed back wall (linear light)."""
    y = (np.arange(n) + 0.5) / n
    x = (np.arange(n) + 0.5) / n
    rows = int(rng.integers(2, 5))
    pitch = rng.uniform(0.8, 1.1) / rows
    y = y + rng.uniform(0, pitch)
    row, v = (y // pitch).astype(np.int64), (y % pitch) / pitch  # v: 0 at the top of a shelf, 1 under its board
    widths = rng.uniform(0.012, 0.05, size=(row.max() + 1, 128)) * rng.uniform(0.7, 1.3)
    edges = np.cumsum(widths, 1) - rng.uniform(0, 0.05, size=(row.max() + 1, 1))
    book = np.stack([np.searchsorted(e, x) for e in edges])[row]  # (n, n): the book under each pixel
    left = np.pad(edges, ((0, 0), (1, 0)))[row[:, None], book]
    u = (x[None, :] - left) / widths[row[:, None], book]  # 0..1 across the spine
    board = rng.uniform(0.86, 0.92)
    height = rng.uniform(0.55, 0.95, size=widths.shape)[row[:, None], book] * board
    w = (board - v[:, None]) / height  # 0 at the spine's foot, 1 at its top
    colour = rng.uniform(0.02, 0.6, size=(*widths.shape, 3)) ** 1.5
    spine = colour[row[:, None], book] * (0.35 + 0.65 * np.sqrt(np.sin(np.pi * np.clip(u, 0, 1))))[..., None]
    centre, half = (rng.uniform(0.2, 0.8, size=widths.shape)[row[:, None], book], rng.uniform(0.03, 0.08))
    title = (np.abs(w - centre) < half)[..., None] & (np.abs(u - 0.5) < 0.38)[..., None]
    spine = np.where(title, random_colour(rng, 0.4, 0.9) * np.array([1.0, 0.8, 0.4]), spine)
    wall = random_colour(rng, 0.05, 0.2) * (0.2 + 0.5 * v[:, None, None])
    present = (rng.random(widths.shape) > 0.08)[row[:, None], book]
    img = np.where(((w > 0) & (w < 1) & present)[..., None], spine, wall)
    wood = random_colour(rng, 0.25, 0.6) * np.array([1.0, 0.7, 0.45])
    img = np.where((v > board)[:, None, None], wood * (1.2 - 0.6 * (v[:, None, None] - board) / (1 - board)), img)
    light = 0.5 + 0.5 * np.clip(1 - np.abs(x - rng.uniform(0, 1)) * rng.uniform(0.3, 1.2), 0, 1)
    return (img * light[None, :, None]).astype(np.float32)


def _planks(rng: np.random.Generator, n: int) -> np.ndarray:
    """A wooden floor: boards sawn from tilted logs (cathedral grain), knots, gaps, end joints, a varnish sheen."""
    yy, xx = pixel_grid(n)
    theta = rng.uniform(-0.3, 0.3)
    u, v = xx * np.cos(theta) + yy * np.sin(theta), -xx * np.sin(theta) + yy * np.cos(theta)
    width = rng.uniform(0.1, 0.22)
    lane, t = np.floor(v / width).astype(np.int64) + 8, (v / width) % 1
    length = rng.uniform(0.6, 1.5)
    seg = np.floor(u / length + rng.uniform(0, 1, size=64)[lane]).astype(np.int64)
    board = (lane * 7 + seg * 13) % 256  # which board a pixel lies on
    pith = rng.uniform(0.3, 2.5, size=256)[board] * rng.choice([-1, 1], size=256)[board] * width
    tilt = rng.uniform(-0.12, 0.12, size=256)[board]  # the log's axis against the board: arches along it
    across = (t - 0.5) * width
    depth = pith + tilt * (u - rng.uniform(0, 1, size=256)[board])
    radius = np.sqrt(across**2 + depth**2) + 0.004 * smooth_field(rng, n, n, 6)
    for _ in range(int(rng.integers(0, 4))):  # knots: grain swirls around them
        ky, kx = rng.uniform(0, 1, size=2)
        radius += 0.02 * np.exp(-((yy - ky) ** 2 + (xx - kx) ** 2) / rng.uniform(0.0002, 0.001))
    rings = (radius * rng.uniform(40, 90)) % 1
    late = np.clip((rings - 0.65) / 0.25, 0, 1)[..., None]
    tint = rng.uniform(0.85, 1.15, size=(256, 3))[board]
    early = rng.uniform(0.45, 0.85) * np.array([1.0, 0.68, 0.4]) * rng.uniform(0.9, 1.1, size=3)
    img = (early * (1 - 0.55 * late) * tint) ** 2.2
    gap = (np.minimum(t, 1 - t) * width < 0.002) | ((u / length + rng.uniform(0, 1, size=64)[lane]) % 1 < 0.004)
    img = np.where(gap[..., None], img * 0.15, img)
    sy, sx = rng.uniform(0, 1, size=2)
    sheen = np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / rng.uniform(0.02, 0.2))[..., None] * rng.uniform(0, 0.4)
    return (img * (1 - 0.3 * yy[..., None]) + sheen).astype(np.float32)


# ---------------------------------------------------------------- real content: outdoor
def _stone(rng: np.random.Generator, img: np.ndarray, speck: np.ndarray, light: np.ndarray) -> None:
    """Paint one domed pebble into img (in place, inside its box): contact shadow, speckles, a vein, a highlight."""
    n = img.shape[0]
    cy, cx = rng.uniform(-0.05, 1.05, size=2) * n
    ry, rx = rng.uniform(0.02, 0.09, size=2) * n
    th = rng.uniform(0, np.pi)
    reach = int(1.5 * max(ry, rx)) + 2
    y0, y1, x0, x1 = max(0, int(cy) - reach), min(n, int(cy) + reach), max(0, int(cx) - reach), min(n, int(cx) + reach)
    if y0 >= y1 or x0 >= x1:
        return
    dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32) - np.array([cy, cx], dtype=np.float32)[:, None, None]
    a, b = (dx * np.cos(th) + dy * np.sin(th)) / rx, (-dx * np.sin(th) + dy * np.cos(th)) / ry
    d = np.sqrt(a * a + b * b)
    region = img[y0:y1, x0:x1]
    region *= (1 - 0.6 * np.exp(-np.clip(d - 1, 0, None) * 6) * (d > 1))[..., None]  # contact shadow on sand
    z = np.sqrt(np.clip(1 - d * d, 0, 1))
    ny, nx = dy / max(ry, rx), dx / max(ry, rx)
    shade = np.clip(ny * light[0] + nx * light[1] + z * light[2], 0, 1)
    grey = rng.uniform(0.1, 0.7) * rng.uniform(0.85, 1.15, size=3) * np.array([1.0, 0.95, 0.85])
    body = grey * (1 + 0.25 * speck[y0:y1, x0:x1, None])
    if rng.random() < 0.3:  # a quartz vein across the stone
        body = np.where((np.abs(a * rng.uniform(-1, 1) + b - rng.uniform(-0.5, 0.5)) < 0.08)[..., None], 0.8, body)
    spec = np.clip(z * light[2] + ny * light[0] + nx * light[1], 0, 1) ** 60 * rng.uniform(0, 0.8)
    stone = body * (0.2 + 0.8 * shade[..., None]) + spec[..., None]
    mask = np.clip((1 - d) * max(rx, ry) / 1.2, 0, 1)[..., None]
    region[:] = region * (1 - mask) + stone * mask


def _pebbles(rng: np.random.Generator, n: int) -> np.ndarray:
    """A pebble beach from above: sand, then stones from back to front."""
    sand = rng.uniform(0.5, 0.85) * np.array([1.0, 0.85, 0.65]) * rng.uniform(0.92, 1.08, size=3)
    img = (sand * (1 + 0.06 * smooth_field(rng, n, n, n // 3) + 0.05 * smooth_field(rng, n, n, 6))[..., None]) ** 2.2
    img = img.astype(np.float32)
    speck = np.clip(smooth_field(rng, n, n, n // 2), -2, 2)
    light = np.array([-rng.uniform(0.2, 0.6), rng.uniform(-0.5, 0.5), 0.8])
    light /= np.linalg.norm(light)
    for _ in range(int(rng.integers(20, 90))):
        _stone(rng, img, speck, light)
    return img


def _farmland(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fields from the air: cells cut by wavy lines, crop rows per field, some lines roads, others hedgerows."""
    yy, xx = pixel_grid(n)
    k = int(rng.integers(4, 9))
    angles, offsets = rng.uniform(0, np.pi, size=k), rng.uniform(0.1, 0.9, size=k)
    side = [xx * np.cos(a) + yy * np.sin(a) - o * (np.cos(a) + np.sin(a)) for a, o in zip(angles, offsets, strict=True)]
    side = [s + 0.015 * smooth_field(rng, n, n, 3) for s in side]
    cell = sum((s > 0).astype(np.int64) << i for i, s in enumerate(side)) % 512
    crops = np.array([[0.12, 0.3, 0.06], [0.35, 0.45, 0.1], [0.6, 0.5, 0.2], [0.3, 0.2, 0.12], [0.2, 0.4, 0.15]])
    colour = crops[rng.integers(0, len(crops), size=512)] * rng.uniform(0.75, 1.25, size=(512, 3))
    phi, period = rng.uniform(0, np.pi, size=512)[cell], rng.uniform(0.006, 0.03, size=512)[cell]
    rows = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(phi) + yy * np.sin(phi)) / period)
    img = colour[cell] * (1 - rng.uniform(0.1, 0.4) * rows[..., None])
    for s in side:
        kind = rng.random()
        edge = np.abs(s) < rng.uniform(0.002, 0.006)
        if kind < 0.35:  # a road
            img = np.where(edge[..., None], random_colour(rng, 0.4, 0.6), img)
        elif kind < 0.8:  # a hedgerow, broken by gaps
            hedge = edge & (smooth_field(rng, n, n, 20) > -0.3)
            img = np.where(hedge[..., None], np.array([0.05, 0.12, 0.04]), img)
    trees = smooth_field(rng, n, n, n // 6) > 2.0
    img = np.where(trees[..., None], np.array([0.03, 0.09, 0.03]), img)
    haze = rng.uniform(0, 0.2)
    return ((1 - haze) * img + haze * np.array([0.55, 0.6, 0.7])).astype(np.float32) ** 2.2


SCENES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "bookshelf": _bookshelf,
    "planks": _planks,
    "pebbles": _pebbles,
    "farmland": _farmland,
}


def _real_image(source: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A real image of `source`: a scene rendered at 1x-1.5x, through the lens onto the sensor, shot by the camera."""
    category = str(rng.choice(CATEGORIES[source]))
    scale = float(rng.uniform(1.0, 1.5))
    scene = SCENES[category](rng, int(round(size * scale)))
    return synthetic.shoot(rng, synthetic.optics(rng, scene, size, scale)), category


# ---------------------------------------------------------------- the autoencoders (fitted in prepare())
def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    """A conv with replicate padding that keeps the size (k = 3) or halves it (k = 4, stride 2)."""
    return nn.Conv2d(cin, cout, k, stride, padding=1, padding_mode="replicate")


def _widths(width: int, stages: int) -> list[int]:
    """Channels from the latent up: halved at each x2 stage, as in real decoders, never below 8."""
    return [max(8, width >> i) for i in range(stages + 1)]


def _encoder(stride: int, width: int, latent: int) -> nn.Sequential:
    """A patch embedding: pixel unshuffle to 1/stride, a 1x1 conv, SiLU, a 3x3 conv to the latent channels."""
    return nn.Sequential(
        nn.PixelUnshuffle(stride), nn.Conv2d(3 * stride * stride, 2 * width, 1), nn.SiLU(), _conv(2 * width, latent)
    )


def _fir(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """The [1, 3, 3, 1] FIR (unit sum times gain) as a depthwise kernel for x's channels."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    return (torch.outer(k, k) * gain / 64).expand(x.shape[1], 1, 4, 4)


class SkipDecoder(nn.Module):
    """StyleGAN2's skip architecture: per scale a 3x3 stride-2 transposed conv, the FIR blur, a 3x3 conv and a
    toRGB; the running RGB image is upsampled by the FIR (zero insertion, gain 4) and the scale's toRGB added."""

    def __init__(self, latent: int, width: int, stages: int) -> None:
        super().__init__()
        w = _widths(width, stages)
        self.inp = _conv(latent, w[0])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w[i], w[i + 1], 3, 2) for i in range(stages))
        self.convs = nn.ModuleList(_conv(w[i + 1], w[i + 1]) for i in range(stages))
        self.to_rgb = nn.ModuleList(nn.Conv2d(c, 3, 1) for c in w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.inp(z), 0.2)
        rgb = self.to_rgb[0](x)
        for up, conv, to_rgb in zip(self.ups, self.convs, self.to_rgb[1:], strict=True):
            x = up(x)  # (N, C, 2h + 1, 2w + 1)
            x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), _fir(x), groups=x.shape[1])  # -> (2h, 2w)
            x = F.leaky_relu(conv(x), 0.2)
            rgb = F.conv_transpose2d(rgb, _fir(rgb, 4), stride=2, padding=1, groups=3) + to_rgb(x)
        return rgb


class _ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv, twice, plus the input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        layers = [nn.GroupNorm(4, width), nn.SiLU(), _conv(width, width), nn.GroupNorm(4, width), nn.SiLU()]
        self.body = nn.Sequential(*layers, _conv(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GroupNormDecoder(nn.Module):
    """A latent-diffusion-VAE-like decoder: residual GroupNorm blocks, bicubic x2 upsampling + 3x3 conv per stage."""

    def __init__(self, latent: int, width: int, stages: int) -> None:
        super().__init__()
        w = _widths(width, stages)
        self.inp = _conv(latent, w[0])
        self.blocks = nn.ModuleList(_ResBlock(c) for c in w)
        self.convs = nn.ModuleList(_conv(w[i], w[i + 1]) for i in range(stages))
        self.out = nn.Sequential(nn.GroupNorm(4, w[-1]), nn.SiLU(), _conv(w[-1], 3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](self.inp(z))
        for conv, block in zip(self.convs, self.blocks[1:], strict=True):
            x = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
            x = block(conv(x))
        return self.out(x)


class Transposed3Decoder(nn.Module):
    """3x3 stride-2 transposed convs (output_padding 1): the kernel covers even and odd output phases unevenly."""

    def __init__(self, latent: int, width: int, stages: int) -> None:
        super().__init__()
        w = _widths(width, stages)
        self.inp = _conv(latent, w[0])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w[i], w[i + 1], 3, 2, 1, output_padding=1) for i in range(stages))
        self.out = _conv(w[-1], 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.inp(z), 0.2)
        for up in self.ups:
            x = F.leaky_relu(up(x), 0.2)
        return self.out(x)


def _siren_init(layer: nn.Conv2d, bound: float) -> nn.Conv2d:
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound)
    return layer


class CoordinateDecoder(nn.Module):
    """LIIF-like: each output pixel asks a SIREN about the four nearest latent cells (their features and its offset
    from each) and blends the four answers by the area of the opposite rectangle."""

    def __init__(self, latent: int, width: int, stages: int) -> None:
        super().__init__()
        self.stride = 2**stages
        self.features = _conv(latent, width)
        # SIREN's initialisation: sin(30 Wx), the first layer uniform in 1/fan_in, later ones in sqrt(6/fan_in)/30
        self.first = _siren_init(nn.Conv2d(width + 2, width, 1), 1 / (width + 2))
        self.hidden = _siren_init(nn.Conv2d(width, width, 1), math.sqrt(6 / width) / 30)
        self.out = nn.Conv2d(width, 3, 1)

    def _ask(self, near: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor) -> torch.Tensor:
        """The SIREN on one neighbour's features and the pixels' offsets (ry, rx) from it, in cells."""
        offset = torch.stack(torch.broadcast_tensors(ry[:, None], rx[None, :]))[None]
        x = torch.cat([near, offset.expand(len(near), -1, -1, -1)], 1)
        return self.out(torch.sin(30 * self.hidden(torch.sin(30 * self.first(x)))))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feat = self.features(z)  # (N, C, h, w)
        h, w = feat.shape[-2:]
        pos_y = (torch.arange(h * self.stride) + 0.5) / self.stride - 0.5  # pixel centres in latent cells
        pos_x = (torch.arange(w * self.stride) + 0.5) / self.stride - 0.5
        out, total = 0, 0
        for dy in (0, 1):
            iy = (pos_y.floor() + dy).clamp(0, h - 1).long()
            for dx in (0, 1):
                ix = (pos_x.floor() + dx).clamp(0, w - 1).long()
                ry, rx = pos_y - iy, pos_x - ix
                area = (1 - ry.abs())[:, None] * (1 - rx.abs())[None, :]
                out = out + self._ask(feat[:, :, iy][:, :, :, ix], ry, rx) * area
                total = total + area
        return out / total  # at the borders two neighbours are the same cell


class Autoencoder(nn.Module):
    """Encoder to a 1/stride latent, one of the decoders back; images in 0..1, the networks see -1..1."""

    def __init__(self, decoder: type[nn.Module], stride: int, latent: int, width: int) -> None:
        super().__init__()
        self.encoder = _encoder(stride, width, latent)
        self.decoder = decoder(latent, width, int(math.log2(stride)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.decoder(self.encoder(x * 2 - 1)) + 1) / 2


DECODERS: dict[str, type[nn.Module]] = {
    "skip_decoder": SkipDecoder,
    "groupnorm_decoder": GroupNormDecoder,
    "transposed3_decoder": Transposed3Decoder,
    "coordinate_decoder": CoordinateDecoder,
}


def _autoencoder(name: str) -> Autoencoder:
    stride, latent, width = SHAPES[name]
    return Autoencoder(DECODERS[name], stride, latent, width)


def _training_pool(count: int, side: int) -> torch.Tensor:
    """(count, 3, side, side) real images from the set's own content and camera, on the generators' seed stream
    (never one of the written images: those come from the dataset seed's streams)."""
    rng = np.random.default_rng([GENERATOR_SEED, 0])
    images = [_real_image(REAL_SOURCES[i % len(REAL_SOURCES)], rng, side)[0] for i in range(count)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 plus L1 between the amplitude spectra: the spectral term asks for the target's fine-detail energy (a cheap
    stand-in for the perceptual and adversarial losses that make real decoders' detail sharp)."""
    spectrum = (torch.fft.rfft2(out).abs() - torch.fft.rfft2(target).abs()).abs().mean() / out.shape[-1]
    return (out - target).abs().mean() + FIT["spectral"] * spectrum


def _fit_one(name: str, pool: torch.Tensor, steps: int) -> dict[str, np.ndarray]:
    """Fit one autoencoder on random crops of the pool; its weights as numpy arrays."""
    return fit_on_crops(partial(_autoencoder, name), lambda model, crops, _: _loss(model(crops), crops), pool, steps,
                        FIT, LEARNING_RATE[name], GENERATOR_SEED, list(DECODERS).index(name) + 1)


def fit_decoders(steps: int = int(FIT["steps"])) -> dict[str, dict[str, np.ndarray]]:
    """The set's prepare(): every autoencoder fitted on one pool of real content, on one thread (deterministic)."""
    torch.set_num_threads(1)
    pool = _training_pool(int(FIT["pool"]), int(FIT["pool_side"]))
    return {name: _fit_one(name, pool, steps) for name in DECODERS}


def _reconstruct(img: np.ndarray, rng: np.random.Generator, states: dict[str, Any] | None, name: str) -> np.ndarray:
    """The fake: the image through autoencoder `name` with its fitted weights (`rng` unused: it is deterministic)."""
    if states is None:
        raise ValueError(f"{name} needs the fitted decoders (the set's prepare())")
    model = _autoencoder(name)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in states[name].items()})
    with torch.no_grad():
        out = synthetic.to_array(model(synthetic.to_tensor(img)))
    return img + MIX * (out - img)


def make_image(source: str, index: int, seed: int, prepared: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """JPEG bytes and category of image `index` of `source`; `prepared` is `fit_decoders`' result (the AI sources')."""
    generators = {name: partial(_reconstruct, states=prepared, name=name) for name in DECODERS}
    return synthetic.finished_image(
        source, index, seed, sources=tuple(TARGETS), real_image=_real_image, generators=generators
    )


def learned_set(steps: int = int(FIT["steps"])) -> GeneratedSet:
    """The set, its autoencoders fitted for `steps` steps (fewer only in tests: other weights, other fakes)."""
    return GeneratedSet(
        name="learned",
        targets=TARGETS,
        categories=tuple(c for cats in CATEGORIES.values() for c in cats),
        make_image=make_image,
        root=Path("data/learned"),
        real_share=len(DECODERS) / len(REAL_SOURCES),  # as many real images as fakes
        # the autoencoders are fitted once, in one worker, while the other writes the real sources
        prepare=partial(fit_decoders, steps=steps),
        needs_prepared=tuple(DECODERS),
        description="sealed: shelves, planks, pebbles, farmland; four autoencoders with unlike decoders, fitted here",
    )


LEARNED = learned_set()
