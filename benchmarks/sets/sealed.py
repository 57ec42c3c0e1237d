"""The sealed set: a held-out evaluation set in the ArtiFact layout, made differently from the demo data, the outside
set and the blind set (its content, camera and generator families share nothing with theirs).

Never tune a detector against it, nor train the recipe on it while choosing settings: it is opened only to report a
final recipe's figure. Its trace strengths were set with a plain CNN only (`benchmarks.baseline_cnn`), never with
the recipe.

Real sources (target 0), each scene rendered at 1x-1.6x the image size, bent by barrel lens distortion,
blurred by the lens and shrunk by area averaging onto the sensor grid, then an X-Trans-like camera: a 6x6
colour filter array with Poisson-Gaussian noise, rolling-shutter row noise (per-row offsets and light
flicker), a colour-difference demosaic (normalised convolution), white balance and a colour matrix, an
S-shaped tone curve, unsharp-mask sharpening (halos) and an in-camera JPEG (quality 85..97, 4:2:0).
- ``streets``: street canyons ray-cast in one-point perspective (facades with window grids, a road with lane
  markings, a cloudy sky), the same at night (lit windows, street lamps as out-of-focus bokeh discs), and
  layered city skylines at dusk.
- ``nature``: a pool floor under water caustics (tiles displaced by refraction, light focused by the
  Jacobian of a wavy surface), cumulus clouds (fractal density shaded towards the sun), sand dunes seen from
  above (wind-sheared ridges and ripples, low sun).

AI sources (each applied to the images of both real sources, picked per image, so content is no cue):
- ``style_synth`` (target 10): StyleGAN2-like synthesis from an x2 area latent: the RGB skip upsampled by
  the [1, 3, 3, 1] FIR, a feature path of modulated and demodulated convolutions (transposed stride-2 + FIR
  blur, then 3x3) with per-pixel noise injection and leaky ReLU, styles from the image's statistics through
  a fixed mapping net; the full-resolution toRGB adds the detail.
- ``ddim_sampler`` (target 11): the image plus Gaussian noise, denoised by four deterministic DDIM-like steps
  of a fixed denoiser: an edge-aware (bilateral) x0 prediction plus a small random conv net with GroupNorm and
  SiLU; the camera's noise and faint texture give way to smoothed flats and the net's residual texture.
- ``pixel_mlp`` (target 12): CIPS-like conditionally independent pixel synthesis: a per-pixel modulated MLP
  (no spatial convolution) on fixed random Fourier features of the pixel coordinates and a bicubic
  upsampled x2 latent; its output adds content-modulated sinusoid detail.

GENERATOR_SEED fixes every generator's weights, whatever the dataset seed. `synthetic.finished_image` makes each
image from these parts and gives both classes ArtiFact's finish.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.sets import synthetic
from benchmarks.sets.synthetic import blur, pixel_grid, random_colour, shrink, to_array, to_tensor

GENERATOR_SEED = 8_341_906  # fixes every generator's weights, independently of the dataset seed
TARGETS = {"streets": 0, "nature": 0, "style_synth": 10, "ddim_sampler": 11, "pixel_mlp": 12}  # in source order
CATEGORIES = {"streets": ("canyon", "night", "skyline"), "nature": ("caustics", "clouds", "dunes")}  # per real source
XTRANS = ("GBGGRG", "RGRBGB", "GBGGRG", "GRGGBG", "BGBRGR", "GRGGBG")  # the 6x6 colour filter array
# trace strengths (rms of the added detail in 0..1 image values, noise levels), set with the plain CNN
# (baseline_cnn.py, 600 steps, the three families together) to land where the other evaluation sets do;
# frozen: every image depends on them
STRENGTH = {
    "style_detail": 0.03,  # rms of the full-resolution toRGB detail
    "style_noise": 0.6,  # per-pixel noise injection (relative to the unit-variance features)
    "ddim_sigma": 0.06,  # noise level the sampler starts from
    "ddim_net": 0.012,  # rms of the random net's residual in each x0 prediction
    "mlp_detail": 0.03,  # rms of the per-pixel MLP's detail
}


# ---------------------------------------------------------------- small helpers


def _field(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """A smooth random (n, n) field: a cells x cells Gaussian grid, bicubic-upsampled, unit std."""
    cells = max(1, min(cells, n // 2))
    grid = torch.from_numpy(rng.standard_normal((1, 1, cells + 1, cells + 1)).astype(np.float32))
    out = F.interpolate(grid, size=(n, n), mode="bicubic", align_corners=True)[0, 0].numpy()
    return out / (out.std() + 1e-6)


def _fbm(rng: np.random.Generator, n: int, octaves: int, cells: int, gain: float = 0.5) -> np.ndarray:
    """Fractal Brownian motion: octaves of smooth noise, each twice as fine and `gain` times as strong."""
    return sum(gain**o * _field(rng, n, cells * 2**o) for o in range(octaves))


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def _sky(rng: np.random.Generator, n: int, yy: np.ndarray, dusk: bool) -> np.ndarray:
    """A sky gradient (zenith to horizon, warm at dusk) with fractal clouds, linear light."""
    zenith = random_colour(rng, 0.05, 0.3) * np.array([0.6, 0.8, 1.4]) if not dusk else random_colour(rng, 0.05, 0.3)
    horizon = random_colour(rng, 0.6, 1.0) * (np.array([1.3, 0.7, 0.4]) if dusk else np.array([0.9, 0.95, 1.0]))
    sky = zenith + (horizon - zenith) * yy[..., None] ** rng.uniform(0.5, 1.5)
    cloud = _smoothstep(rng.uniform(0.3, 1.2), 2.0, _fbm(rng, n, 5, int(rng.integers(2, 5))))[..., None]
    tint = np.array([1.0, 0.75, 0.6]) if dusk else np.array([1.0, 1.0, 1.0])
    return np.clip(sky * (1 - cloud) + cloud * tint * rng.uniform(0.6, 1.1), 0, None)


# ---------------------------------------------------------------- real content: streets
def _canyon_rays(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Rays of a one-point-perspective camera down a street: nearest hit on a wall, the road or the sky."""
    yy, xx = pixel_grid(n)
    fov, height = rng.uniform(0.7, 1.2), rng.uniform(1.4, 3.0)
    half = rng.uniform(6, 14)
    ox = rng.uniform(-0.4, 0.4) * half
    dx = (xx - 0.5) * fov + rng.uniform(-0.15, 0.15)
    dy = (0.5 - yy) * fov + rng.uniform(-0.05, 0.15)
    block = rng.uniform(8, 25)
    tall = rng.uniform(6, 45, size=(2, 64))  # building heights per block, left and right
    t_wall = np.where(dx < 0, (-half - ox) / np.minimum(dx, -1e-6), (half - ox) / np.maximum(dx, 1e-6))
    side = (dx > 0).astype(np.int64)
    idx = np.clip((t_wall / block).astype(np.int64), 0, 63)
    wall_y = height + t_wall * dy
    on_wall = (wall_y < tall[side, idx]) & (wall_y > 0)
    t_road = np.where(dy < 0, -height / np.minimum(dy, -1e-6), np.inf)
    kind = np.where(on_wall & (t_wall < t_road), 1, np.where(np.isfinite(t_road), 2, 0))  # 0 sky, 1 wall, 2 road
    t = np.where(kind == 1, t_wall, np.where(kind == 2, t_road, np.inf))
    return {
        "yy": yy,
        "kind": kind,
        "t": t,
        "u": t_wall,
        "v": wall_y,
        "side": side,
        "block": idx,
        "x": ox + np.where(np.isfinite(t_road), t_road, 0) * dx,
        "half": np.float32(half),
    }


