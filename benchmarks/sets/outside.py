"""The outside set: an evaluation set in the ArtiFact layout, made differently from the demo data.

The demo trains on procedural 1/f scenes and two upsampling fingerprints; this set has other content and other
"generator" fingerprints, so that a recipe tuned on the demo is also measured on data unlike it.

Real sources (target 0):
- ``photo_crops``: crops of photographs bundled offline with the installed packages (scikit-learn's
  china.jpg and flower.jpg, CC BY 2.0; matplotlib's grace_hopper.jpg, a US Navy portrait in the
  public domain) at random positions, scales, rotations and flips.
- ``camera_renders``: procedural Voronoi mosaics, shaded fractal terrain and rendered text/glyph
  boards, shot through a simulated camera (lens blur, Bayer mosaic + bilinear demosaicing, shot
  and read noise, tone curve).

AI sources (each applied to the same two kinds of content, picked per image, so content is no cue):
- ``pixelshuffle_sr`` (target 2): x2 latent, ESPCN-like sub-pixel convolution (per-phase perturbed
  interpolation filters + a random tanh detail branch), pixel shuffle.
- ``random_decoder`` (target 5): hierarchical latent (x4 top, quantised x2 residual), decoded by a
  fixed random-init CNN: bilinear x2 + 3x3 conv + leaky ReLU stages.
- ``diffusion_like`` (target 3): x2 latent + structured noise, a fixed filter-bank shrinkage
  denoiser, Lanczos x2 upsampling and unsharp-mask sharpening.
- ``tiny_autoencoder`` (target 7): reconstructions by a small conv autoencoder (x4 latent) trained
  for a fixed number of steps on real content: a cheap proxy of a latent-diffusion VAE.

Every generator's weights are fixed by GENERATOR_SEED (they do not change between images or with
the dataset seed). Both classes then get ArtiFact's finish: random square crop of side 160..min(W, H),
resize to 200 (PIL, antialiased when shrinking, bicubic when enlarging), JPEG at quality 65..100.
"""

from __future__ import annotations

import importlib.util
import string
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import nn

from benchmarks.sets.synthetic import resize, to_array, to_tensor
from modeling.data.demo import artifact_postprocess  # ArtiFact's finish, one owner
from modeling.data.generated import GeneratedSet

RENDER_MIN, RENDER_MAX = 200, 260
MIN_CROP = 160
GENERATOR_SEED = 7_204_311  # fixes every generator's weights, independently of the dataset seed
REAL_SOURCES = ("photo_crops", "camera_renders")
AI_SOURCES = ("pixelshuffle_sr", "random_decoder", "diffusion_like", "tiny_autoencoder")
SOURCES = REAL_SOURCES + AI_SOURCES
TARGETS = {
    "photo_crops": 0,
    "camera_renders": 0,
    "pixelshuffle_sr": 2,
    "random_decoder": 5,
    "diffusion_like": 3,
    "tiny_autoencoder": 7,
}
# trace strengths, set so that a plain CNN lands between chance and trivial; frozen: every image depends on them
STRENGTH = {
    "sr_phase_gain": 0.03,  # per-phase gain spread of the sub-pixel filters
    "sr_ripple": 0.01,  # per-phase filter perturbation
    "sr_detail": 0.04,  # amplitude of the random tanh detail branch
    "dec_quant": 0.02,  # quantisation step of the x2 residual latent
    "dec_detail": 0.04,  # amplitude of the random-feature head
    "dec_mix": 0.02,  # random channels leaking into the image channels
    "dif_noise": 0.03,  # structured noise added to the latent
    "dif_shrink": 0.02,  # soft threshold of the denoiser
    "dif_sharpen": 60,  # unsharp-mask percent
    "ae_latent": 16,  # latent channels at x4 (48 input values per latent pixel)
    "ae_steps": 500,  # autoencoder training steps (fixed, for determinism)
}
PHOTOS = {
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}
RENDER_CATEGORIES = ("mosaic", "terrain", "glyphs")


