"""The blind set: an evaluation set in the ArtiFact layout, made differently from the demo data and the outside set.

The recipe is tuned on it (it is a tuning set; `benchmarks.sets.sealed` is the held-out one). Its trace strengths
were set with a plain CNN only (`benchmarks.baseline_cnn`), never with the recipe.

Real sources (target 0), each scene rendered at 1x-2x the image size, blurred by a lens and shrunk by
area averaging onto the sensor grid, then a full-RGB (three-chip, no colour filter array) sensor:
vignetting, lateral chromatic aberration, Poisson-Gaussian noise with a luma part and a low-passed
chroma part (as in-camera noise reduction leaves it), column fixed-pattern noise, a filmic tone curve.
- ``materials``: Turing patterns (iterated difference-of-Gaussians + tanh, reaction-diffusion-like),
  veined marble from absolute-value turbulence, woven fabric (plain/twill/basket, tartan threads, draped).
- ``renders``: ray-cast spheres on a textured ground with soft shadows and fog, branching
  L-system-like trees with leaves and grass, bright-field or fluorescence micrographs of cells.

AI sources (each applied to the images of both real sources, picked per image, so content is no cue):
- ``spectral_sr`` (target 4): x2 area latent, Fourier (zero-padded FFT, sinc) upsampling with a
  boost below the cutoff (ringing, no periodic grid), plus tinted detail: harmonics of the content (a
  pointwise nonlinearity) and a little noise, shaped by fixed random spectral lobes at 0.13-0.30
  cycles per pixel (a stationary spectrum, not a grid).
- ``wavelet_synth`` (target 8): two-level Daubechies-2 DWT; the detail bands soft-thresholded and
  re-synthesised by a fixed random conv net from the approximation band (zero on flat areas), then
  the inverse DWT.
- ``patch_vq`` (target 9): vision-transformer-like 8x8 patch tokens (a PCA patch embedding fitted on
  real content), two-stage residual vector quantisation with k-means codebooks, linear patch
  un-embedding (blocky seams on the patch grid).

GENERATOR_SEED fixes every generator's weights, whatever the dataset seed. `synthetic.finished_image` makes each
image from these parts and gives both classes ArtiFact's finish.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from benchmarks.sets import synthetic
from benchmarks.sets.synthetic import blur, pixel_grid, random_colour, shrink, to_array, to_tensor

GENERATOR_SEED = 5_190_827  # fixes every generator's weights, independently of the dataset seed
TARGETS = {"materials": 0, "renders": 0, "spectral_sr": 4, "wavelet_synth": 8, "patch_vq": 9}  # in source order
CATEGORIES = {"materials": ("turing", "marble", "weave"), "renders": ("spheres", "plants", "cells")}  # per real source
REAL_SOURCES = tuple(CATEGORIES)
# trace strengths, set with the plain CNN (baseline_cnn.py, 600 steps, the three families together) so that it lands
# between chance and trivial, as on the outside set; frozen: every image depends on them
STRENGTH = {
    "spec_ring": 1.5,  # gain of the boost just below the Fourier cutoff (ringing)
    "spec_detail": 0.05,  # rms of the shaped detail above the cutoff (image values in 0..1)
    "wav_shrink": 0.03,  # soft threshold of the true detail bands (level 1; doubled at level 2)
    "wav_detail": 0.22,  # amplitude of the re-synthesised detail (level 1; doubled at level 2)
    "vq_mix": 1.0,  # share of the quantised patch reconstruction (1 - the original's share)
    "vq_dims": 16,  # token dimensions of the 192-value 8x8x3 patch
    "vq_codes": 192,  # codebook size of each of the two residual stages
}


# ---------------------------------------------------------------- small helpers


def _field(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """A smooth random (n, n) field: a cells x cells Gaussian grid, bicubic-upsampled, unit std."""
    grid = torch.from_numpy(rng.standard_normal((1, 1, cells + 1, cells + 1)).astype(np.float32))
    out = F.interpolate(grid, size=(n, n), mode="bicubic", align_corners=True)[0, 0].numpy()
    return out / (out.std() + 1e-6)


def _turbulence(rng: np.random.Generator, n: int, octaves: int, cells: int) -> np.ndarray:
    """Perlin's turbulence: a sum of absolute-valued octaves of smooth noise."""
    return sum(0.5**o * np.abs(_field(rng, n, cells * 2**o)) for o in range(octaves))


