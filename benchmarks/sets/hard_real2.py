"""The second hard-real set: a sealed evaluation set in the ArtiFact layout whose real class includes ordinary
processed photos (portrait mode, beauty and photo-app filters, re-shared, scanned, video and screenshot copies),
against fakes made by learned generators unlike the other sets' (a codebook, a diffusion-like denoiser, an
upscaler).

Never tune a detector against it, nor train the recipe on it while choosing settings: it is opened once, to report
a final recipe's figures. Its trace strengths (MIX, SIGMA) were set with the plain CNN only
(`benchmarks.baseline_cnn`, 600 steps, on the camera and the three generators with the processed sources left out,
two seeds), never with the recipe.

Content, rendered at 1.1x-1.35x the sensor grid with supersampled detail: ``facade`` (running-bond brick with
mortar, windows with frames, mullions, sky reflections and slatted shutters), ``knitwear`` (stockinette V stitches
of shaded yarn with fibre texture, stripes or a fair-isle motif, folds), ``harbour`` (a sky gradient with a sun
glow, a far shore of buildings, water that mirrors them through perspective ripples, glints) and ``poster``
(printed signage: colour blocks, lines of text, a bar code, on paper).

The camera (`camera`, target 0), written for this set: lens blur and area sampling onto a quad-Bayer sensor
(2x2 same-colour cells) with Poisson-Gaussian noise, row noise, a black level and a 12-bit ADC, 2x2 binning to a
Bayer mosaic, Hamilton-Adams demosaic (gradient-directed green, bilinear colour differences), auto white balance
with its error, a saturation matrix, a-trous wavelet luma denoising and subsampled chroma denoising, a filmic
tone curve with a 2.2 gamma, halo-limited sharpening and a JPEG at 84..95 in 4:4:4 or 4:2:2.

Processed real sources (target 0; all in `PROCESSED`, evaluation-only: a run meets them only in its test split),
each from a capture of the same content by the same camera:
- ``portrait_blur``: a depth guess (a subject ellipse, the background farther towards the top) picks per pixel
  among lens blurs done in linear light (bright spots bloom), then the camera's JPEG.
- ``beauty_filter``: frequency separation: the low band edge-preservingly smoothed, the fine band damped except at
  strong edges, a brightening lift and warm tint, the app's JPEG.
- ``photo_filter``: an Instagram-like look: per-channel tone curves (lifted blacks, soft whites), split toning,
  saturation, a vignette and film grain, the app's JPEG.
- ``messenger_reshare``: a larger capture shrunk to the messenger's long side and sent as 4:2:0 JPEG at 60..80,
  half of them forwarded once more (shrunk a little, recompressed).
- ``scanner_app``: a poster shot at an angle, straightened by the app's homography (bilinear), its illumination
  flattened, levels stretched, sharpened, JPEG.
- ``video_frame``: a video capture (stronger denoising), 4:2:0, 8x8 block DCT coded at a low quality with an
  in-loop deblocking filter, grabbed losslessly.
- ``burst_zoom``: four frames at half resolution with hand-shake offsets, upsampled, aligned (known shifts),
  merged and sharpened: a x2 multi-frame zoom.
- ``screenshot``: the photo shown in a social app's feed (status bar, toolbar, icons, caption lines), scaled by
  the compositor and saved losslessly.

AI sources (each reproduces a camera image of any category, so content is no cue), generators fitted by
`fit_generators` in the set's prepare() on a pool of camera images on GENERATOR_SEED's stream (never a written
image), one thread, a fixed number of steps. A fake is the camera image moved MIX of the way to the generator's
output:
- ``vq_decoder`` (target 20): a VQ autoencoder: strided-conv encoder to a x4 latent quantised to a 64-entry
  codebook (straight-through, commitment loss), residual decoder with nearest x2 + conv stages.
- ``unet_img2img`` (target 21): a small U-Net denoiser (trained on Gaussian-noised images, noise level as an input
  channel) run img2img: the image noised to SIGMA, then four deterministic DDIM-like steps down to zero.
- ``sr_upscaler`` (target 22): an ESRGAN-like x4 upscaler (scaled residual blocks at low resolution, nearest x2 +
  conv twice) applied to the image area-shrunk by 4.

Every image ends with ArtiFact's finish (`artifact_postprocess`: a crop of 160 px up, 200 px, JPEG 65..100).
Each real source gets as many images as each AI source (real_share 1): per processed source, its false-positive
rate is measured on as many images as each generator's recall; the plain part is camera 1 : AI 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from benchmarks.sets.synthetic import (
    blur,
    fit_on_crops,
    jpeg,
    pixel_grid,
    shrink,
    smooth_field,
    to_array,
    to_tensor,
)
from modeling.data.demo import artifact_postprocess
from modeling.data.generated import GeneratedSet

GENERATOR_SEED = 5_190_733  # fixes the generators' training pool, initial weights and batches
CATEGORIES = ("facade", "knitwear", "harbour", "poster")
PROCESSED = ("portrait_blur", "beauty_filter", "photo_filter", "messenger_reshare", "scanner_app", "video_frame",
             "burst_zoom", "screenshot")  # fmt: skip
GENERATOR_NAMES = ("vq_decoder", "unet_img2img", "sr_upscaler")
TARGETS = {"camera": 0, **dict.fromkeys(PROCESSED, 0), "vq_decoder": 20, "unet_img2img": 21, "sr_upscaler": 22}
RENDER_MIN, RENDER_MAX, MIN_CROP = 200, 264, 160
# trace strengths, set with the plain CNN (baseline_cnn.py, 600 steps, one thread) on the plain part (camera and
# the three generators, 300 images per source, seed 0; processed sources left out): test ROC-AUC 0.84 and 0.78 on
# seeds 0 and 1 (per generator 0.77-0.87); frozen: every fake depends on them
MIX = {"vq_decoder": 0.3, "unet_img2img": 0.55, "sr_upscaler": 0.4}  # share of the generator's output in a fake
SIGMA = 0.12  # img2img: noise level the U-Net starts from (images in -1..1)
DDIM_STEPS = 4
FIT = {"steps": 300, "batch": 8, "crop": 48, "pool": 24, "pool_side": 128, "lr": 2e-3}  # the fitting schedule
LUMA709 = (0.2126, 0.7152, 0.0722)


# ---------------------------------------------------------------- content (linear light, n x n x 3)
def _lin(c: np.ndarray) -> np.ndarray:
    """Display colour -> linear light (a 2.2 power is close enough for paints and dyes)."""
    return np.clip(c, 0, 1) ** 2.2


def _table(rng: np.random.Generator, lo: float, hi: float, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def _facade(rng: np.random.Generator, n: int) -> np.ndarray:
    """Running-bond brick with mortar joints and a grid of windows with frames, mullions and slatted shutters."""
    yy, xx = pixel_grid(n)
    h = rng.uniform(0.022, 0.045)
    length = h * rng.uniform(2.6, 3.4)
    row = np.floor(yy / h).astype(np.int64)
    shifted = xx + (row % 2) * 0.5 * length
    col = np.floor(shifted / length).astype(np.int64)
    brick = (row * 131 + col * 17) % 1024
    base = rng.uniform(0.35, 0.7) * np.array([1.0, rng.uniform(0.35, 0.6), rng.uniform(0.2, 0.4)])
    colour = base * _table(rng, 0.7, 1.25, (1024, 1))[brick] * _table(rng, 0.9, 1.1, (1024, 3))[brick]
    grit = 1 + 0.12 * smooth_field(rng, n, n, n // 4)[..., None]
    mortar_w = h * rng.uniform(0.08, 0.16)
    joint = ((yy % h) < mortar_w) | ((shifted % length) < mortar_w)
    img = np.where(joint[..., None], rng.uniform(0.55, 0.8) * np.array([1.0, 0.97, 0.9]), colour * grit)
    cols, rows = int(rng.integers(2, 4)), int(rng.integers(1, 3))
    cx, cy = (xx * cols + rng.uniform(0, 1)) % 1, (yy * rows + rng.uniform(0, 1)) % 1
    ww, wh = rng.uniform(0.3, 0.45), rng.uniform(0.45, 0.65)
    win = (np.abs(cx - 0.5) < ww / 2) & (np.abs(cy - 0.5) < wh / 2)
    frame_t = 0.035
    inner = (np.abs(cx - 0.5) < ww / 2 - frame_t) & (np.abs(cy - 0.5) < wh / 2 - frame_t)
    mullion = (np.abs(cx - 0.5) < frame_t / 3) | (np.abs(cy - 0.5 + wh * 0.1) < frame_t / 3)
    sky = np.array([0.45, 0.6, 0.8]) * (0.3 + 0.7 * (1 - cy[..., None])) * rng.uniform(0.4, 0.9)
    glass = sky + 0.25 * np.clip(smooth_field(rng, n, n, 5), 0, None)[..., None] * 0.3
    frame_c = rng.choice([0.85, 0.15, 0.5]) * np.array([1.0, 1.0, 0.98])
    img = np.where(win[..., None], np.where((inner & ~mullion)[..., None], glass, frame_c), img)
    shutter = (np.abs(np.abs(cx - 0.5) - ww / 2 - ww * 0.28) < ww * 0.26) & (np.abs(cy - 0.5) < wh / 2)
    slats = 0.6 + 0.4 * np.abs(np.sin(np.pi * cy * rows * rng.uniform(20, 35) / rows))
    shutter_c = rng.uniform(0.1, 0.6, size=3) * slats[..., None]
    img = np.where(shutter[..., None], shutter_c, img)
    sill = (np.abs(cx - 0.5) < ww / 2 + 0.02) & (cy - 0.5 > wh / 2) & (cy - 0.5 < wh / 2 + 0.04)
    img = np.where(sill[..., None], img * 0.45, img)
    light = 0.75 + 0.25 * np.clip(1 - yy + rng.uniform(-0.3, 0.3) * xx, 0, 1)
    return _lin(img * light[..., None]).astype(np.float32)


def _knitwear(rng: np.random.Generator, n: int) -> np.ndarray:
    """Stockinette: columns of V stitches, each leg a shaded yarn cylinder with fibres; stripes or a motif."""
    yy, xx = pixel_grid(n)
    th = rng.uniform(-0.25, 0.25)
    u = (xx * math.cos(th) + yy * math.sin(th)) * rng.uniform(18, 34)
    v = (-xx * math.sin(th) + yy * math.cos(th)) * rng.uniform(22, 40)
    u = u + 0.3 * smooth_field(rng, n, n, 4)  # the fabric drapes
    i, j, fu, fv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64), u % 1, v % 1
    lean = 0.32
    left = (fu - 0.27 + (fv - 0.5) * lean) / 0.24
    right = (fu - 0.73 - (fv - 0.5) * lean) / 0.24
    leg = np.minimum(np.abs(left), np.abs(right))
    yarn = np.sqrt(np.clip(1 - leg**2, 0, 1)) * np.sin(np.pi * fv) ** 0.4
    fibre = 1 + 0.18 * smooth_field(rng, n, n, n // 3)
    palette = rng.uniform(0.08, 0.85, size=(3, 3))
    if rng.random() < 0.5:  # stripes of rows
        pick = (j // int(rng.integers(2, 7))) % 3
    else:  # a repeating fair-isle motif
        motif = rng.integers(0, 2, size=(8, 8))
        pick = motif[j % 8, i % 8] + (j // 8 % 3 == 0)
    colour = palette[np.clip(pick, 0, 2)]
    folds = 0.75 + 0.25 * np.tanh(smooth_field(rng, n, n, 3))
    img = colour * (0.12 + 0.88 * yarn * fibre)[..., None] * folds[..., None]
    return _lin(img).astype(np.float32)


def _above(y: np.ndarray, x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """The world above the water at (y, x): a sky gradient with a sun glow, a far shore of buildings with rows of
    windows behind a dark band of trees."""
    t = np.clip(y / p["horizon"], 0, 1)[..., None]
    sky = p["zenith"] * (1 - t) + p["haze"] * t
    glow = np.exp(-((x - p["sun_x"]) ** 2 + (y - p["sun_y"]) ** 2) / 0.01)[..., None] * p["sun"]
    cell = np.clip((x * 24).astype(np.int64), 0, 23)  # one building per cell
    top = p["horizon"] - p["heights"][cell]
    building = (y > top) & (y < p["horizon"])
    fx, fy = (x * p["win_f"]) % 1, ((y - top) * p["win_f"] * 1.4) % 1
    window = (fx > 0.3) & (fx < 0.7) & (fy > 0.35) & (fy < 0.75)
    shore = p["shore"][cell] * np.where(window, p["lit"][cell], 1.0)[..., None]
    trees = y > p["horizon"] - p["trees"] * (1 + 0.5 * np.sin(x * 90) * np.sin(x * 37))
    shore = np.where(trees[..., None], p["tree_c"], shore)
    return np.where(building[..., None], shore, sky + glow)


def _harbour(rng: np.random.Generator, n: int) -> np.ndarray:
    """A sky and a shore of buildings above the horizon; below, water mirroring them through ripples that
    shrink with distance, a dark body colour, glints where the waves face the sun."""
    yy, xx = pixel_grid(n)
    p: dict[str, Any] = {"horizon": rng.uniform(0.3, 0.55), "sun_x": rng.uniform(0.1, 0.9), "sun": rng.uniform(0, 0.6)}
    p["zenith"] = rng.uniform(0.25, 0.7) * rng.uniform(0.85, 1.15, size=3) * np.array([0.45, 0.65, 1.0])
    p["haze"] = rng.uniform(0.6, 0.95, size=3) * np.array([1.0, 0.9, 0.8])
    p["win_f"], p["heights"], p["lit"] = rng.uniform(150, 300), rng.uniform(0.02, 0.14, 24), rng.uniform(0.3, 1.6, 24)
    p["shore"] = rng.uniform(0.3, 0.7, size=(24, 1)) * rng.uniform(0.8, 1.0, size=(24, 3)) * np.array([1.0, 0.9, 0.8])
    p["trees"], p["tree_c"] = rng.uniform(0.005, 0.02), rng.uniform(0.05, 0.15) * np.array([0.7, 1.0, 0.6])
    p["sun_y"] = p["horizon"] * rng.uniform(0.3, 0.9)
    above = _above(yy, xx, p)
    d = np.clip(yy - p["horizon"], 1e-3, None)
    z = 1 / d  # distance along the water
    waves = sum(np.sin(2 * np.pi * (rng.uniform(0.5, 2) * z + rng.uniform(-3, 3) * xx * z * 0.2) * rng.uniform(0.2, 0.6)
                       + rng.uniform(0, 2 * np.pi)) for _ in range(4))  # fmt: skip
    ripple = waves * d * rng.uniform(0.01, 0.04)
    mirror = _above(2 * p["horizon"] - yy + ripple, xx + 0.3 * ripple, p)
    fresnel = (0.35 + 0.5 * np.exp(-d * 6))[..., None]
    body = np.array([0.05, 0.12, 0.13]) * rng.uniform(0.5, 1.5)
    glint = (np.clip(np.abs(waves) / 4, 0, 1) ** 12 * np.exp(-((xx - p["sun_x"]) ** 2) / 0.02))[..., None]
    shading = 1 + 0.04 * waves[..., None]  # the wave facets tilt towards and away from the bright sky
    water = (fresnel * mirror + (1 - fresnel) * body) * shading + glint * p["sun"] * 2
    return _lin(np.where((yy > p["horizon"])[..., None], water, above)).astype(np.float32)


def _word(rng: np.random.Generator) -> str:
    letters = "ABCDEFGHIJKLMNOPRSTUVWXYZ" if rng.random() < 0.5 else "abcdefghijklmnoprstuvwyz"
    return "".join(rng.choice(list(letters), size=int(rng.integers(2, 9))))


def _poster(rng: np.random.Generator, n: int) -> np.ndarray:
    """Printed signage: colour blocks and discs, lines of text in a few sizes, a bar code, on tinted paper."""
    paper = tuple(int(v) for v in rng.integers(200, 250, size=3))
    pil = Image.new("RGB", (n, n), paper)
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = (int(v) for v in rng.integers(0, n * 3 // 4, size=2))
        x1, y1 = x0 + int(rng.integers(n // 8, n // 2)), y0 + int(rng.integers(n // 10, n // 3))
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.3 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    y = int(rng.integers(0, n // 8))
    while y < n:
        size = int(n * rng.uniform(0.03, 0.12))
        ink = tuple(int(v) for v in rng.integers(0, 120, size=3))
        line = " ".join(_word(rng) for _ in range(int(rng.integers(1, 6))))
        draw.text((int(rng.integers(0, n // 6)), y), line, fill=ink, font=ImageFont.load_default(size=size))
        y += int(size * rng.uniform(1.2, 1.8))
    bx, by = (int(v) for v in rng.integers(0, n * 2 // 3, size=2))
    for k, w in enumerate(rng.integers(1, 4, size=30)):
        if k % 2 == 0:
            draw.rectangle((bx + 4 * k, by, bx + 4 * k + int(w), by + n // 10), fill=(20, 20, 20))
    img = np.asarray(pil, dtype=np.float32) / 255
    return _lin(img * (0.9 + 0.1 * smooth_field(rng, n, n, 3))[..., None]).astype(np.float32)


SCENES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "facade": _facade,
    "knitwear": _knitwear,
    "harbour": _harbour,
    "poster": _poster,
}


# ---------------------------------------------------------------- the camera (quad Bayer, binned, Hamilton-Adams)
@dataclass(frozen=True)
class Settings:
    """One exposure's and one ISP run's settings, drawn per image; pipelines change some with `replace`."""

    phase: tuple[int, int]  # where the binned RGGB pattern starts
    exposure: float
    vignette: float
    gain: float  # shot-noise variance per unit signal
    read: float
    row: float  # row-noise std
    illuminant: tuple[float, float, float]
    awb_error: tuple[float, float]  # auto white balance's miss on R and B
    saturation: float
    nr: float  # wavelet threshold on luma
    shoulder: float  # filmic curve's white point
    sharpen: float
    quality: int
    subsampling: int  # 0: 4:4:4, 1: 4:2:2


def draw_settings(rng: np.random.Generator) -> Settings:
    """A daylight phone shot: moderate noise, an imperfect auto white balance, JPEG 84..95 (4:4:4 or 4:2:2)."""
    light = rng.uniform(0.75, 1.25, size=3)
    return Settings(
        phase=(int(rng.integers(2)), int(rng.integers(2))),
        exposure=float(rng.uniform(0.8, 1.4)),
        vignette=float(rng.uniform(0.05, 0.3)),
        gain=float(rng.uniform(0.0005, 0.004)),
        read=float(rng.uniform(0.002, 0.006)),
        row=float(rng.uniform(0.0, 0.002)),
        illuminant=tuple(float(v) for v in light / light[1]),
        awb_error=(float(rng.normal(0, 0.03)), float(rng.normal(0, 0.03))),
        saturation=float(rng.uniform(0.1, 0.35)),
        nr=float(rng.uniform(0.002, 0.012)),
        shoulder=float(rng.uniform(2.5, 6.0)),
        sharpen=float(rng.uniform(0.4, 1.2)),
        quality=int(rng.integers(84, 96)),
        subsampling=int(rng.integers(0, 2)),
    )


def render(rng: np.random.Generator, category: str, side: int) -> np.ndarray:
    """Linear light on a side x side sensor grid: the scene at 1.1x-1.35x, lens blur, area sampling."""
    scale = float(rng.uniform(1.1, 1.35))
    scene = SCENES[category](rng, int(round(side * scale)))
    return shrink(to_array(blur(to_tensor(scene), scale * float(rng.uniform(0.4, 0.8)))), side, side)


def _cfa(h: int, w: int, phase: tuple[int, int], cell: int) -> torch.Tensor:
    """(1, 3, H, W) one-hot colour of each photosite of an RGGB pattern whose cells are cell x cell pixels."""
    y = (np.arange(h)[:, None] // cell + phase[0]) % 2
    x = (np.arange(w)[None, :] // cell + phase[1]) % 2
    colour = np.where(y == 0, np.where(x == 0, 0, 1), np.where(x == 0, 1, 2))
    return torch.from_numpy(np.stack([colour == c for c in range(3)]).astype(np.float32))[None]


def sensor(rng: np.random.Generator, lin: np.ndarray, st: Settings) -> torch.Tensor:
    """Quad-Bayer exposure of the (2s, 2s) sensor grid, read out at 12 bits with a black level, binned 2x2 to an
    (1, 1, s, s) Bayer mosaic, black level removed."""
    h, w, _ = lin.shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    fall = (1 + st.vignette * (yy**2 + xx**2)) ** -2
    light = to_tensor(lin * (fall[..., None] * st.exposure * np.asarray(st.illuminant)).astype(np.float32))
    clean = (light * _cfa(h, w, st.phase, 2)).sum(1, keepdim=True)
    noise = torch.from_numpy(rng.standard_normal((2, h, w)).astype(np.float32))
    rows = torch.from_numpy(rng.standard_normal((h, 1)).astype(np.float32)) * st.row
    black = 64 / 4095
    raw = clean + torch.sqrt(clean.clamp(min=0) * st.gain) * noise[0] + st.read * noise[1] + rows + black
    raw = torch.round(raw.clamp(0, 1) * 4095) / 4095
    return ((F.avg_pool2d(raw, 2) - black) / (1 - black)).clamp(min=0)


def _shift_conv(x: torch.Tensor, taps: list[float], vertical: bool) -> torch.Tensor:
    """A 1-D filter along rows or columns with reflect padding (which keeps the mosaic's parity)."""
    r = len(taps) // 2
    k = torch.tensor(taps, dtype=torch.float32)
    k = k.view(1, 1, -1, 1) if vertical else k.view(1, 1, 1, -1)
    pad = (0, 0, r, r) if vertical else (r, r, 0, 0)
    return F.conv2d(F.pad(x, pad, mode="reflect"), k)


def demosaic(raw: torch.Tensor, phase: tuple[int, int]) -> torch.Tensor:
    """Hamilton-Adams: green along the smoother direction (gradient plus Laplacian), then R - G and B - G
    interpolated bilinearly and G added back. (1, 1, H, W) -> (1, 3, H, W)."""
    _, _, h, w = raw.shape
    m = _cfa(h, w, phase, 1)
    est, grad = [], []
    for vertical in (False, True):
        mean = _shift_conv(raw, [0, 0.5, 0, 0.5, 0], vertical)
        lap = _shift_conv(raw, [-0.25, 0, 0.5, 0, -0.25], vertical)
        est.append(mean + lap)
        grad.append(_shift_conv(raw, [0, -1, 0, 1, 0], vertical).abs() + 4 * lap.abs())
    g_interp = torch.where(grad[0] < grad[1], est[0], torch.where(grad[1] < grad[0], est[1], (est[0] + est[1]) / 2))
    green = m[:, 1:2] * raw + (1 - m[:, 1:2]) * g_interp
    kernel = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]).view(1, 1, 3, 3)
    out = []
    for c in (0, 2):
        diff = m[:, c : c + 1] * (raw - green)  # known at a quarter of the sites
        out.append(green + F.conv2d(F.pad(diff, (1, 1, 1, 1), mode="reflect"), kernel))
    return torch.cat([out[0], green, out[1]], 1)