# ---------------------------------------------------------------- small helpers
def _package_file(package: str, rel: str) -> Path:
    """Path of a data file shipped inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / rel


@cache
def _photo(name: str) -> Image.Image:
    """One bundled photograph, loaded once per process."""
    package, rel = PHOTOS[name]
    return Image.open(_package_file(package, rel)).convert("RGB")


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, per channel."""
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k[:, :, None, :], groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k[:, :, :, None], groups=x.shape[1])


def _value_noise(rng: np.random.Generator, n: int, octaves: int, persistence: float) -> np.ndarray:
    """Fractal value noise: random grids upsampled bicubically and summed (not an FFT 1/f field)."""
    out = np.zeros((n, n), dtype=np.float32)
    for o in range(octaves):
        cells = 2 ** (o + 1) + 1
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        out += persistence**o * np.asarray(Image.fromarray(grid).resize((n, n), Image.Resampling.BICUBIC))
    return out / (out.std() + 1e-6)


# ---------------------------------------------------------------- real content: photographs
def _photo_crop(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A size x size crop of a bundled photo: random photo, scale (never enlarged), angle, flip, spot."""
    name = str(rng.choice(list(PHOTOS)))
    photo = _photo(name)
    angle = float(rng.uniform(-25, 25)) if rng.random() < 0.6 else 0.0
    cos, sin = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    span = abs(cos) + abs(sin)  # the rotated square's bounding box, in units of its side
    max_zoom = min(photo.size) / (size * span)
    zoom = float(rng.uniform(1.0, max(1.0, min(max_zoom, 2.2))))
    sw, sh = round(photo.size[0] / zoom), round(photo.size[1] / zoom)
    scaled = photo.resize((sw, sh), Image.Resampling.LANCZOS)  # antialiased shrink
    half = size * span / 2
    cx, cy = rng.uniform(half, max(half, sw - half)), rng.uniform(half, max(half, sh - half))
    c0 = size / 2
    # affine map from output to input coordinates: rotation about the crop centre
    data = (cos, -sin, cx - cos * c0 + sin * c0, sin, cos, cy - sin * c0 - cos * c0)
    out = scaled.transform((size, size), Image.Transform.AFFINE, data, resample=Image.Resampling.BICUBIC)
    img = np.asarray(out, dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img), name


# ---------------------------------------------------------------- real content: rendered scenes
def _voronoi(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Jittered-grid Voronoi tiling: nearest-tile id, ~distance to its border, seeds, tile count.

    Each pixel only checks the seeds of its 3x3 neighbouring grid cells (fast, no n x k distances).
    """
    g = int(rng.integers(3, 11))
    cell = n / g
    seeds = (np.stack(np.mgrid[-1 : g + 1, -1 : g + 1], -1) + rng.uniform(0, 1, size=(g + 2, g + 2, 2))) * cell
    seeds = seeds.astype(np.float32).reshape(-1, 2)
    axis = np.arange(n, dtype=np.float32)
    cy, cx = (axis // cell).astype(np.int64)[:, None] + 1, (axis // cell).astype(np.int64)[None, :] + 1
    d0 = np.full((n, n), np.inf, dtype=np.float32)
    d1, idx = d0.copy(), np.zeros((n, n), dtype=np.int64)
    for dy in (-1, 0, 1):  # keep the two nearest seeds, candidate by candidate
        for dx in (-1, 0, 1):
            ids = (cy + dy) * (g + 2) + (cx + dx)
            dist = np.hypot(seeds[ids, 0] - axis[:, None], seeds[ids, 1] - axis[None, :])
            closer = dist < d0
            d1 = np.where(closer, d0, np.minimum(d1, dist))
            idx = np.where(closer, ids, idx)
            d0 = np.minimum(d0, dist)
    return idx, (d1 - d0) / 2, seeds, (g + 2) ** 2


def _mosaic(rng: np.random.Generator, n: int) -> np.ndarray:
    """Voronoi tiles with per-tile colour gradients, grout lines and bevel lighting (linear RGB)."""
    idx, edge, seeds, k = _voronoi(rng, n)
    hue_base = rng.uniform(0, 1, size=3)
    colours = np.clip(hue_base * 0.5 + rng.uniform(0, 0.6, size=(k, 3)), 0.02, 1.0)
    grads = rng.normal(0, 0.5, size=(k, 2, 3)) / n
    # per tile an affine colour ramp a + by * y + bx * x, anchored at its seed
    a = (colours - grads[:, 0] * seeds[:, :1] - grads[:, 1] * seeds[:, 1:]).astype(np.float32)
    axis = np.arange(n, dtype=np.float32)[:, None]
    img = (
        a[idx]
        + grads[:, 0].astype(np.float32)[idx] * axis[..., None]
        + grads[:, 1].astype(np.float32)[idx] * axis.T[..., None]
    )
    bevel = rng.uniform(1.5, 5)
    height = np.clip(edge / bevel, 0, 1)
    gy, gx = np.gradient(height)
    az = rng.uniform(0, 2 * np.pi)
    shade = 1 + 2.5 * bevel * (gx * np.cos(az) + gy * np.sin(az)) / 4
    grout = 1 / (1 + np.exp(-(edge - rng.uniform(0.5, 1.5)) * 3))
    grain = 0.06 * _value_noise(rng, n, 7, 0.8)
    img = (img * shade[..., None] + grain[..., None]) * grout[..., None] + (1 - grout[..., None]) * rng.uniform(0, 0.5)
    light = 1 + 0.3 * (np.linspace(-1, 1, n)[None, :] * np.cos(az) + np.linspace(-1, 1, n)[:, None] * np.sin(az))
    return np.clip(img * light[..., None], 0, 1).astype(np.float32) ** 2.0  # sRGB-ish colours -> linear


def _terrain(rng: np.random.Generator, n: int) -> np.ndarray:
    """Aerial view of hill-shaded fractal terrain with an elevation colour ramp and water (linear RGB)."""
    height = _value_noise(rng, n, 7, float(rng.uniform(0.45, 0.65)))
    relief = rng.uniform(8, 30)
    gy, gx = np.gradient(height * relief)
    norm = np.sqrt(gx * gx + gy * gy + 1)
    az, alt = rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 1.1)
    light = np.array([np.cos(alt) * np.cos(az), np.cos(alt) * np.sin(az), np.sin(alt)])
    shade = np.clip((-gx * light[0] - gy * light[1] + light[2]) / norm, 0, 1)
    sea = rng.uniform(-1.2, 0.3)
    stops = np.array([sea - 1.0, sea, sea + 0.1, sea + 0.8, sea + 1.6, sea + 2.4])
    ramp = np.array(
        [
            [0.02, 0.08, 0.2],
            [0.05, 0.2, 0.35],
            [0.7, 0.65, 0.45],
            [0.2, 0.45, 0.15],
            [0.45, 0.38, 0.3],
            [0.95, 0.95, 1.0],
        ]
    )
    ramp = np.clip(ramp * rng.uniform(0.8, 1.2, size=(1, 3)), 0, 1)
    colour = np.stack([np.interp(height, stops, ramp[:, c]) for c in range(3)], -1)
    water = (height < sea)[..., None]
    lit = colour * (0.25 + 0.75 * shade[..., None])
    img = np.where(water, colour * (0.8 + 0.2 * shade[..., None]), lit)
    haze = rng.uniform(0, 0.25)
    return ((1 - haze) * img + haze * np.array([0.7, 0.75, 0.8])).astype(np.float32) ** 2.0


def _glyphs(rng: np.random.Generator, n: int) -> np.ndarray:
    """A board of rendered text, shapes and strokes in bundled DejaVu fonts (linear RGB)."""
    paper = rng.uniform(0.3, 1.0, size=3)
    base = paper[None, None] * (1 + 0.08 * _value_noise(rng, n, 6, 0.7)[..., None])
    canvas = Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    fonts = ("DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf")
    for _ in range(int(rng.integers(1, 5))):  # filled shapes, like signs and labels
        x0, y0 = rng.uniform(-0.2, 0.9, size=2) * n
        x1, y1 = x0 + rng.uniform(0.1, 0.6) * n, y0 + rng.uniform(0.05, 0.4) * n
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.4 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    for _ in range(int(rng.integers(3, 10))):
        path = _package_file("matplotlib", "mpl-data/fonts/ttf/" + str(rng.choice(fonts)))
        font = ImageFont.truetype(str(path), int(rng.integers(9, 60)))
        text = "".join(
            rng.choice(list(string.ascii_letters + string.digits + "  .,-")) for _ in range(rng.integers(2, 14))
        )
        layer = Image.new("L", (n, n), 0)
        ImageDraw.Draw(layer).text(tuple(rng.uniform(-0.1, 0.8, size=2) * n), text, fill=255, font=font)
        if rng.random() < 0.4:
            layer = layer.rotate(float(rng.uniform(-40, 40)), resample=Image.Resampling.BICUBIC)
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        canvas.paste(Image.new("RGB", (n, n), fill), (0, 0), layer)
    for _ in range(int(rng.integers(0, 4))):
        pts = [tuple(p) for p in rng.uniform(0, n, size=(int(rng.integers(2, 5)), 2))]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 256, size=3)), width=int(rng.integers(1, 5)))
    return (np.asarray(canvas, dtype=np.float32) / 255.0) ** 2.2