# ---------------------------------------------------------------- real content: materials
def _turing(rng: np.random.Generator, n: int) -> np.ndarray:
    """Turing (reaction-diffusion-like) spots, stripes or mazes: iterated band-pass + tanh, shaded."""
    g = n // 2
    fy, fx = np.fft.fftfreq(g)[:, None], np.fft.rfftfreq(g)[None, :]
    theta, stretch = rng.uniform(0, np.pi), rng.uniform(0.7, 1.5)
    u, v = fx * np.cos(theta) + fy * np.sin(theta), -fx * np.sin(theta) + fy * np.cos(theta)
    f2 = (u * stretch) ** 2 + (v / stretch) ** 2
    s = rng.uniform(0.8, 2.2) * g / 128  # feature scale, in grid pixels
    band = np.exp(-f2 * (2 * np.pi * s) ** 2 / 2) - np.exp(-f2 * (2 * np.pi * 2 * s) ** 2 / 2)
    x, bias = rng.standard_normal((g, g)), rng.uniform(-0.4, 0.4)  # the bias picks spots vs stripes
    for _ in range(12):
        y = np.fft.irfft2(np.fft.rfft2(x) * band, s=(g, g))
        x = np.tanh(3 * (y / (y.std() + 1e-8) + bias))
    h = F.interpolate(torch.from_numpy(x.astype(np.float32))[None, None], size=(n, n), mode="bicubic")
    h = blur(h, 0.6 * n / g)[0, 0].numpy()
    gy, gx = np.gradient(h)
    az = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0.5, 3) * (gx * np.cos(az) + gy * np.sin(az))
    t = ((h + 1) / 2)[..., None]
    img = random_colour(rng) * (1 - t) + random_colour(rng) * t
    light = 1 + 0.25 * _field(rng, n, 2)[..., None]
    return np.clip(img * shade[..., None] * light, 0, 1) ** 2.2


def _marble(rng: np.random.Generator, n: int) -> np.ndarray:
    """Polished marble: veins where sin(stripes + turbulence) crosses zero, cloudy base, a soft reflection."""
    yy, xx = pixel_grid(n)
    turb = _turbulence(rng, n, 5, int(rng.integers(2, 5)))
    theta, freq, amp = rng.uniform(0, np.pi), rng.uniform(1.5, 6), rng.uniform(2, 7)
    wave = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + amp * turb)
    vein = ((1 - np.abs(wave)) ** rng.uniform(5, 25))[..., None]
    fine = ((1 - np.abs(np.sin(9 * amp * turb))) ** 30)[..., None] * rng.uniform(0, 0.6)
    cloud = _field(rng, n, 4)[..., None]
    base = random_colour(rng, 0.5, 1.0) * (0.88 + 0.06 * cloud)
    img = base * (1 - vein) + random_colour(rng, 0.0, 0.6) * vein
    img = img * (1 - fine) + random_colour(rng, 0.2, 0.9) * fine
    cy, cx, r = rng.uniform(0, 1, size=3)
    glare = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.05 + 0.2 * r))[..., None] * rng.uniform(0, 0.3)
    return np.clip(img + glare, 0, 1) ** 2.2