def _facade(rng: np.random.Generator, r: dict[str, np.ndarray], night: bool) -> np.ndarray:
    """Wall colour: per-block plaster or brick, a grid of windows (sky reflections by day, some lit at night)."""
    key = r["block"] * 2 + r["side"]
    paint = rng.uniform(0.1, 0.7, size=(128, 3)) * (0.15 if night else 1.0)
    storey, bay = rng.uniform(2.8, 4.0, size=128), rng.uniform(1.8, 4.0, size=128)
    fu, fv = r["u"] / bay[key], r["v"] / storey[key]
    window = (np.abs(fu % 1 - 0.5) < 0.3) & (fv % 1 > 0.3) & (fv % 1 < 0.85) & (r["v"] > storey[key])
    lit_table = rng.random((61, 37)) < (0.35 if night else 0.0)
    lit = lit_table[np.floor(fu).astype(np.int64) % 61, np.floor(fv).astype(np.int64) % 37]
    glass = np.where(lit[..., None], random_colour(rng, 0.6, 1.0) * np.array([1.6, 1.2, 0.7]) * 2, 0.04)
    if not night:
        glass = glass + 0.25 * (1 - r["yy"][..., None]) * np.array([0.6, 0.75, 1.0])
    return np.where(window[..., None], glass, paint[key])