@lru_cache(maxsize=64)
def _bayer_masks(h: int, w: int, oy: int, ox: int) -> torch.Tensor:
    """(3, H, W) 0/1 masks of an RGGB colour filter array starting at phase (oy, ox)."""
    yy, xx = np.mgrid[0:h, 0:w]
    cfa = np.where((yy + oy) % 2 == 0, np.where((xx + ox) % 2 == 0, 0, 1), np.where((xx + ox) % 2 == 0, 1, 2))
    return torch.from_numpy(np.stack([cfa == c for c in range(3)]).astype(np.float32))


def _camera(rng: np.random.Generator, linear: np.ndarray) -> np.ndarray:
    """Lens blur, RGGB Bayer sampling with shot + read noise, bilinear demosaicing, tone curve."""
    x = _gauss_blur(to_tensor(linear * rng.uniform(0.6, 1.1)), float(rng.uniform(0.45, 0.9)))[0]
    _, h, w = x.shape
    masks = _bayer_masks(h, w, int(rng.integers(2)), int(rng.integers(2)))
    raw = (x * masks).sum(0)
    gain, read = rng.uniform(0.0005, 0.004), rng.uniform(0.001, 0.004)
    noise = torch.from_numpy(rng.standard_normal((2, h, w)).astype(np.float32))
    raw = raw + torch.sqrt(raw.clamp(min=0) * gain) * noise[0] + read * noise[1]
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])[None, None]
    num = F.conv2d(F.pad((raw * masks)[:, None], (1, 1, 1, 1), mode="reflect"), k)
    den = F.conv2d(F.pad(masks[:, None], (1, 1, 1, 1), mode="reflect"), k)
    rgb = (num / den)[:, 0].permute(1, 2, 0).numpy()
    rgb = np.clip(rgb, 0, 1) ** (1 / 2.2)
    return np.clip(rgb + 0.08 * np.sin(2 * np.pi * rgb) * rng.uniform(-1, 1), 0, 1).astype(np.float32)