def _luma(x: torch.Tensor) -> torch.Tensor:
    return sum(c * x[:, i : i + 1] for i, c in enumerate(LUMA709))


def _atrous(y: torch.Tensor, dilation: int) -> torch.Tensor:
    """The B3-spline [1, 4, 6, 4, 1] / 16 smoothing with holes (a-trous wavelet level)."""
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    p = 2 * dilation
    y = F.conv2d(F.pad(y, (p, p, 0, 0), mode="replicate"), k.view(1, 1, 1, 5), dilation=(1, dilation))
    return F.conv2d(F.pad(y, (0, 0, p, p), mode="replicate"), k.view(1, 1, 5, 1), dilation=(dilation, 1))


def denoise(rgb: torch.Tensor, nr: float) -> torch.Tensor:
    """Luma: soft-threshold the two finest wavelet bands. Chroma: halved, smoothed and brought back."""
    y = _luma(rgb)
    chroma = rgb - y
    b1 = _atrous(y, 1)
    b2 = _atrous(b1, 2)

    def soft(d: torch.Tensor, t: float) -> torch.Tensor:
        return torch.sign(d) * (d.abs() - t).clamp(min=0)

    y = b2 + soft(b1 - b2, nr * 0.5) + soft(y - b1, nr)
    small = F.avg_pool2d(chroma, 2)
    chroma = F.interpolate(blur(small, 0.8), size=rgb.shape[-2:], mode="bilinear", align_corners=False)
    return y + chroma