def _weave(rng: np.random.Generator, n: int) -> np.ndarray:
    """Woven cloth: over/under threads (plain, twill or basket), tartan thread colours, draped and lit."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    period = rng.uniform(5, 14) * n / 260
    drape = _field(rng, n, 3) * rng.uniform(0, 6) * n / 260
    theta = rng.uniform(-0.4, 0.4)
    u = (xx * np.cos(theta) + yy * np.sin(theta) + drape) / period
    v = (-xx * np.sin(theta) + yy * np.cos(theta) + 0.7 * drape) / period
    iu, iv, fu, fv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64), u % 1, v % 1
    kind = int(rng.integers(3))
    over = [(iu + iv) % 2 == 0, (iu + iv) % 4 < 2, (iu // 2 + iv // 2) % 2 == 0][kind][..., None]
    warp_pal, weft_pal = rng.uniform(0.05, 0.9, size=(int(rng.integers(2, 6)), 3)), rng.uniform(0.05, 0.9, size=(3, 3))
    warp = warp_pal[(iu // int(rng.integers(1, 5))) % len(warp_pal)]
    weft = weft_pal[(iv // int(rng.integers(1, 5))) % len(weft_pal)]
    fibre = 0.1 * _field(rng, n, max(4, n // 6))[..., None]
    warp_shade = np.sqrt(np.sin(np.pi * fu))[..., None] * (0.7 + 0.3 * np.sin(np.pi * fv))[..., None]
    weft_shade = np.sqrt(np.sin(np.pi * fv))[..., None] * (0.7 + 0.3 * np.sin(np.pi * fu))[..., None]
    img = np.where(over, warp * warp_shade, weft * weft_shade) * (1 + fibre)
    gy, gx = np.gradient(drape)
    light = 1 + 0.15 * (gx + gy)[..., None] * 260 / n
    return np.clip(img * light, 0, 1) ** 2.2


# ---------------------------------------------------------------- real content: renders
def _sphere_hits(orig: np.ndarray, d: np.ndarray, spheres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest positive ray-sphere hit distance (inf if none) and which sphere, for rays d from orig."""
    best, which = np.full(d.shape[:2], np.inf, dtype=np.float32), np.full(d.shape[:2], -1)
    for i, (cx, cy, cz, r) in enumerate(spheres):
        oc = orig - np.array([cx, cy, cz], dtype=np.float32)
        b = (d * oc).sum(-1)
        disc = b * b - ((oc * oc).sum(-1) - r * r)
        t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        t = np.where(t > 1e-3, t, np.inf)
        which = np.where(t < best, i, which)
        best = np.minimum(best, t)
    return best, which


def _soft_shadow(p: np.ndarray, sun: np.ndarray, spheres: np.ndarray, k: float) -> np.ndarray:
    """Light reaching points p: a penumbra cone from each sphere's closest approach to the sun ray."""
    lit = np.ones(p.shape[:2], dtype=np.float32)
    for cx, cy, cz, r in spheres:
        cp = np.array([cx, cy, cz], dtype=np.float32) - p
        t = np.maximum((cp * sun).sum(-1), 1e-3)
        dist = np.sqrt(np.maximum((cp * cp).sum(-1) - t * t, 0))
        lit = np.minimum(lit, np.where((cp * sun).sum(-1) > 0, np.clip((dist - r) / (k * t) + 0.5, 0, 1), 1))
    return lit