def _camera_render(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A procedural scene rendered on the sensor grid (its edges are smooth or antialiased), photographed."""
    category = str(rng.choice(RENDER_CATEGORIES))
    scene = {"mosaic": _mosaic, "terrain": _terrain, "glyphs": _glyphs}[category](rng, size)
    return _camera(rng, scene), category


CONTENT = {"photo_crops": _photo_crop, "camera_renders": _camera_render}


# ---------------------------------------------------------------- "generators" (fixed weights)
def _weights_rng(family: int) -> np.random.Generator:
    """The fixed random source of one generator family's weights."""
    return np.random.default_rng([GENERATOR_SEED, family])


def _keys(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (bicubic interpolation weights)."""
    x = np.abs(x)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


@cache
def _espcn_weights() -> dict[str, torch.Tensor]:
    """Sub-pixel conv weights: a 5x5 bicubic filter per output phase, perturbed per phase, + a detail branch."""
    rng = _weights_rng(1)
    taps = [_keys(np.arange(-2, 3) - t) for t in (-0.25, 0.25)]  # LR offsets of the two HR phases
    head = np.zeros((12, 3, 5, 5))
    for c in range(3):
        for py in range(2):
            for px in range(2):
                k = np.outer(taps[py], taps[px])
                k = k * (1 + STRENGTH["sr_phase_gain"] * rng.standard_normal()) / k.sum()
                head[c * 4 + py * 2 + px, c] = k + STRENGTH["sr_ripple"] * rng.standard_normal((5, 5))
    w1 = rng.normal(0, 0.6, size=(16, 3, 3, 3))
    w1 -= w1.mean(axis=(2, 3), keepdims=True)  # zero-sum: respond to structure, not to brightness
    b1 = rng.normal(0, 0.3, size=16)
    w2 = rng.normal(0, 1, size=(12, 16, 3, 3)) / 12.0
    w = {"head": head, "w1": w1, "b1": b1, "w2": w2}
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}


def _pixelshuffle_sr(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ESPCN-style x2 super-resolution from an antialiased x2 latent: period-2 sub-pixel traces."""
    h, w = img.shape[:2]
    lr = to_tensor(resize(img, w // 2, h // 2, Image.Resampling.BICUBIC))
    wt = _espcn_weights()
    lin = F.conv2d(F.pad(lr, (2, 2, 2, 2), mode="reflect"), wt["head"])
    pre = F.conv2d(F.pad(lr, (1, 1, 1, 1), mode="reflect"), wt["w1"])
    bias = wt["b1"][:, None, None]
    feat = torch.tanh(pre + bias) - torch.tanh(bias)  # hallucinated detail at structure, zero on flat areas
    detail = F.conv2d(F.pad(feat, (1, 1, 1, 1), mode="reflect"), wt["w2"])
    out = F.pixel_shuffle(lin + STRENGTH["sr_detail"] * detail, 2)
    return to_array(out)


@cache
def _decoder_weights(channels: int = 16) -> dict[str, torch.Tensor]:
    """Random-init decoder: image channels pass near-identity, random channels leak into them a little."""
    rng = _weights_rng(2)
    stem = np.concatenate([np.eye(3), rng.normal(0, 1, size=(channels - 3, 3))])[:, :, None, None]
    w = {"stem": stem}
    for s in range(2):
        conv = rng.normal(0, 1, size=(channels, channels, 3, 3)) * np.sqrt(2 / (9 * channels))
        conv[:3] -= conv[:3].mean(axis=(2, 3), keepdims=True)  # leakage of structure, not of colour
        conv[:3] *= STRENGTH["dec_mix"]
        conv[:3, :3, 1, 1] += np.eye(3)
        w[f"conv{s}"] = conv
        w[f"bias{s}"] = np.concatenate([np.zeros(3), rng.normal(0, 0.2, size=channels - 3)])
    w["head"] = rng.normal(0, 1, size=(3, channels - 3, 1, 1)) / np.sqrt(channels)
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}


def _decoder_stage(x: torch.Tensor, wt: dict[str, torch.Tensor], s: int) -> torch.Tensor:
    """Bilinear x2, 3x3 conv, leaky ReLU: one stage of the random decoder."""
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), wt[f"conv{s}"], wt[f"bias{s}"])
    return F.leaky_relu(x, 0.2)


def _random_decoder(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hierarchical latent (x4 top + quantised x2 residual) decoded by a fixed random CNN."""
    x = to_tensor(img)
    mid = F.avg_pool2d(_gauss_blur(x, 0.6), 2)
    top = F.avg_pool2d(mid, 2)
    q = STRENGTH["dec_quant"]
    residual = torch.round((mid - F.interpolate(top, scale_factor=2, mode="bilinear", align_corners=False)) / q) * q
    wt = _decoder_weights()
    f = F.conv2d(top, wt["stem"])
    f = _decoder_stage(f, wt, 0)
    f = torch.cat([f[:, :3] + residual, f[:, 3:]], 1)  # the x2 residual latent joins the image channels
    f = _decoder_stage(f, wt, 1)
    detail = F.conv2d(f[:, 3:], wt["head"])
    detail = detail - detail.mean(dim=(2, 3), keepdim=True)
    return to_array(f[:, :3] + STRENGTH["dec_detail"] * detail)


@cache
def _diffusion_weights() -> dict[str, torch.Tensor]:
    """Noise-shaping kernel, colour mixing and an orthonormal 3x3 filter bank (DC atom first)."""
    rng = _weights_rng(3)
    shape = rng.normal(0, 1, size=(5, 5)) * np.exp(-np.hypot(*np.mgrid[-2:3, -2:3]) / 1.5)
    shape /= np.sqrt((shape**2).sum())
    mix = np.eye(3) * 0.6 + rng.uniform(0.1, 0.3, size=(3, 3))
    basis = np.linalg.qr(np.concatenate([np.ones((9, 1)), rng.normal(0, 1, size=(9, 8))], 1))[0].T
    basis[0] = np.abs(basis[0])
    w = {"shape": np.tile(shape, (3, 1, 1, 1)), "mix": mix, "bank": basis.reshape(9, 1, 3, 3)}
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}


def _shrink_denoise(x: torch.Tensor, bank: torch.Tensor, tau: float) -> torch.Tensor:
    """Undecimated filter-bank soft-thresholding (a tight frame: analysis, shrink, synthesis / 9)."""
    c = x.shape[1]
    flat = x.reshape(-1, 1, *x.shape[2:])
    coef = F.conv2d(F.pad(flat, (1, 1, 1, 1), mode="reflect"), bank)
    keep = coef[:, :1]
    coef = torch.cat([keep, torch.sign(coef[:, 1:]) * (coef[:, 1:].abs() - tau).clamp(min=0)], 1)
    synthesis = bank.flip(-1, -2).permute(1, 0, 2, 3)  # the adjoint of the analysis filters
    out = F.conv2d(F.pad(coef, (1, 1, 1, 1), mode="reflect"), synthesis) / 9.0
    return out.reshape(1, c, *x.shape[2:])


def _diffusion_like(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x2 latent + shaped noise, filter-bank denoiser, Lanczos x2 and unsharp masking."""
    h, w = img.shape[:2]
    wt = _diffusion_weights()
    lr = to_tensor(resize(img, w // 2, h // 2, Image.Resampling.LANCZOS))
    eps = torch.from_numpy(rng.standard_normal((1, 3, h // 2, w // 2)).astype(np.float32))
    eps = F.conv2d(F.pad(eps, (2, 2, 2, 2), mode="reflect"), wt["shape"], groups=3)
    eps = torch.einsum("ij,bjhw->bihw", wt["mix"], eps)
    x = _shrink_denoise(lr + STRENGTH["dif_noise"] * eps, wt["bank"], STRENGTH["dif_shrink"])
    up = Image.fromarray((np.clip(to_array(x), 0, 1) * 255 + 0.5).astype(np.uint8))
    up = up.resize((w, h), Image.Resampling.LANCZOS)
    up = up.filter(ImageFilter.UnsharpMask(radius=1.2, percent=STRENGTH["dif_sharpen"], threshold=0))
    return np.asarray(up, dtype=np.float32) / 255.0


class TinyAutoencoder(nn.Module):
    """A small conv autoencoder with a x4 latent and a nearest-upsample + conv decoder (VAE-like)."""

    def __init__(self, latent: int) -> None:
        super().__init__()

        def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2 if k == 3 else 1, padding_mode="reflect")

        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(conv(3, 32, 4, 2), act, conv(32, latent, 4, 2))
        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.decoder = nn.Sequential(conv(latent, 48), act, up, conv(48, 24), act, up, conv(24, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x - 0.5)) + 0.5


def _train_autoencoder() -> dict[str, np.ndarray]:
    """Train the autoencoder on real content for a fixed number of steps; single-threaded, so deterministic."""
    torch.set_num_threads(1)
    torch.manual_seed(GENERATOR_SEED)
    rng = _weights_rng(4)
    pool = [CONTENT[REAL_SOURCES[i % 2]](rng, 128)[0] for i in range(48)]
    data = torch.from_numpy(np.stack(pool)).permute(0, 3, 1, 2).contiguous()
    model = TinyAutoencoder(int(STRENGTH["ae_latent"]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(int(STRENGTH["ae_steps"])):  # small batches of 48 px patches: ~20 s on one core
        pick = rng.integers(0, len(pool), size=8)
        y0, x0 = rng.integers(0, 128 - 48 + 1, size=2)
        batch = data[pick, :, y0 : y0 + 48, x0 : x0 + 48]
        loss = (model(batch) - batch).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _tiny_autoencoder(img: np.ndarray, rng: np.random.Generator, state: dict[str, np.ndarray]) -> np.ndarray:
    """The trained autoencoder's reconstruction of the content: the fake (`rng` unused: a deterministic decoder)."""
    model = TinyAutoencoder(int(STRENGTH["ae_latent"]))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    with torch.no_grad():
        return to_array(model(to_tensor(img)))


GENERATORS = {"pixelshuffle_sr": _pixelshuffle_sr, "random_decoder": _random_decoder, "diffusion_like": _diffusion_like}


# ---------------------------------------------------------------- one image, and the set
def make_image(source: str, index: int, seed: int, prepared: dict[str, np.ndarray] | None = None) -> tuple[bytes, str]:
    """JPEG bytes and category of image `index` of `source`: a pure function of its arguments (at a fixed torch
    thread count). `prepared` is the trained autoencoder's state, which only tiny_autoencoder images need."""
    rng = np.random.default_rng([seed, SOURCES.index(source), index])
    size = int(rng.integers(RENDER_MIN, RENDER_MAX + 1)) // 4 * 4
    content = source if source in REAL_SOURCES else str(rng.choice(REAL_SOURCES))
    img, category = CONTENT[content](rng, size)
    if source == "tiny_autoencoder":
        if prepared is None:
            raise ValueError("tiny_autoencoder needs the trained autoencoder's state")
        img = _tiny_autoencoder(img, rng, prepared)
    elif source in AI_SOURCES:
        img = GENERATORS[source](img, rng)
    return artifact_postprocess(img, rng, min_side=MIN_CROP), category


OUTSIDE = GeneratedSet(
    name="outside",
    targets=TARGETS,
    categories=(*PHOTOS, *RENDER_CATEGORIES),
    make_image=make_image,
    root=Path("data/outside"),
    # the autoencoder trains once, in one worker, while the other starts on the other sources
    prepare=_train_autoencoder,
    needs_prepared=("tiny_autoencoder",),
    description="bundled photographs and camera renders; sub-pixel, random-decoder, denoiser and autoencoder fakes",
)