def _road(rng: np.random.Generator, r: dict[str, np.ndarray], n: int, night: bool) -> np.ndarray:
    """Asphalt with grain, a dashed centre line, edge lines, pavements; a wall's shadow across it by day."""
    x, z, half = r["x"], r["t"], float(r["half"])
    asphalt = rng.uniform(0.05, 0.15) * (1 + 0.15 * _fbm(rng, n, 3, n // 8))[..., None] * np.ones(3)
    dash = (np.abs(x) < 0.08) & ((np.where(np.isfinite(z), z, 0) / rng.uniform(4, 9)) % 1 < 0.5)
    edge = np.abs(np.abs(x) - (half - 2.6)) < 0.08
    paint = np.where((dash | edge)[..., None], np.array([0.7, 0.7, 0.6]), asphalt)
    pavement = np.where((np.abs(x) > half - 2.4)[..., None], random_colour(rng, 0.2, 0.45), paint)
    if night:
        return pavement * 0.15
    shadow_edge = rng.uniform(-1, 1) * half
    return pavement * np.where((x < shadow_edge)[..., None], rng.uniform(0.3, 0.6), 1.0)


def _bokeh(rng: np.random.Generator, n: int, img: np.ndarray) -> np.ndarray:
    """Street lamps and distant lights as out-of-focus discs with a brighter rim, far above white."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    for _ in range(int(rng.integers(6, 30))):
        cy, cx = rng.uniform(0.1, 0.8) * n, rng.uniform(0, 1) * n
        radius = rng.uniform(0.01, 0.06) * n
        d = np.hypot(yy - cy, xx - cx) / radius
        disc = _smoothstep(1.05, 0.95, d) * (0.7 + 0.3 * d**4)
        img = img + disc[..., None] * random_colour(rng, 0.5, 1.0) * np.array([1.5, 1.1, 0.6]) * rng.uniform(1, 6)
    return img


def _street(rng: np.random.Generator, n: int, night: bool) -> np.ndarray:
    """A street canyon by day or at night: walls, road and sky; fog with distance; lamps at night."""
    r = _canyon_rays(rng, n)
    sky = _sky(rng, n, r["yy"], dusk=night) * (0.08 if night else 1.0)
    img = np.where((r["kind"] == 1)[..., None], _facade(rng, r, night), sky)
    img = np.where((r["kind"] == 2)[..., None], _road(rng, r, n, night), img)
    fog = (1 - np.exp(-np.where(np.isfinite(r["t"]), r["t"], 1e9) * rng.uniform(0.002, 0.02)))[..., None]
    img = img * (1 - fog) + sky.mean(axis=(0, 1)) * fog
    return np.clip(_bokeh(rng, n, img) if night else img, 0, None).astype(np.float32)


def _skyline(rng: np.random.Generator, n: int) -> np.ndarray:
    """A dusk skyline: layers of rectangular towers, hazier with distance, dots of lit windows."""
    yy, xx = pixel_grid(n)
    img = _sky(rng, n, yy, dusk=True)
    for layer, haze in enumerate(np.linspace(0.7, 0.0, int(rng.integers(2, 5)))):
        widths = rng.uniform(0.03, 0.12, size=64)
        edges = np.cumsum(widths) - rng.uniform(0, 0.1)
        tower = np.searchsorted(edges, xx)
        top = 1 - rng.uniform(0.15, 0.55, size=65)[tower] * (0.6 + 0.2 * layer)
        body = yy > top
        colour = random_colour(rng, 0.01, 0.08) * (1 - haze) + img[int(0.95 * n) - 1, n // 2] * haze
        wy, wx = (yy - top) * n / 5, (xx - edges[np.maximum(tower - 1, 0)]) * n / 4
        lit = (wy % 1 < 0.5) & (wx % 1 < 0.5) & (rng.random((67, 41))[tower % 67, (wy.astype(np.int64)) % 41] < 0.3)
        lamp = np.where(lit[..., None], np.array([1.0, 0.75, 0.4]) * rng.uniform(0.3, 1.5) * (1 - haze), colour)
        img = np.where(body[..., None], lamp, img)
    return np.clip(img, 0, None).astype(np.float32)


# ---------------------------------------------------------------- real content: nature
def _caustics(rng: np.random.Generator, n: int) -> np.ndarray:
    """A tiled pool floor under a wavy surface: tiles shifted by refraction, light focused into caustic lines."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    h = _fbm(rng, n, 3, int(rng.integers(3, 7)), gain=0.4) * rng.uniform(0.004, 0.012)
    hy, hx = np.gradient(h, 1 / n)
    hyy, hyx = np.gradient(hy, 1 / n)
    _, hxx = np.gradient(hx, 1 / n)
    depth = rng.uniform(0.5, 2.0)
    det = (1 + depth * hxx) * (1 + depth * hyy) - (depth * hyx) ** 2
    light = np.clip(1 / (np.abs(det) + 0.15), 0, 6)  # the Jacobian of the refracted light's map
    tile = rng.uniform(0.03, 0.1)
    u, v = (xx + 0.5 * depth * hx) / tile, (yy + 0.5 * depth * hy) / tile
    grout = (np.minimum(u % 1, v % 1) < rng.uniform(0.04, 0.12))[..., None]
    floor = np.where(grout, random_colour(rng, 0.2, 0.5), random_colour(rng, 0.6, 0.95))
    water = np.array([0.35, 0.8, 0.9]) * rng.uniform(0.6, 1.0, size=3)
    return np.clip(floor * water * (0.3 + 0.35 * light[..., None]), 0, None).astype(np.float32)


def _clouds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Cumulus clouds on a blue sky: fractal density, lit where it thins towards the sun, grey beneath."""
    yy, _ = pixel_grid(n)
    sky = random_colour(rng, 0.05, 0.25) * np.array([0.5, 0.8, 1.5]) * (1 - yy[..., None]) + 0.5 * yy[..., None]
    dens = _fbm(rng, n, 6, int(rng.integers(2, 5)), gain=0.55) + rng.uniform(-0.5, 1.0) * (yy - 0.5)
    cover = _smoothstep(rng.uniform(0.0, 0.9), 1.6, dens)
    sy, sx = (int(v) for v in rng.integers(-n // 30 - 1, n // 30 + 2, size=2))
    lit = _smoothstep(-0.4, 0.6, dens - np.roll(dens, (sy, sx), axis=(0, 1)))[..., None]
    cloud = np.array([0.95, 0.95, 1.0]) * (0.45 + 0.55 * lit) * rng.uniform(0.7, 1.2)
    return np.clip(sky * (1 - cover[..., None]) + cloud * cover[..., None], 0, None).astype(np.float32)


def _dunes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sand dunes from above: wind-sheared sawtooth ridges bent by noise, ripples, lit by a low sun."""
    yy, xx = pixel_grid(n)
    wind = rng.uniform(0, 2 * np.pi)
    u = xx * np.cos(wind) + yy * np.sin(wind) + 0.08 * _fbm(rng, n, 3, 3)
    f = (u / rng.uniform(0.1, 0.3)) % 1
    ridge = np.where(f < 0.75, f / 0.75, (1 - f) / 0.25)  # a gentle windward slope, a steep lee face
    ripple = np.sin(2 * np.pi * (u + 0.01 * _field(rng, n, 8)) / rng.uniform(0.01, 0.025))
    h = to_array(blur(to_tensor(ridge[..., None]), n / 300))[..., 0] * 0.06 + 0.0015 * ripple
    hy, hx = np.gradient(h, 1 / n)
    az, el = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.6)
    sun = np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])
    shade = np.clip((-hx * sun[0] - hy * sun[1] + sun[2]) / np.sqrt(hx**2 + hy**2 + 1), 0, 1)
    hue = np.array([0.9, 0.62, 0.38]) + rng.uniform(-0.08, 0.08, size=3)  # ochre to pale sand
    sand = hue * rng.uniform(0.6, 1.1) * (1 + 0.05 * _field(rng, n, n // 3))[..., None]
    return np.clip(sand * (0.15 + shade[..., None]), 0, None).astype(np.float32)


SCENES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "canyon": lambda rng, n: _street(rng, n, night=False),
    "night": lambda rng, n: _street(rng, n, night=True),
    "skyline": _skyline,
    "caustics": _caustics,
    "clouds": _clouds,
    "dunes": _dunes,
}


# ---------------------------------------------------------------- the camera (X-Trans-like 6x6 CFA)
def _barrel(x: torch.Tensor, k: float) -> torch.Tensor:
    """Barrel distortion: each output pixel samples the scene further out, r (1 + k r^2), zoomed to fill."""
    _, _, h, w = x.shape
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]
    grid = base * (1 + k * (base * base).sum(-1, keepdim=True)) / (1 + 2 * k)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