def _spheres(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ray-cast spheres on a checker or tiled ground: diffuse + specular light, soft shadows, sky, fog."""
    yy, xx = pixel_grid(n)
    pitch, fov = rng.uniform(0.15, 0.5), rng.uniform(0.5, 0.9)
    d = np.stack([(xx - 0.5) * fov, (0.5 - yy) * fov - pitch, -np.ones_like(xx)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    orig = np.array([0, rng.uniform(1.0, 2.5), 0], dtype=np.float32)
    m = int(rng.integers(2, 8))
    r = rng.uniform(0.3, 1.2, size=m)
    spheres = np.stack([rng.uniform(-4, 4, m), r, rng.uniform(-12, -3, m), r], 1).astype(np.float32)
    cols = rng.uniform(0.05, 0.9, size=(m, 3)).astype(np.float32)
    sun = np.array([rng.uniform(-1, 1), rng.uniform(0.3, 1.2), rng.uniform(-1, 0.5)], dtype=np.float32)
    sun /= np.linalg.norm(sun)
    t_sph, which = _sphere_hits(orig, d, spheres)
    t_gnd = np.where(d[..., 1] < -1e-4, -orig[1] / np.minimum(d[..., 1], -1e-4), np.inf)
    t = np.minimum(t_sph, t_gnd)
    p = orig + d * np.where(np.isfinite(t), t, 0)[..., None]
    normal = np.where((t_sph < t_gnd)[..., None], p - spheres[which, :3], np.array([0, 1, 0], dtype=np.float32))
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-6
    scale = rng.uniform(0.5, 2)
    checker = ((np.floor(p[..., 0] * scale) + np.floor(p[..., 2] * scale)) % 2)[..., None]
    ground = random_colour(rng) * (1 - checker) + random_colour(rng) * checker
    albedo = np.where((t_sph < t_gnd)[..., None], cols[which], ground)
    diffuse = np.clip((normal * sun).sum(-1), 0, 1) * _soft_shadow(p + normal * 1e-3, sun, spheres, 0.05)
    half = sun - d
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    spec = np.where(t_sph < t_gnd, np.clip((normal * half).sum(-1), 0, 1) ** rng.uniform(10, 80), 0)
    sky = random_colour(rng, 0.4, 1.0) * (1 - 0.5 * yy[..., None]) ** 2
    img = albedo * (0.25 * sky + diffuse[..., None]) + 0.5 * spec[..., None] * diffuse[..., None]
    fog = (1 - np.exp(-np.where(np.isfinite(t), t, 1e9) * rng.uniform(0.005, 0.05)))[..., None]
    return np.clip(img * (1 - fog) + sky * fog, 0, 1).astype(np.float32) ** 2.0


def _tree(draw: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, y: float, n: int) -> None:
    """A stochastic branching tree (an L-system-like turtle, drawn from a stack), leaves at its tips."""
    bark = tuple(int(v) for v in rng.integers(30, 110, size=3))
    leaf = np.array([rng.integers(20, 200), rng.integers(80, 220), rng.integers(0, 90)])
    spread, ratio = rng.uniform(0.25, 0.7), rng.uniform(0.65, 0.8)
    stack = [(x, y, -np.pi / 2 + rng.normal(0, 0.1), rng.uniform(0.12, 0.25) * n, rng.uniform(0.01, 0.03) * n, 0)]
    depth = int(rng.integers(6, 9))
    while stack:
        x0, y0, ang, length, width, level = stack.pop()
        x1, y1 = x0 + length * np.cos(ang), y0 + length * np.sin(ang)
        draw.line((x0, y0, x1, y1), fill=bark, width=max(1, int(width)))
        if level >= depth:
            for _ in range(3):
                lx, ly = x1 + rng.normal(0, 0.012 * n), y1 + rng.normal(0, 0.012 * n)
                s = rng.uniform(0.004, 0.012) * n
                fill = tuple(int(c) for c in np.clip(leaf + rng.normal(0, 25, size=3), 0, 255))
                draw.ellipse((lx - s, ly - s * 0.6, lx + s, ly + s * 0.6), fill=fill)
            continue
        for _ in range(int(rng.integers(2, 4))):
            child = ang + rng.uniform(-spread, spread)
            stack.append((x1, y1, child, length * ratio * rng.uniform(0.8, 1.1), width * 0.7, level + 1))


def _plants(rng: np.random.Generator, n: int) -> np.ndarray:
    """Trees on a hillside under a gradient sky, grass strokes in front (drawn, shrunk later)."""
    yy, xx = pixel_grid(n)
    top, low = random_colour(rng, 0.3, 1.0), random_colour(rng, 0.5, 1.0)
    sky = top * (1 - yy[..., None]) + low * yy[..., None]
    canvas = Image.fromarray((np.clip(sky, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    horizon = rng.uniform(0.45, 0.8) * n
    hills = horizon + 0.08 * n * _field(rng, n, 5)[0]
    ground = tuple(int(v) for v in rng.integers(40, 160, size=3))
    draw.polygon([(0, n), *[(i, hills[i]) for i in range(0, n, 4)], (n - 1, hills[-1]), (n, n)], fill=ground)
    for _ in range(int(rng.integers(1, 4))):
        x = rng.uniform(0.1, 0.9) * n
        _tree(draw, rng, x, hills[min(n - 1, int(x))] + rng.uniform(0, 0.1) * n, n)
    grass = np.array(ground) * rng.uniform(0.6, 1.4)
    for _ in range(int(rng.integers(50, 300))):
        gx, gy = rng.uniform(0, n), rng.uniform(horizon, n)
        tip = (gx + rng.normal(0, 0.01 * n), gy - rng.uniform(0.01, 0.05) * n)
        fill = tuple(int(c) for c in np.clip(grass + rng.normal(0, 20, size=3), 0, 255))
        draw.line((gx, gy, *tip), fill=fill, width=max(1, n // 200))
    return (np.asarray(canvas, dtype=np.float32) / 255.0) ** 2.2


def _cells(rng: np.random.Generator, n: int) -> np.ndarray:
    """A micrograph: cells with membrane, granular cytoplasm and nucleus; bright field (absorbing) or fluorescence."""
    bright = rng.random() < 0.6
    img = np.ones((n, n, 3), dtype=np.float32) * (
        random_colour(rng, 0.8, 1.0) if bright else random_colour(rng, 0.0, 0.05)
    )
    grain = _field(rng, n, n // 8)
    stain, glow = rng.uniform(0.2, 1.5, size=3).astype(np.float32), random_colour(rng, 0.1, 0.9)
    for _ in range(int(rng.integers(8, 45))):
        cy, cx = rng.uniform(0, n, size=2)
        ry, rx = rng.uniform(0.03, 0.12, size=2) * n
        th = rng.uniform(0, np.pi)
        reach = int(max(ry, rx) * 1.3) + 2
        y0, y1, x0, x1 = (
            max(0, int(cy) - reach),
            min(n, int(cy) + reach),
            max(0, int(cx) - reach),
            min(n, int(cx) + reach),
        )
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32) - np.array([cy, cx], dtype=np.float32)[:, None, None]
        u, v = (dx * np.cos(th) + dy * np.sin(th)) / rx, (-dx * np.sin(th) + dy * np.cos(th)) / ry
        rr = np.sqrt(u * u + v * v)
        body = 1 / (1 + np.exp(np.clip((rr - 1) * 12, -30, 30)))
        membrane = np.exp(-(((rr - 1) * 10) ** 2))
        nucleus = 1 / (1 + np.exp(np.clip((np.hypot(u - 0.2, v) - 0.35) * 15, -30, 30)))
        dens = body * (0.3 + 0.15 * grain[y0:y1, x0:x1]) + 0.6 * membrane + 0.8 * nucleus
        region = img[y0:y1, x0:x1]
        if bright:
            region *= np.exp(-dens[..., None] * stain * rng.uniform(0.3, 1.0))
        else:
            region += dens[..., None] * glow * rng.uniform(0.2, 0.8)
    return np.clip(img, 0, 1)


SCENES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "turing": _turing,
    "marble": _marble,
    "weave": _weave,
    "spheres": _spheres,
    "plants": _plants,
    "cells": _cells,
}


# ---------------------------------------------------------------- the camera (full RGB, no mosaic)
def _chromatic(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Lateral chromatic aberration: red magnified, blue shrunk about the centre (bilinear resampling)."""
    _, _, h, w = x.shape
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]
    out = [
        F.grid_sample(x[:, c : c + 1], base * (1 - s), mode="bilinear", padding_mode="border", align_corners=True)
        for c, s in enumerate((amount, 0.0, -amount))
    ]
    return torch.cat(out, 1)