def filmic(x: torch.Tensor, white: float) -> torch.Tensor:
    """A Hable-style filmic curve normalised to its white point, then a 2.2 display gamma."""

    def curve(v: torch.Tensor | float) -> torch.Tensor | float:
        a, b, c, d, e, f = 0.22, 0.3, 0.1, 0.2, 0.01, 0.3
        return (v * (a * v + c * b) + d * e) / (v * (a * v + b) + d * f) - e / f

    return (curve(x.clamp(min=0) * 2.0) / curve(white)).clamp(0, 1) ** (1 / 2.2)


def sharpen(x: torch.Tensor, amount: float, sigma: float = 0.9) -> torch.Tensor:
    """Unsharp mask on luma, clamped to the 3x3 neighbourhood's range (+-2 %): little halo."""
    y = _luma(x)
    s = y + amount * (y - blur(y, sigma))
    hi = F.max_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, 1)
    lo = -F.max_pool2d(F.pad(-y, (1, 1, 1, 1), mode="replicate"), 3, 1)
    s = torch.minimum(torch.maximum(s, lo - 0.02), hi + 0.02)
    return (x + (s - y)).clamp(0, 1)


def develop(raw: torch.Tensor, st: Settings) -> torch.Tensor:
    """The Bayer mosaic -> display RGB: demosaic, auto white balance, saturation matrix, denoise, filmic, sharpen."""
    rgb = demosaic(raw, st.phase)
    wb = [(1 + st.awb_error[0]) / st.illuminant[0], 1.0, (1 + st.awb_error[1]) / st.illuminant[2]]
    rgb = rgb * torch.tensor(wb).view(1, 3, 1, 1)
    y = _luma(rgb)
    rgb = y + (1 + st.saturation) * (rgb - y)
    return sharpen(filmic(denoise(rgb, st.nr), st.shoulder), st.sharpen)