@lru_cache(maxsize=64)
def _cfa_masks(h: int, w: int, oy: int, ox: int) -> torch.Tensor:
    """(1, 3, H, W) 0/1 masks of the 6x6 X-Trans-like colour filter array, shifted by (oy, ox)."""
    code = np.array([["RGB".index(c) for c in row] for row in XTRANS])
    yy, xx = np.mgrid[0:h, 0:w]
    cfa = code[(yy + oy) % 6, (xx + ox) % 6]
    return torch.from_numpy(np.stack([cfa == c for c in range(3)]).astype(np.float32))[None]


def _normalised(x: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Normalised convolution: the Gaussian-weighted mean of x over the sites where mask is 1."""
    return blur(x * mask, sigma) / (blur(mask, sigma) + 1e-6)


def _demosaic(raw: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Colour-difference demosaic: green kept where sampled, interpolated elsewhere; R-G and B-G spread wider."""
    g_site = masks[:, 1:2]
    green = g_site * raw + (1 - g_site) * _normalised(raw, g_site, 0.8)
    red = green + _normalised(raw - green, masks[:, 0:1], 1.5)
    blue = green + _normalised(raw - green, masks[:, 2:3], 1.5)
    return torch.cat([red, green, blue], 1)


def _sensor_raw(rng: np.random.Generator, lin: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The mosaic: exposure, vignetting, CFA sampling, shot + read noise, rolling-shutter rows, clipping."""
    h, w, _ = lin.shape
    yy, xx = pixel_grid(h)[0][:, :1], pixel_grid(w)[1][:1, :]
    r2 = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2) * 2
    x = to_tensor(lin * rng.uniform(0.6, 1.2) * (1 - rng.uniform(0.1, 0.4) * r2)[..., None])
    masks = _cfa_masks(h, w, int(rng.integers(6)), int(rng.integers(6)))
    raw = (x * masks).sum(1, keepdim=True)
    gain, read = rng.uniform(0.0005, 0.004), rng.uniform(0.001, 0.004)
    noise = torch.from_numpy(rng.standard_normal((2, h, w)).astype(np.float32))
    raw = raw + torch.sqrt(raw.clamp(min=0) * gain) * noise[0] + read * noise[1]
    rows = np.arange(h, dtype=np.float32)[:, None]
    flicker = 1 + rng.uniform(0, 0.03) * np.sin(2 * np.pi * rows / rng.uniform(20, 120) + rng.uniform(0, 2 * np.pi))
    offset = rng.normal(0, rng.uniform(0.0005, 0.003), size=(h, 1))  # each row read out at its own time
    raw = raw * torch.from_numpy(flicker.astype(np.float32)) + torch.from_numpy(offset.astype(np.float32))
    return raw.clamp(0, 1), masks


def _in_camera(rng: np.random.Generator, rgb: torch.Tensor) -> np.ndarray:
    """White balance, colour matrix, S-curve, unsharp mask (halos) and the camera's own JPEG."""
    wb = torch.tensor(rng.uniform(0.9, 1.1, size=3), dtype=torch.float32)[None, :, None, None]
    sat = float(rng.uniform(0.0, 0.4))
    luma = torch.tensor([0.3, 0.59, 0.11])
    matrix = (1 + sat) * torch.eye(3) - sat * luma[None, :].expand(3, 3)
    x = torch.einsum("ij,bjhw->bihw", matrix, (rgb * wb).clamp(min=0))
    y = x.clamp(0, 1) ** (1 / 2.2)
    s = float(rng.uniform(0.1, 0.5))
    y = (1 - s) * y + s * y * y * (3 - 2 * y)
    y = y + float(rng.uniform(0.3, 1.2)) * (y - blur(y, float(rng.uniform(0.8, 1.8))))
    pil = Image.fromarray((np.clip(to_array(y), 0, 1) * 255 + 0.5).astype(np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(rng.integers(85, 98)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32) / 255.0


def _real_image(source: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A real image of `source`: its scene rendered at 1x-1.6x, barrel distortion, lens blur, area-shrunk."""
    category = str(rng.choice(CATEGORIES[source]))
    scale = float(rng.uniform(1.0, 1.6))
    n = int(round(size * scale))
    scene = _barrel(to_tensor(SCENES[category](rng, n)), float(rng.uniform(0.02, 0.12)))
    scene = to_array(blur(scene, scale * float(rng.uniform(0.3, 0.6))))
    raw, masks = _sensor_raw(rng, shrink(scene, size, size))
    return _in_camera(rng, _demosaic(raw, masks)), category


# ---------------------------------------------------------------- "generators" (fixed weights)
def _weights_rng(family: int) -> np.random.Generator:
    """The fixed random source of one generator family's weights."""
    return np.random.default_rng([GENERATOR_SEED, family])


def _tensors(w: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    """StyleGAN's leaky ReLU with its sqrt(2) gain."""
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


def _as_detail(x: torch.Tensor, rms: float) -> torch.Tensor:
    """A network's output as detail: less its local mean (the lower layers carry that), scaled to rms."""
    x = x - blur(x, 2.0)
    return x / (x.std() + 1e-6) * rms


def _latent_stats(lat: torch.Tensor) -> torch.Tensor:
    """The mapping net's input: each channel's mean and std, centred on mid-grey."""
    return torch.cat([lat.mean((2, 3))[0] - 0.5, lat.std((2, 3))[0]])


def _mapping(stats: torch.Tensor, wt: dict[str, torch.Tensor]) -> torch.Tensor:
    """A fixed two-layer mapping net: image statistics -> style vector w."""
    return torch.tanh(wt["map2"] @ _lrelu(wt["map1"] @ stats * 4))


@cache
def _style_weights(channels: int = 16) -> dict[str, torch.Tensor]:
    """fromRGB, two modulated convolutions (the first transposed, stride 2), toRGB, noise strengths, mapping."""
    rng = _weights_rng(1)
    c = channels
    w = {
        "map1": rng.normal(0, 1 / math.sqrt(6), size=(32, 6)),
        "map2": rng.normal(0, 1 / math.sqrt(32), size=(32, 32)),
        "from_rgb": rng.normal(0, 1, size=(c, 3, 1, 1)),
        "from_bias": rng.normal(0, 0.5, size=c),
        "up": rng.normal(0, 1, size=(c, c, 3, 3)),  # (in, out, k, k): conv_transpose2d's layout
        "conv": rng.normal(0, 1, size=(c, c, 3, 3)),
        "to_rgb": rng.normal(0, 1 / math.sqrt(c), size=(3, c, 1, 1)),
        "noise": rng.normal(0, 1, size=(2, c, 1, 1)),
        "bias": rng.normal(0, 0.2, size=(2, c, 1, 1)),
    }
    for name, cin in (("up", c), ("conv", c), ("to_rgb", c)):
        w[f"aff_{name}"] = rng.normal(0, 0.3 / math.sqrt(32), size=(cin, 32))
    fir = np.array([1.0, 3.0, 3.0, 1.0])
    w["fir"] = np.outer(fir, fir)[None, None] / 64  # the [1, 3, 3, 1] FIR, 2D, unit sum (x4 after zero-insertion)
    return _tensors(w)


def _modulate(weight: torch.Tensor, style: torch.Tensor, in_dim: int, demod: bool) -> torch.Tensor:
    """StyleGAN2 weight modulation by a per-input-channel style, then demodulation to unit output norm."""
    shape = [1] * weight.dim()
    shape[in_dim] = -1
    w = weight * style.reshape(shape)
    if not demod:
        return w
    dims = [d for d in range(w.dim()) if d != 1 - in_dim]
    return w * torch.rsqrt((w * w).sum(dims, keepdim=True) + 1e-8)


def _fir_up(x: torch.Tensor, fir: torch.Tensor) -> torch.Tensor:
    """x2 upsampling as upfirdn2d does it: zero insertion, then the FIR (gain 4), per channel; edges replicated."""
    x = F.pad(x, (1,) * 4, mode="replicate")
    c, h, w = x.shape[1:]
    z = torch.zeros(1, c, 2 * h, 2 * w)
    z[..., ::2, ::2] = x * 4
    return F.conv2d(z, fir.expand(c, 1, 4, 4), groups=c)[..., : 2 * h - 4, : 2 * w - 4]


def _style_synth(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x2 area latent; FIR-upsampled RGB skip plus the detail of a modulated synthesis block with noise."""
    wt, c = _style_weights(), _style_weights()["from_rgb"].shape[0]
    lat = F.avg_pool2d(to_tensor(img), 2)
    h, w = lat.shape[-2] * 2, lat.shape[-1] * 2
    style = _mapping(_latent_stats(lat), wt)
    s = {k: 1 + wt[f"aff_{k}"] @ style for k in ("up", "conv", "to_rgb")}
    x = _lrelu(F.conv2d(lat * 2 - 1, wt["from_rgb"]) + wt["from_bias"][None, :, None, None])
    x = F.conv_transpose2d(x, _modulate(wt["up"], s["up"], 0, True), stride=2, padding=1, output_padding=1)
    x = F.conv2d(F.pad(x, (2, 1, 2, 1), mode="replicate"), wt["fir"].expand(c, 1, 4, 4), groups=c)
    noise = torch.from_numpy(rng.standard_normal((2, 1, 1, h, w)).astype(np.float32))
    x = _lrelu(x + STRENGTH["style_noise"] * wt["noise"][0] * noise[0] + wt["bias"][0])
    x = F.conv2d(F.pad(x, (1,) * 4, mode="replicate"), _modulate(wt["conv"], s["conv"], 1, True))
    x = _lrelu(x + STRENGTH["style_noise"] * wt["noise"][1] * noise[1] + wt["bias"][1])
    rgb = F.conv2d(x, _modulate(wt["to_rgb"], s["to_rgb"], 1, False))
    return to_array(_fir_up(lat, wt["fir"]) + _as_detail(rgb, STRENGTH["style_detail"]))


@cache
def _sampler_weights(channels: int = 16) -> dict[str, torch.Tensor]:
    """The denoiser's random net (3x3 convs, GroupNorm affine, a noise-level embedding) and spatial kernel."""
    rng = _weights_rng(2)
    c = channels
    w1 = rng.normal(0, 1, size=(c, 3, 3, 3))
    w = {
        "w1": w1 - w1.mean(axis=(2, 3), keepdims=True),  # respond to structure, not to brightness
        "w2": rng.normal(0, 1 / math.sqrt(9 * c), size=(c, c, 3, 3)),
        "w3": rng.normal(0, 1 / math.sqrt(9 * c), size=(3, c, 3, 3)),
        "gn_scale": rng.uniform(0.5, 1.5, size=(2, c)),
        "gn_shift": rng.normal(0, 0.5, size=(2, c)),
        "embed": rng.normal(0, 1, size=(c,)),
        "spatial": np.exp(-(np.mgrid[-2:3, -2:3] ** 2).sum(0) / (2 * 1.2**2)).reshape(25, 1),
    }
    return _tensors(w)


def _denoiser_net(x: torch.Tensor, sigma: float, wt: dict[str, torch.Tensor]) -> torch.Tensor:
    """conv -> GroupNorm -> SiLU, twice (the noise level added as a bias), conv to RGB."""
    h = F.conv2d(F.pad(x, (1,) * 4, mode="replicate"), wt["w1"])
    h = F.silu(F.group_norm(h, 4, wt["gn_scale"][0], wt["gn_shift"][0]))
    h = F.conv2d(F.pad(h, (1,) * 4, mode="replicate"), wt["w2"]) + (wt["embed"] * math.log(sigma))[None, :, None, None]
    h = F.silu(F.group_norm(h, 4, wt["gn_scale"][1], wt["gn_shift"][1]))
    return F.conv2d(F.pad(h, (1,) * 4, mode="replicate"), wt["w3"])


def _bilateral(x: torch.Tensor, spatial: torch.Tensor, sigma_r: float) -> torch.Tensor:
    """5x5 bilateral filter: neighbours weighted by distance and by colour difference from the centre."""
    _, c, h, w = x.shape
    patches = F.unfold(F.pad(x, (2,) * 4, mode="reflect"), 5).reshape(c, 25, h * w)
    diff = ((patches - x.reshape(c, 1, h * w)) ** 2).sum(0)
    weight = spatial * torch.exp(-diff / (2 * sigma_r * sigma_r))
    return ((patches * weight).sum(1) / weight.sum(0)).reshape(1, c, h, w)


def _ddim_sampler(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise to sigma0, then four deterministic DDIM steps (x0 prediction, re-noise with the implied eps)."""
    wt = _sampler_weights()
    sigmas = STRENGTH["ddim_sigma"] * np.array([1.0, 0.5, 0.25, 0.125, 0.0])
    x = to_tensor(img)
    x = x + sigmas[0] * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
    for sigma, nxt in zip(sigmas[:-1], sigmas[1:], strict=True):
        x0 = _bilateral(x, wt["spatial"], 2.0 * sigma + 0.02)
        x0 = x0 + _as_detail(_denoiser_net(x * 2 - 1, sigma, wt), STRENGTH["ddim_net"])
        x = x0 + nxt * (x - x0) / sigma
    return to_array(x)


@cache
def _mlp_weights(features: int = 24, width: int = 32) -> dict[str, torch.Tensor]:
    """Fourier features (frequencies in cycles per pixel, phases), a 3-layer per-pixel MLP and its style maps."""
    rng = _weights_rng(3)
    radius, angle = rng.uniform(0.03, 0.3, size=features), rng.uniform(0, 2 * np.pi, size=features)
    cin = features + 3
    w = {
        "freq": np.stack([radius * np.sin(angle), radius * np.cos(angle)], 1),
        "phase": rng.uniform(0, 2 * np.pi, size=(features, 1, 1)),
        "l1": rng.normal(0, 1, size=(width, cin, 1, 1)),
        "l2": rng.normal(0, 1, size=(width, width, 1, 1)),
        "l3": rng.normal(0, 1 / math.sqrt(width), size=(3, width, 1, 1)),
        "b": rng.normal(0, 0.2, size=(2, width, 1, 1)),
        "map1": rng.normal(0, 1 / math.sqrt(6), size=(32, 6)),
        "map2": rng.normal(0, 1 / math.sqrt(32), size=(32, 32)),
    }
    for name, n in (("l1", cin), ("l2", width), ("l3", width)):
        w[f"aff_{name}"] = rng.normal(0, 0.3 / math.sqrt(32), size=(n, 32))
    return _tensors(w)


def _pixel_mlp(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bicubic-upsampled x2 latent plus a per-pixel modulated MLP's detail on Fourier features + latent."""
    wt = _mlp_weights()
    lat = F.avg_pool2d(to_tensor(img), 2)
    h, w = lat.shape[-2] * 2, lat.shape[-1] * 2
    base = F.interpolate(lat, size=(h, w), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    arg = wt["freq"][:, 0, None, None] * yy + wt["freq"][:, 1, None, None] * xx
    x = torch.cat([torch.sin(2 * math.pi * arg + wt["phase"])[None], base * 2 - 1], 1)
    style = _mapping(_latent_stats(lat), wt)
    for i, name in enumerate(("l1", "l2")):
        x = _lrelu(F.conv2d(x, _modulate(wt[name], 1 + wt[f"aff_{name}"] @ style, 1, True)) + wt["b"][i])
    out = F.conv2d(x, _modulate(wt["l3"], 1 + wt["aff_l3"] @ style, 1, False))
    return to_array(base + _as_detail(out, STRENGTH["mlp_detail"]))


GENERATORS = {"style_synth": _style_synth, "ddim_sampler": _ddim_sampler, "pixel_mlp": _pixel_mlp}


# ---------------------------------------------------------------- the set
SEALED = synthetic.camera_set(
    "sealed",
    TARGETS,
    CATEGORIES,
    _real_image,
    GENERATORS,
    description="held out: streets and nature through an X-Trans camera; StyleGAN-, DDIM- and CIPS-like generators",
)