def _sensor(rng: np.random.Generator, lin: np.ndarray) -> np.ndarray:
    """Full-RGB sensor: vignetting, lateral CA, luma + low-passed chroma noise, column FPN, filmic tone curve."""
    h, w, _ = lin.shape
    yy, xx = pixel_grid(h)[0][:, :1], pixel_grid(w)[1][:1, :]
    r2 = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2) * 2
    x = lin * rng.uniform(0.7, 1.3) * (1 - rng.uniform(0.05, 0.35) * r2)[..., None]
    x = to_array(_chromatic(to_tensor(x), float(rng.uniform(0.0005, 0.004))))
    gain, read = rng.uniform(0.0003, 0.003), rng.uniform(0.0005, 0.003)
    sigma = np.sqrt(gain * np.clip(x, 0, None) + read * read)
    luma = rng.standard_normal((h, w, 1)).astype(np.float32)
    chroma = to_array(blur(to_tensor(rng.standard_normal((h, w, 3))), float(rng.uniform(0.7, 1.5))))
    chroma /= chroma.std() + 1e-6
    column = rng.normal(0, rng.uniform(0.0, 0.002), size=(1, w, 1)).astype(np.float32)
    x = np.clip(x + sigma * (0.8 * luma + 0.6 * chroma) + column, 0, None)
    knee = rng.uniform(2.0, 6.0)  # filmic shoulder (Reinhard with a white point), then display gamma
    y = x * (1 + x / (knee * knee)) / (1 + x)
    return np.clip(y / (1 + 1 / knee) * 1.6, 0, 1) ** (1 / 2.2)