def develop_scene(rng: np.random.Generator, lin: np.ndarray, st: Settings) -> np.ndarray:
    """Linear light on the (2s, 2s) sensor grid -> the (s, s, 3) display image before the camera's JPEG."""
    return to_array(develop(sensor(rng, lin, st), st))


def camera_jpeg(img: np.ndarray, st: Settings) -> np.ndarray:
    return jpeg(img, st.quality, st.subsampling)


def photograph(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """The plain camera: a size x size capture of `category`, JPEG'd as the camera saves it."""
    st = draw_settings(rng)
    return camera_jpeg(develop_scene(rng, render(rng, category, 2 * size), st), st)


# ---------------------------------------------------------------- processed real sources (never generative)
def _app_jpeg(img: np.ndarray, rng: np.random.Generator, lo: int, hi: int, subsampling: int = 2) -> np.ndarray:
    """An app's export: JPEG at a quality in lo..hi."""
    return jpeg(img, int(rng.integers(lo, hi + 1)), subsampling)


def portrait_blur(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """Portrait mode: a depth guess (subject ellipse sharp, background farther towards the top) chooses per pixel
    among three lens blurs, done in linear light so bright spots bloom; then the camera's JPEG."""
    st = draw_settings(rng)
    img = develop_scene(rng, render(rng, category, 2 * size), st)
    yy, xx = pixel_grid(size)
    cy, cx, ry, rx = rng.uniform(0.4, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.35), rng.uniform(0.15, 0.3)
    inside = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    depth = np.clip((inside - 0.9) / 0.3, 0, 1) * (0.5 + 0.5 * (1 - yy))  # 0 on the subject, up to 1 far away
    lin = to_tensor(img**2.2)
    radius = rng.uniform(2.0, 5.0) * size / 200
    layers = [lin] + [blur(lin, radius * f) for f in (0.35, 0.7, 1.0)]
    pos = torch.from_numpy(depth.astype(np.float32) * 3)[None, None]
    out = torch.zeros_like(lin)
    for k, layer in enumerate(layers):
        out = out + layer * (1 - (pos - k).abs()).clamp(min=0)
    return camera_jpeg(to_array(out.clamp(0, 1) ** (1 / 2.2)), st)


def beauty_filter(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """Frequency separation: the low band smoothed by a self-guided filter, the fine band damped except at strong
    edges; a brightening lift and a warm tint; the app's JPEG."""
    img = to_tensor(photograph(rng, category, size))
    low = blur(img, rng.uniform(2.0, 4.0))
    high = img - low
    r, eps = 4, rng.uniform(0.001, 0.004)
    mean = F.avg_pool2d(F.pad(low, (r, r, r, r), mode="replicate"), 2 * r + 1, 1)
    var = F.avg_pool2d(F.pad(low * low, (r, r, r, r), mode="replicate"), 2 * r + 1, 1) - mean**2
    a = var / (var + eps)
    smooth = a * low + (1 - a) * mean
    keep = (_luma(high).abs() > rng.uniform(0.04, 0.08)).float()
    out = smooth + high * (keep + (1 - keep) * rng.uniform(0.25, 0.55))
    lift = rng.uniform(0.03, 0.08)
    out = (out + lift * (1 - out)) * torch.tensor([1.02, 1.0, 0.97]).view(1, 3, 1, 1)
    return _app_jpeg(to_array(out.clamp(0, 1)), rng, 85, 95)


def photo_filter(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """An Instagram-like filter: per-channel curves (lifted blacks, soft whites), split toning, saturation, a
    vignette and film grain; the app's JPEG."""
    img = photograph(rng, category, size)
    out = np.empty_like(img)
    for c in range(3):
        knots = np.sort(np.clip([rng.uniform(0.03, 0.12), rng.uniform(0.2, 0.32), rng.uniform(0.45, 0.58),
                                 rng.uniform(0.72, 0.85), rng.uniform(0.88, 0.97)], 0, 1))  # fmt: skip
        out[..., c] = np.interp(img[..., c], [0, 0.25, 0.5, 0.75, 1], knots)
    y = out @ np.array(LUMA709, dtype=np.float32)
    shadow, light = rng.uniform(-0.04, 0.04, size=3), rng.uniform(-0.04, 0.04, size=3)
    out = out + (1 - y[..., None]) * shadow + y[..., None] * light
    out = y[..., None] + rng.uniform(0.7, 1.3) * (out - y[..., None])
    yy, xx = pixel_grid(size)
    out = out * (1 - rng.uniform(0.1, 0.4) * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2) * 2)[..., None]
    grain = to_array(blur(torch.from_numpy(rng.standard_normal((1, 1, size, size)).astype(np.float32)), 0.6))
    out = out + grain * rng.uniform(0.01, 0.035)
    return _app_jpeg(out.astype(np.float32), rng, 75, 92)


def messenger_reshare(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """A bigger capture shrunk to the messenger's long side and sent as 4:2:0 JPEG at 60..80; half forwarded again
    (shrunk a little more, recompressed)."""
    big = int(round(size / rng.uniform(0.55, 0.85) / 8)) * 8
    img = photograph(rng, category, big)
    method = Image.Resampling.BILINEAR if rng.random() < 0.5 else Image.Resampling.LANCZOS
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((size, size), method)
    out = _app_jpeg(np.asarray(pil, dtype=np.float32) / 255, rng, 60, 80)
    if rng.random() < 0.5:
        side = int(round(size * rng.uniform(0.9, 1.0)))
        pil = Image.fromarray((out * 255 + 0.5).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
        out = _app_jpeg(np.asarray(pil, dtype=np.float32) / 255, rng, 60, 80)
    return out


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 map taking four (x, y) points src to dst (direct linear solve, h33 = 1)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1).reshape(3, 3)


def _warp(img: torch.Tensor, hom: np.ndarray, size: int, fill: float) -> torch.Tensor:
    """Sample img (coordinates 0..1) at hom(output pixel centre in 0..1), bilinear; `fill` outside."""
    yy, xx = pixel_grid(size)
    pts = hom @ np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
    grid = (pts[:2] / pts[2]).T.reshape(1, size, size, 2) * 2 - 1
    out = F.grid_sample(img - fill, torch.from_numpy(grid.astype(np.float32)), align_corners=False)
    return out + fill


def scanner_app(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """A poster shot at an angle on a wall, then the scanner app: its corners mapped back to a square (bilinear),
    illumination flattened, levels stretched, sharpened, JPEG. (Always a poster: that is what one scans.)"""
    del category
    st = draw_settings(rng)
    poster = to_tensor(_poster(rng, int(round(2 * size * rng.uniform(1.0, 1.2)))))
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    corners = square * 0.76 + 0.12 + rng.uniform(-0.08, 0.08, size=(4, 2))
    wall = float(rng.uniform(0.05, 0.4))
    shot = _warp(poster, _homography(corners, square), int(round(2 * size * 1.2)), wall)  # scene -> poster coords
    lin = shrink(to_array(blur(shot, 1.2 * float(rng.uniform(0.4, 0.8)))), 2 * size, 2 * size)
    img = to_tensor(camera_jpeg(develop_scene(rng, lin, st), st))
    flat = _warp(img, _homography(square, corners), size, 0.0)  # the app: poster coords -> capture
    y = _luma(flat)
    flat = flat / (blur(y, size / 12) + 0.05) * (blur(y, size / 12).mean() + 0.05)
    lo, hi = torch.quantile(_luma(flat), torch.tensor([0.01, 0.99]))
    flat = ((flat - lo) / (hi - lo + 1e-3)).clamp(0, 1)
    return _app_jpeg(to_array(sharpen(flat, rng.uniform(0.8, 1.6), 1.2)), rng, 80, 92)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return torch.from_numpy(m.astype(np.float32))


def _code_plane(x: torch.Tensor, step: float) -> torch.Tensor:
    """A (1, 1, H, W) plane (H, W multiples of 8) through 8x8 DCT quantisation, steps growing with frequency."""
    _, _, h, w = x.shape
    d = _dct_matrix()
    blocks = x.view(h // 8, 8, w // 8, 8).permute(0, 2, 1, 3)  # (bh, bw, 8, 8)
    coef = d @ blocks @ d.T
    q = step * (1 + 0.35 * (torch.arange(8)[:, None] + torch.arange(8)[None, :]).float())
    blocks = d.T @ (torch.round(coef / q) * q) @ d
    return blocks.permute(0, 2, 1, 3).reshape(1, 1, h, w)


def _deblock(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Across every 8-px block edge (columns, then rows), where the step is small (a coding edge, not an image
    edge), pull the two pixels on either side towards each other."""
    for dim in (3, 2):
        idx = torch.arange(8, x.shape[dim], 8)
        a, b = x.index_select(dim, idx - 1), x.index_select(dim, idx)
        delta = (b - a) * ((b - a).abs() < alpha).float() / 4
        x = x.index_add(dim, idx - 1, delta).index_add(dim, idx, -delta)
    return x


def _codec(x: torch.Tensor, step: float) -> torch.Tensor:
    """A plane through the block codec: padded to whole blocks, coded, deblocked, cropped back."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, -w % 8, 0, -h % 8), mode="replicate")
    return _deblock(_code_plane(x, step), step * 1.5)[..., :h, :w]


def video_frame(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """A frame grabbed from a phone video: stronger denoising, 4:2:0, 8x8 block DCT at a low quality with in-loop
    deblocking, grabbed losslessly."""
    st = draw_settings(rng)
    st = replace(st, nr=st.nr * 2.5, sharpen=st.sharpen * 0.5)
    rgb = to_tensor(develop_scene(rng, render(rng, category, 2 * size), st))
    y = _luma(rgb)
    step = float(rng.uniform(0.03, 0.07))
    cb, cr = ((rgb[:, i : i + 1] - y) / k for i, k in ((2, 1.8556), (0, 1.5748)))
    cb, cr = (F.interpolate(_codec(F.avg_pool2d(c, 2), step), size=(size, size), mode="bilinear",
                            align_corners=False) for c in (cb, cr))  # fmt: skip
    y = _codec(y, step)
    r, b = y + 1.5748 * cr, y + 1.8556 * cb
    g = (y - LUMA709[0] * r - LUMA709[2] * b) / LUMA709[1]
    return to_array(torch.cat([r, g, b], 1).clamp(0, 1))


def burst_zoom(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """A x2 multi-frame zoom: four half-resolution frames, each with its hand-shake offset, upsampled, shifted
    back by the known offsets, averaged and sharpened; the camera's JPEG."""
    st = draw_settings(rng)
    half, margin = size // 2, 8
    m = int(round(size * rng.uniform(1.1, 1.35)))
    scene = SCENES[category](rng, m + margin)
    merged = torch.zeros(1, 3, size, size)
    for _ in range(4):
        oy, ox = (int(v) for v in rng.integers(0, margin + 1, size=2))
        crop = to_array(blur(to_tensor(scene[oy : oy + m, ox : ox + m]), m / size * float(rng.uniform(0.4, 0.8))))
        frame = to_tensor(develop_scene(rng, shrink(crop, 2 * half, 2 * half), st))  # (half, half)
        up = F.interpolate(frame, size=(size, size), mode="bilinear", align_corners=False)
        # this frame shows scene point p * m / size + o at output pixel p: shift it by o back onto o = 0
        shift = torch.tensor([ox, oy], dtype=torch.float32) * size / m * 2 / size
        yy, xx = pixel_grid(size)
        grid = torch.from_numpy(np.stack([xx, yy], -1)[None] * 2 - 1) - shift
        merged = merged + F.grid_sample(up, grid.float(), padding_mode="border", align_corners=False) / 4
    return camera_jpeg(to_array(sharpen(merged, rng.uniform(0.8, 1.5), 1.2)), st)


def _chrome(rng: np.random.Generator, size: int, height: int) -> tuple[Image.Image, tuple[int, int, int]]:
    """A social app's screen without its photo: status bar (clock, icons), toolbar, action icons and caption
    lines; returns it and where the photo goes (top, side, left)."""
    dark = rng.random() < 0.4
    bg, ink = ((18, 18, 18), (235, 235, 235)) if dark else ((250, 250, 250), (30, 30, 30))
    screen = Image.new("RGB", (size, height), bg)
    draw = ImageDraw.Draw(screen)
    bar = max(10, int(size * rng.uniform(0.05, 0.07)))
    font = ImageFont.load_default(size=max(8, bar - 3))
    draw.text((4, 1), f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}", fill=ink, font=font)
    for k in range(3):  # signal, wifi, battery
        draw.rectangle((size - 14 - 12 * k, 3, size - 6 - 12 * k, bar - 3), outline=ink)
    tool = bar + int(size * rng.uniform(0.07, 0.1))
    draw.ellipse((4, bar + 3, tool - bar - 3 + 4, tool - 3), fill=tuple(int(v) for v in rng.integers(60, 200, 3)))
    draw.text((tool - bar + 8, bar + 3), _word(rng), fill=ink, font=font)
    left = int(rng.integers(0, size // 12))
    side = size - 2 * left
    below = tool + side + 4
    for k in range(3):
        draw.rounded_rectangle((6 + 22 * k, below, 20 + 22 * k, below + 14), radius=4, outline=ink, width=2)
    y = below + 20
    while y < height:
        draw.text((6, y), " ".join(_word(rng) for _ in range(4)), fill=ink, font=font)
        y += bar
    return screen, (tool, side, left)


def screenshot(rng: np.random.Generator, category: str, size: int) -> np.ndarray:
    """The photo in a social app's feed: the compositor scales it (bilinear) into the screen's chrome; the
    screenshot is lossless. The screen is taller than the square ArtiFact crop, so a crop shows part of each."""
    photo = photograph(rng, category, int(round(size * rng.uniform(1.0, 1.6) / 8)) * 8)
    height = int(round(size * rng.uniform(1.5, 1.8)))
    screen, (top, side, left) = _chrome(rng, size, height)
    pil = Image.fromarray((np.clip(photo, 0, 1) * 255 + 0.5).astype(np.uint8)).resize(
        (side, side), Image.Resampling.BILINEAR)  # fmt: skip
    screen.paste(pil, (left, top))
    return np.asarray(screen, dtype=np.float32) / 255


PipelineFn = Callable[[np.random.Generator, str, int], np.ndarray]  # (rng, category, size) -> display image
PIPELINES: dict[str, PipelineFn] = {
    "portrait_blur": portrait_blur,
    "beauty_filter": beauty_filter,
    "photo_filter": photo_filter,
    "messenger_reshare": messenger_reshare,
    "scanner_app": scanner_app,
    "video_frame": video_frame,
    "burst_zoom": burst_zoom,
    "screenshot": screenshot,
}


# ---------------------------------------------------------------- the learned generators (fitted in prepare())
def _c3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, padding_mode="replicate")


def _up(cin: int, cout: int) -> nn.Sequential:
    """Nearest x2, then a 3x3 conv and a leaky ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _c3(cin, cout), nn.LeakyReLU(0.2))


class _Res(nn.Module):
    """conv, leaky ReLU, conv, scaled by `scale`, plus the input (ESRGAN keeps residuals small)."""

    def __init__(self, width: int, scale: float = 1.0) -> None:
        super().__init__()
        self.body, self.scale = nn.Sequential(_c3(width, width), nn.LeakyReLU(0.2), _c3(width, width)), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.body(x)


class VQAutoencoder(nn.Module):
    """Strided-conv encoder to a x4 latent, nearest codebook entry per cell (straight-through), residual decoder
    with nearest x2 + conv stages. forward returns the image and the codebook + commitment loss."""

    def __init__(self, width: int = 32, dim: int = 16, codes: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, width, 4, 2, 1), nn.SiLU(), nn.Conv2d(width, width, 4, 2, 1),
                                     nn.SiLU(), nn.Conv2d(width, dim, 1))  # fmt: skip
        self.codebook = nn.Parameter(torch.randn(codes, dim) * 0.5)
        self.decoder = nn.Sequential(_c3(dim, width), _Res(width), _up(width, width), _up(width, width // 2),
                                     _c3(width // 2, 3))  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)  # (N, D, h, w)
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        dist = (flat**2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + (self.codebook**2).sum(1)
        q = self.codebook[dist.argmin(1)].view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        vq_loss = F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        return self.decoder(z + (q - z).detach()), vq_loss


class TinyUNet(nn.Module):
    """A two-level U-Net denoiser: (noisy image, noise level map) -> the clean image (as a residual)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 3 * width
        self.inp = nn.Sequential(_c3(4, w1), nn.SiLU(), _c3(w1, w1), nn.SiLU())
        self.down1 = nn.Sequential(nn.Conv2d(w1, w2, 4, 2, 1), nn.SiLU(), _c3(w2, w2), nn.SiLU())
        self.down2 = nn.Sequential(nn.Conv2d(w2, w3, 4, 2, 1), nn.SiLU(), _c3(w3, w3), nn.SiLU())
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _c3(w3, w2), nn.SiLU())
        self.merge2 = nn.Sequential(_c3(2 * w2, w2), nn.SiLU())
        self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _c3(w2, w1), nn.SiLU())
        self.merge1 = nn.Sequential(_c3(2 * w1, w1), nn.SiLU(), nn.Conv2d(w1, 3, 1))

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        level = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1).expand(len(x), 1, *x.shape[-2:])
        s1 = self.inp(torch.cat([x, level], 1))
        s2 = self.down1(s1)  # (N, 2w, H/2, W/2)
        h = self.merge2(torch.cat([self.up2(self.down2(s2)), s2], 1))
        return x + self.merge1(torch.cat([self.up1(h), s1], 1))


class SRUpscaler(nn.Module):
    """ESRGAN-like x4: head conv, scaled residual blocks and a trunk conv at low resolution, nearest x2 + conv
    twice, an HR conv and the output conv."""

    def __init__(self, width: int = 32, blocks: int = 3) -> None:
        super().__init__()
        self.head = _c3(3, width)
        self.trunk = nn.Sequential(*(_Res(width, 0.2) for _ in range(blocks)), _c3(width, width))
        self.tail = nn.Sequential(_up(width, width), _up(width, width), _c3(width, width), nn.LeakyReLU(0.2),
                                  _c3(width, 3))  # fmt: skip

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        h = self.head(lr)
        return self.tail(h + self.trunk(h))


MODELS: dict[str, type[nn.Module]] = {"vq_decoder": VQAutoencoder, "unet_img2img": TinyUNet, "sr_upscaler": SRUpscaler}


def _spectral(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between log amplitude spectra: asks for the target's fine-detail energy, not only its mean."""
    return (torch.log1p(torch.fft.rfft2(out).abs()) - torch.log1p(torch.fft.rfft2(target).abs())).abs().mean()


def _step_loss(name: str, model: nn.Module, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One batch's loss for generator `name` (x in -1..1)."""
    if name == "vq_decoder":
        out, vq_loss = model(x)
        return (out - x).abs().mean() + 0.1 * _spectral(out, x) + vq_loss
    if name == "unet_img2img":
        sigma = torch.from_numpy(rng.uniform(0.02, 0.5, size=len(x)).astype(np.float32))
        noise = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
        return (model(x + sigma.view(-1, 1, 1, 1) * noise, sigma) - x).abs().mean()
    out = model(F.avg_pool2d(x, 4))
    return (out - x).abs().mean() + 0.1 * _spectral(out, x)


def _training_pool(count: int, side: int) -> torch.Tensor:
    """(count, 3, side, side) camera images on the generators' own seed stream (never a written image's)."""
    rng = np.random.default_rng([GENERATOR_SEED, 0])
    images = [photograph(rng, CATEGORIES[i % len(CATEGORIES)], side) for i in range(count)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _fit_one(name: str, pool: torch.Tensor, steps: int) -> dict[str, np.ndarray]:
    """Fit generator `name` on random crops of the pool (Adam, fixed steps); its weights as numpy arrays."""
    return fit_on_crops(MODELS[name], lambda model, crops, rng: _step_loss(name, model, crops * 2 - 1, rng), pool,
                        steps, FIT, float(FIT["lr"]), GENERATOR_SEED, GENERATOR_NAMES.index(name) + 1)


def fit_generators(steps: int = int(FIT["steps"])) -> dict[str, dict[str, np.ndarray]]:
    """The set's prepare(): every generator fitted on one pool of camera images, on one thread (deterministic)."""
    torch.set_num_threads(1)
    pool = _training_pool(int(FIT["pool"]), int(FIT["pool_side"]))
    return {name: _fit_one(name, pool, steps) for name in GENERATOR_NAMES}


def _run_model(name: str, model: nn.Module, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Generator `name` on x (1, 3, H, W) in -1..1: the VQ reconstruction, img2img from SIGMA, or the x4 upscale."""
    if name == "vq_decoder":
        return model(x)[0]
    if name == "sr_upscaler":
        return model(F.avg_pool2d(x, 4))
    sigmas = np.linspace(SIGMA, 0, DDIM_STEPS + 1)
    z = x + SIGMA * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
    for s, s_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        x0 = model(z, float(s))
        z = x0 + (s_next / s) * (z - x0)  # deterministic DDIM-like step along the noise direction
    return z


def generate(img: np.ndarray, rng: np.random.Generator, states: dict[str, Any] | None, name: str) -> np.ndarray:
    """The fake: the camera image moved MIX of the way to generator `name`'s output (fitted weights needed)."""
    if states is None:
        raise ValueError(f"{name} needs the fitted generators (the set's prepare())")
    model = MODELS[name]()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in states[name].items()})
    model.eval()
    with torch.no_grad():
        out = (to_array(_run_model(name, model, to_tensor(img) * 2 - 1, rng)) + 1) / 2
    return (img + MIX[name] * (out - img)).astype(np.float32)


# ---------------------------------------------------------------- the set
def make_image(source: str, index: int, seed: int, prepared: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """JPEG bytes and category of image `index` of `source`; a pure function of its arguments (one torch thread)."""
    rng = np.random.default_rng([seed, list(TARGETS).index(source), index])
    size = int(rng.integers(RENDER_MIN, RENDER_MAX + 1)) // 8 * 8
    category = "poster" if source == "scanner_app" else str(rng.choice(CATEGORIES))
    if source in PIPELINES:
        img = PIPELINES[source](rng, category, size)
    else:
        img = photograph(rng, category, size)
        if source in GENERATOR_NAMES:
            img = generate(img, rng, prepared, source)
    return artifact_postprocess(img, rng, min_side=MIN_CROP), category


def hard_real2_set(steps: int = int(FIT["steps"])) -> GeneratedSet:
    """The set, its generators fitted for `steps` steps (fewer only in tests: other weights, other fakes)."""
    return GeneratedSet(
        name="hard_real2",
        targets=TARGETS,
        categories=CATEGORIES,
        make_image=make_image,
        root=Path("data/hard_real2"),
        real_share=1.0,  # each processed source as large as each generator; camera 1 : AI 3 in the plain part
        prepare=partial(fit_generators, steps=steps),
        needs_prepared=GENERATOR_NAMES,
        description="sealed: facades, knitwear, harbours, posters; a quad-Bayer camera, 8 processed real sources "
        "(held out), VQ, U-Net img2img and x4 upscaler fakes fitted here",
    )


HARD_REAL2 = hard_real2_set()