def _real_image(source: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A real image of `source`: its scene rendered at 1x-2x, lens blur, area-shrunk onto the sensor."""
    category = str(rng.choice(CATEGORIES[source]))
    scale = float(rng.uniform(1.0, 2.0))
    n = int(round(size * scale))
    scene = SCENES[category](rng, n).astype(np.float32)
    scene = to_array(blur(to_tensor(scene), scale * float(rng.uniform(0.3, 0.6))))
    return _sensor(rng, shrink(scene, size, size)), category


# ---------------------------------------------------------------- "generators" (fixed weights)
def _weights_rng(family: int) -> np.random.Generator:
    """The fixed random source of one generator family's weights."""
    return np.random.default_rng([GENERATOR_SEED, family])


def _band_gain(n: int, cutoff: float, centre: float, width: float) -> torch.Tensor:
    """Per-axis bump exp(-((|f| / cutoff - centre) / width)^2) on an n-point centred frequency axis."""
    f = torch.abs(torch.arange(n, dtype=torch.float32) - n // 2) / cutoff
    return torch.exp(-(((f - centre) / width) ** 2))


def _fourier_up(lat: torch.Tensor, ring: float) -> torch.Tensor:
    """x2 sinc interpolation of a mirror-extended latent (no wrap seam), with a boost below the cutoff."""
    _, c, h, w = lat.shape
    ext = torch.cat([lat, lat.flip(-1)], -1)
    ext = torch.cat([ext, ext.flip(-2)], -2)
    spec = torch.fft.fftshift(torch.fft.fft2(ext), dim=(-2, -1))
    big = torch.zeros(1, c, 4 * h, 4 * w, dtype=spec.dtype)
    big[..., h : 3 * h, w : 3 * w] = spec
    gain = (1 + ring * _band_gain(4 * h, h, 0.85, 0.1))[:, None] * (1 + ring * _band_gain(4 * w, w, 0.85, 0.1))[None]
    out = torch.fft.ifft2(torch.fft.ifftshift(big * gain, dim=(-2, -1))).real * 4
    return out[..., : 2 * h, : 2 * w]


@cache
def _spectral_weights() -> dict[str, torch.Tensor]:
    """The detail filter's spectral lobes above the latent's cutoff (frequency, gain, phase) and its colour."""
    rng = _weights_rng(1)
    radius, angle = rng.uniform(0.13, 0.3, size=6), rng.uniform(0, np.pi, size=6)
    w = {
        "fy": radius * np.sin(angle),  # lobe centres in cycles per pixel: a stationary, non-grid spectrum
        "fx": radius * np.cos(angle),
        "even": rng.uniform(0.3, 1.0, size=6),
        "odd": rng.uniform(-1.0, 1.0, size=6),
        "tint": rng.uniform(0.2, 1.4, size=(3, 1, 1)),
    }
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}


@lru_cache(maxsize=32)
def _detail_filter(h: int, w: int, width: float = 0.03) -> torch.Tensor:
    """(h, w) complex transfer: Gaussian lobes at +-f (even part real, odd part imaginary: a real filter)."""
    wt = _spectral_weights()
    fy, fx = torch.fft.fftfreq(h)[:, None, None], torch.fft.fftfreq(w)[None, :, None]
    plus = torch.exp(-((fy - wt["fy"]) ** 2 + (fx - wt["fx"]) ** 2) / (2 * width**2))
    minus = torch.exp(-((fy + wt["fy"]) ** 2 + (fx + wt["fx"]) ** 2) / (2 * width**2))
    return torch.complex(((plus + minus) * wt["even"]).sum(-1), ((plus - minus) * wt["odd"]).sum(-1))


def _spectral_sr(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x2 area latent, Fourier upsampling with ringing, and tinted detail: harmonics of the content (a pointwise
    nonlinearity) plus a little noise, shaped by the fixed spectral lobes (no periodic grid)."""
    up = _fourier_up(F.avg_pool2d(to_tensor(img), 2), STRENGTH["spec_ring"])
    luma = up.mean(1, keepdim=True)
    band = luma - blur(luma, 1.5)
    drive = band / (band.std() + 1e-6)
    harm = torch.tanh(1.5 * drive) + 0.4 * (drive.abs() - drive.abs().mean())
    harm = harm + 0.2 * torch.from_numpy(rng.standard_normal(harm.shape).astype(np.float32))
    harm = F.pad(harm, (16,) * 4, mode="reflect")
    detail = torch.fft.ifft2(torch.fft.fft2(harm) * _detail_filter(*harm.shape[-2:])).real[..., 16:-16, 16:-16]
    detail = detail / (detail.std() + 1e-6) * _spectral_weights()["tint"]
    return to_array(up + STRENGTH["spec_detail"] * detail)


@cache
def _wavelet_weights() -> dict[str, torch.Tensor]:
    """The Daubechies-2 filter bank (LL, LH, HL, HH) and a fixed random detail net per level."""
    s3 = math.sqrt(3)
    h0 = np.array([1 + s3, 3 + s3, 3 - s3, 1 - s3]) / (4 * math.sqrt(2))
    h1 = h0[::-1] * np.array([1, -1, 1, -1])
    w = {"bank": np.stack([np.outer(a, b) for a in (h0, h1) for b in (h0, h1)])[:, None]}
    rng = _weights_rng(2)
    for level in (1, 2):
        w1 = rng.normal(0, 0.6, size=(24, 3, 3, 3))
        w[f"w1_{level}"] = w1 - w1.mean(axis=(2, 3), keepdims=True)  # respond to structure, not to brightness
        w[f"b1_{level}"] = rng.normal(0, 0.3, size=24)
        w[f"w2_{level}"] = rng.normal(0, 1, size=(9, 24, 3, 3)) / math.sqrt(24 * 9)
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}


def _dwt(x: torch.Tensor) -> torch.Tensor:
    """One orthonormal DWT level, periodic boundary: (1, C, H, W) -> (C, 4, H/2, W/2)."""
    c, h, w = x.shape[1:]
    return F.conv2d(F.pad(x.reshape(c, 1, h, w), (0, 2, 0, 2), mode="circular"), _wavelet_weights()["bank"], stride=2)


def _idwt(coef: torch.Tensor) -> torch.Tensor:
    """The inverse (transposed) DWT level with the periodic wrap: (C, 4, h, w) -> (1, C, 2h, 2w)."""
    c, _, h, w = coef.shape
    out = F.conv_transpose2d(coef, _wavelet_weights()["bank"], stride=2)
    out[..., :2, :] += out[..., 2 * h :, :]
    out[..., :, :2] += out[..., :, 2 * w :]
    return out[..., : 2 * h, : 2 * w].reshape(1, c, 2 * h, 2 * w)


def _resynth(ll: torch.Tensor, detail: torch.Tensor, level: int) -> torch.Tensor:
    """Shrunk true detail bands + detail predicted from the approximation band by the level's fixed net."""
    wt = _wavelet_weights()
    x = ll[None, :, 0] / 2**level - 0.5  # the approximation band, back on the image's scale
    bias = wt[f"b1_{level}"][:, None, None]
    f = torch.tanh(F.conv2d(F.pad(x, (1,) * 4, mode="replicate"), wt[f"w1_{level}"]) + bias) - torch.tanh(bias)
    pred = F.conv2d(F.pad(f, (1,) * 4, mode="replicate"), wt[f"w2_{level}"]).reshape(3, 3, *ll.shape[-2:])
    tau = STRENGTH["wav_shrink"] * 2 ** (level - 1)
    shrunk = torch.sign(detail) * (detail.abs() - tau).clamp(min=0)
    return torch.cat([ll, shrunk + STRENGTH["wav_detail"] * 2 ** (level - 1) * pred], 1)


def _wavelet_synth(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two-level db2 DWT of the image; both levels' detail bands re-synthesised; inverse DWT."""
    x = F.pad(to_tensor(img), (8,) * 4, mode="reflect")
    c1 = _dwt(x)
    c2 = _dwt(c1[:, :1].permute(1, 0, 2, 3))
    ll1 = _idwt(_resynth(c2[:, :1], c2[:, 1:], 2))
    out = _idwt(_resynth(ll1[0][:, None], c1[:, 1:], 1))
    return to_array(out[..., 8:-8, 8:-8])


def _patches(img: np.ndarray, p: int = 8) -> np.ndarray:
    """(H, W, 3) -> (H/p * W/p, p * p * 3) non-overlapping patches, row-major."""
    h, w, c = img.shape
    return img.reshape(h // p, p, w // p, p, c).transpose(0, 2, 1, 3, 4).reshape(-1, p * p * c)


def _unpatch(patches: np.ndarray, h: int, w: int, p: int = 8) -> np.ndarray:
    return patches.reshape(h // p, w // p, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(h, w, 3)


def _kmeans(rng: np.random.Generator, x: np.ndarray, k: int, iters: int = 10) -> np.ndarray:
    """Lloyd's k-means from k random rows: the codebook of one quantiser stage."""
    codes = x[rng.choice(len(x), size=k, replace=False)].copy()
    for _ in range(iters):
        assign = _nearest(codes, x)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                codes[j] = members.mean(0)
    return codes


def _nearest(codes: np.ndarray, x: np.ndarray) -> np.ndarray:
    return ((x * x).sum(1)[:, None] - 2 * x @ codes.T + (codes * codes).sum(1)[None]).argmin(1)


@cache
def _vq_weights() -> dict[str, np.ndarray]:
    """Patch embedding (PCA of 8x8 patches of real content) and two residual codebooks, fitted once."""
    rng = _weights_rng(3)
    pool = np.concatenate([_patches(_real_image(REAL_SOURCES[i % 2], rng, 128)[0]) for i in range(16)]).astype(
        np.float64
    )
    mean = pool.mean(0)
    _, vecs = np.linalg.eigh(np.cov(pool - mean, rowvar=False))
    embed = vecs[:, ::-1][:, : int(STRENGTH["vq_dims"])].copy()
    tokens = (pool - mean) @ embed
    first = _kmeans(rng, tokens, int(STRENGTH["vq_codes"]))
    second = _kmeans(rng, tokens - first[_nearest(first, tokens)], int(STRENGTH["vq_codes"]))
    return {"mean": mean, "embed": embed, "first": first, "second": second}


def _patch_vq(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """8x8 patch tokens, two-stage residual VQ, linear un-embedding: the decoder's blocky reconstruction."""
    wt = _vq_weights()
    h, w, _ = img.shape
    patches = _patches(img).astype(np.float64)
    tokens = (patches - wt["mean"]) @ wt["embed"]
    q = wt["first"][_nearest(wt["first"], tokens)]
    q = q + wt["second"][_nearest(wt["second"], tokens - q)]
    rec = wt["mean"] + q @ wt["embed"].T
    return _unpatch(patches + STRENGTH["vq_mix"] * (rec - patches), h, w).astype(np.float32)


GENERATORS = {"spectral_sr": _spectral_sr, "wavelet_synth": _wavelet_synth, "patch_vq": _patch_vq}


# ---------------------------------------------------------------- the set
BLIND = synthetic.camera_set(
    "blind",
    TARGETS,
    CATEGORIES,
    _real_image,
    GENERATORS,
    description="materials and renders through a three-chip camera; Fourier, wavelet and patch-VQ generators",
)
