"""The hard-real set: a sealed evaluation set in the ArtiFact layout whose hard part is real photos after the ordinary
processing of phones, apps and screens, which a detector must not call AI-generated.

Never tune a detector against it, nor train the recipe on it while choosing settings. The processed sources are
evaluation-only (`benchmarks.sets.HELD_OUT`): a run on this set trains on the plain camera images and the AI sources
and meets the processed reals only in its test split. The AI traces' strengths were set with a plain CNN only
(`benchmarks.baseline_cnn`, on the plain part), never with the recipe.

Content: a market and a garden, each scene rendered at 1x-1.5x the image size, blurred by the lens and
area-averaged onto the sensor grid: crates of fruit (oranges, lemons, apples: shaded spheres with dimpled or
speckled skins, highlights, dark gaps), flower beds (petal rosettes over layered leaves), animal fur (line-integral
convolution of noise along a combed direction field, tabby or patched colouring, lit by its own relief).
Camera: `synthetic`'s phone-like camera (RGGB mosaic with shot and read noise at 10 bits, white balance,
Malvar-He-Cutler demosaic, colour matrix, guided-filter luma and blurred chroma NR, tone curve, cored sharpening,
the camera's JPEG).

Sources (target 0 unless given):
- ``camera``: the plain camera images.
- ``inpainted`` (target 17): LaMa-like inpainting: a free-form brush mask filled by push-pull interpolation plus
  a texture with the known region's amplitude spectrum and random phases (a Fourier convolution's global fill).
- ``flow_sampler`` (target 18): Glow-like flow with fixed random weights (squeeze, invertible 1x1 convs, affine
  couplings); the factored-out fine latents are partly resampled at a temperature and the flow inverted.
- ``alias_free`` (target 19): StyleGAN3-like alias-free synthesis: an x2 area latent upsampled by a Kaiser-windowed
  sinc, plus the detail of a fixed random net whose leaky ReLUs run at twice the rate between sinc filters.
- ``zoomed``: phone digital zoom: a 1.5x-3x centre crop of the developed frame, bicubic upscaling, strong
  sharpening, then the camera's JPEG.
- ``night``: multi-frame night mode: a dark, warm-lit scene, a burst of 4-10 noisy raw frames averaged, digital
  gain, heavy luma and chroma noise reduction, strong sharpening.
- ``hdr``: three bracketed raw exposures of a back-lit scene merged, then a local tone map (an edge-aware base
  layer compressed in log luminance, the detail kept or boosted) and extra saturation.
- ``retouched``: beauty retouching: a guided-filter smoothing of the camera JPEG where it is already smooth, a little
  brightening and warmth, re-saved by the app.
- ``reshared``: messenger re-sharing: a larger camera photo downscaled to a max side and re-encoded (JPEG 70-85),
  then again by a second app (smaller, JPEG 55-80, another resampling filter).
- ``screenshot``: a phone screenshot (PNG) of a social-media post: status bar, header, the photo resampled to the
  screen's width, caption text and icons, light or dark theme.
- ``rescaled``: a resize for display: a thumbnail (downscale) or a viewer's upscale (bilinear or bicubic), saved
  as JPEG or PNG.

GENERATOR_SEED fixes every generator's weights, whatever the dataset seed. Every image ends with ArtiFact's finish.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from scipy.spatial import cKDTree

from benchmarks.sets import synthetic
from benchmarks.sets.synthetic import blur, pixel_grid, random_colour, smooth_field, to_array, to_tensor
from modeling.data.demo import artifact_postprocess  # ArtiFact's finish, one owner
from modeling.data.generated import GeneratedSet

GENERATOR_SEED = 3_905_218  # fixes every generator's weights, independently of the dataset seed
AI_TARGETS = {"inpainted": 17, "flow_sampler": 18, "alias_free": 19}
PROCESSED = ("zoomed", "night", "hdr", "retouched", "reshared", "screenshot", "rescaled")  # evaluation-only reals
TARGETS = {"camera": 0, **AI_TARGETS, **dict.fromkeys(PROCESSED, 0)}  # in source order
SOURCES = tuple(TARGETS)
CATEGORIES = ("fruit", "flowers", "fur")
# trace strengths, set with the plain CNN (baseline_cnn.py, 600 steps, the camera source against the three AI
# sources) so that it lands between chance and trivial; frozen: every fake depends on them
STRENGTH = {
    "mask_area": 0.35,  # inpainted: mean share of the image under the brush mask
    "texture_gain": 1.0,  # inpainted: the synthesised texture's rms against the known region's detail
    "flow_temperature": 0.15,  # flow_sampler: share of the fine latents' variance that is resampled
    "alias_detail": 0.015,  # alias_free: rms of the net's detail (image values in 0..1)
}


# ---------------------------------------------------------------- real content: a market and a garden
def _fruit(rng: np.random.Generator, n: int) -> np.ndarray:
    """A crate of fruit from above: packed spheres, each lit with a highlight, dimpled or speckled skin."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = rng.uniform(0.05, 0.12) * n
    rows, cols = int(n / (r * 1.7)) + 3, int(n / (r * 2)) + 3
    gy, gx = np.mgrid[-1 : rows - 1, -1 : cols - 1].astype(np.float32)
    centres = np.stack([gy * r * 1.73, (gx + 0.5 * (gy % 2)) * r * 2], -1).reshape(-1, 2)
    centres += rng.normal(0, 0.12 * r, size=centres.shape)
    radius = r * rng.uniform(0.85, 1.0, size=len(centres))
    dist, which = cKDTree(centres).query(np.stack([yy.ravel(), xx.ravel()], 1))
    which = which.reshape(n, n)
    d = dist.reshape(n, n) / radius[which]
    kinds = np.array([[1.0, 0.45, 0.05], [0.95, 0.8, 0.1], [0.7, 0.05, 0.04], [0.4, 0.75, 0.1]])
    main = int(rng.integers(len(kinds)))
    kind = np.where(rng.random(len(centres)) < 0.85, main, rng.integers(0, len(kinds), size=len(centres)))
    colour = kinds[kind] * rng.uniform(0.8, 1.1, size=(len(centres), 1))
    skin = smooth_field(rng, n, n, int(n / 3))
    z = np.sqrt(np.clip(1 - d * d, 0, 1)) + 0.03 * skin * (kind[which] < 2)  # citrus skins are dimpled
    dy, dx = (yy - centres[which, 0]) / radius[which], (xx - centres[which, 1]) / radius[which]
    light = np.array([-0.5, -0.3, 0.81])
    shade = np.clip(dy * light[0] + dx * light[1] + z * light[2], 0, 1)
    speck = (skin > 1.6) & (kind[which] >= 2)  # apples: pale lenticels
    body = np.where(speck[..., None], 0.9, colour[which]) * (0.15 + 0.85 * shade[..., None])
    body = body + (shade**40 * rng.uniform(0.2, 0.6))[..., None]
    inside = np.clip((1 - d) * radius[which] / 1.5, 0, 1)[..., None]
    crate = random_colour(rng, 0.02, 0.08)
    return (body * inside + crate * (1 - inside)).astype(np.float32) ** 2.0


def _flower(rng: np.random.Generator, img: np.ndarray) -> None:
    """Paint one flower into img in place: a rosette of k petals shaded along their ridges, a seeded centre."""
    n = img.shape[0]
    cy, cx = rng.uniform(0, n, size=2)
    big = rng.uniform(0.04, 0.14) * n
    reach = int(big) + 3
    y0, y1, x0, x1 = max(0, int(cy) - reach), min(n, int(cy) + reach), max(0, int(cx) - reach), min(n, int(cx) + reach)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rad, ang = np.hypot(yy - cy, xx - cx) / big, np.arctan2(yy - cy, xx - cx) + rng.uniform(0, np.pi)
    k = int(rng.integers(5, 13))
    petal = 0.5 + 0.5 * np.abs(np.cos(k * ang / 2)) ** rng.uniform(0.5, 3)
    mask = np.clip((petal - rad) * big / 1.5, 0, 1)[..., None]
    colour = np.array([[1.0, 0.5, 0.7], [1.0, 1.0, 0.95], [1.0, 0.85, 0.1], [0.55, 0.25, 0.85], [0.9, 0.1, 0.1]])
    tone = colour[int(rng.integers(len(colour)))] * rng.uniform(0.7, 1.0)
    ridge = 0.75 + 0.25 * np.cos(k * ang)[..., None]
    heart = np.clip((0.25 - rad) * big / 1.0, 0, 1)[..., None]
    seeds = (0.6 + 0.4 * np.sin(yy * 2.1) * np.sin(xx * 2.3))[..., None]
    body = tone * ridge * (0.55 + 0.45 * np.clip(rad, 0, 1))[..., None]
    body = body * (1 - heart) + np.array([0.6, 0.4, 0.05]) * seeds * heart
    region = img[y0:y1, x0:x1]
    region[:] = region * (1 - mask) + body * mask


def _flowers(rng: np.random.Generator, n: int) -> np.ndarray:
    """A flower bed: dark layered leaves (thresholded fields, shaded), then rosettes on top."""
    img = np.zeros((n, n, 3), dtype=np.float32) + np.array([0.02, 0.05, 0.02], dtype=np.float32)
    for scale in (6, 12, 24):
        field = smooth_field(rng, n, n, scale)
        leaf = np.clip((field - 0.3) * 3, 0, 1)[..., None]
        gy, gx = np.gradient(field)
        lit = np.clip(0.6 + 3 * (gx - gy) * n / scale / 8, 0.2, 1.2)[..., None]
        green = np.array([0.1, 0.35, 0.08]) * rng.uniform(0.6, 1.3, size=3)
        img = img * (1 - leaf) + green * lit * leaf
    for _ in range(int(rng.integers(8, 40))):
        _flower(rng, img)
    return np.clip(img, 0, 1) ** 2.2


def _fur(rng: np.random.Generator, n: int) -> np.ndarray:
    """Animal fur: white noise smeared along a combed direction field (line-integral convolution), coloured by a
    tabby or patched pattern, lit by the fur's own relief."""
    angle = rng.uniform(0, np.pi) + rng.uniform(0.3, 1.2) * smooth_field(rng, n, n, 3)
    step = torch.from_numpy(np.stack([np.cos(angle), np.sin(angle)], -1).astype(np.float32) * 2 / n)[None]
    noise = torch.from_numpy(rng.standard_normal((1, 1, n, n)).astype(np.float32))
    axis = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1
    start = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)[None]  # (1, n, n, 2) as (x, y)
    hair = noise.clone()
    length = int(rng.integers(6, 16))
    for sign in (1.0, -1.0):
        pos = start.clone()
        for _ in range(length):
            flow = F.grid_sample(step.permute(0, 3, 1, 2), pos, align_corners=False).permute(0, 2, 3, 1)
            pos = pos + sign * flow
            hair = hair + F.grid_sample(noise, pos, padding_mode="reflection", align_corners=False)
    hair = (hair / (2 * length + 1) ** 0.5)[0, 0].numpy()
    yy, xx = pixel_grid(n)
    across = (xx * np.cos(angle) - yy * np.sin(angle)) * rng.uniform(3, 9)  # stripes run along the hair
    tabby = np.sin(2 * np.pi * across + smooth_field(rng, n, n, 4))
    pattern = (tabby > 0.3) if rng.random() < 0.5 else (smooth_field(rng, n, n, 4) > 0.4)
    coats = np.array([[0.55, 0.32, 0.15], [0.85, 0.5, 0.2], [0.6, 0.6, 0.58], [0.9, 0.82, 0.65], [0.3, 0.22, 0.16]])
    base = coats[int(rng.integers(len(coats)))] * rng.uniform(0.8, 1.1, size=3)
    dark = base * rng.uniform(0.05, 0.35)
    colour = np.where(pattern[..., None], dark, base)
    lit = 0.55 + 0.25 * np.tanh(hair)[..., None] + 0.2 * smooth_field(rng, n, n, 2)[..., None]
    return np.clip(colour * lit, 0, 1).astype(np.float32) ** 2.2


SCENES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "fruit": _fruit,
    "flowers": _flowers,
    "fur": _fur,
}


def _scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """Linear light on a size x size sensor: a scene rendered at 1x-1.5x, through the lens, area-averaged."""
    category = str(rng.choice(CATEGORIES))
    scale = float(rng.uniform(1.0, 1.5))
    scene = SCENES[category](rng, int(round(size * scale)))
    return synthetic.optics(rng, scene, size, scale), category


def _photo(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A plain camera image (display-referred, from the camera's JPEG) and its category."""
    lin, category = _scene(rng, size)
    return synthetic.shoot(rng, lin), category


# ---------------------------------------------------------------- AI sources (fixed weights)
def _weights_rng(family: int) -> np.random.Generator:
    """The fixed random source of one generator family's weights."""
    return np.random.default_rng([GENERATOR_SEED, family])


def _brush_mask(rng: np.random.Generator, n: int) -> torch.Tensor:
    """A free-form (1, 1, n, n) mask of thick brush strokes covering about STRENGTH['mask_area'], feathered."""
    canvas = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(canvas)
    target = STRENGTH["mask_area"] * rng.uniform(0.6, 1.4)
    while np.asarray(canvas).mean() / 255 < target:
        width = int(rng.uniform(0.06, 0.16) * n)
        points = [tuple(rng.uniform(0, n, size=2))]
        for _ in range(int(rng.integers(2, 7))):
            angle, step = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.3) * n
            points.append((points[-1][0] + step * np.cos(angle), points[-1][1] + step * np.sin(angle)))
        draw.line(points, fill=255, width=width, joint="curve")
        for x, y in points:
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    mask = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255)[None, None]
    return blur(mask, 1.5)


def _push_pull(x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill the unknown pixels from the known ones through a pyramid of normalised averages (coarse to fine)."""
    if min(x.shape[-2:]) <= 2:
        mean = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp(min=1e-6)
        return mean.expand_as(x)
    coarse_w = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = F.avg_pool2d(x * known, 2, ceil_mode=True) / coarse_w.clamp(min=1e-6)
    filled = F.interpolate(_push_pull(coarse, (coarse_w > 0).float()), size=x.shape[-2:], mode="bilinear")
    return known * x + (1 - known) * filled


def _spectral_texture(rng: np.random.Generator, detail: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """A texture with the known region's amplitude spectrum and random phases: a global Fourier fill."""
    amplitude = torch.fft.rfft2(detail * known).abs()
    noise = torch.fft.rfft2(torch.from_numpy(rng.standard_normal(detail.shape[-2:]).astype(np.float32)))
    texture = torch.fft.irfft2(amplitude * noise / noise.abs().clamp(min=1e-6), s=detail.shape[-2:])
    rms = ((detail**2 * known).sum() / known.sum().clamp(min=1)).sqrt()
    return texture / (texture.std() + 1e-6) * rms * STRENGTH["texture_gain"]


def _inpainted(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """LaMa-like: a brush mask filled by push-pull interpolation plus a spectral texture, feathered into the image."""
    x = to_tensor(img)
    mask = _brush_mask(rng, x.shape[-1])
    known = (mask < 0.01).float()
    smooth = blur(x, 2.0)
    fill = _push_pull(smooth, known) + _spectral_texture(rng, x - smooth, known)
    return to_array(x * (1 - mask) + fill * mask)


@cache
def _flow_weights(steps: int = 3, hidden: int = 16) -> dict[str, torch.Tensor]:
    """Per flow step: a coupling net (ll -> log-scale and shift of the 9 detail channels) and an orthogonal 9x9 mix."""
    rng = _weights_rng(2)
    w = {}
    for k in range(steps):
        w[f"c1_{k}"] = rng.normal(0, 1 / math.sqrt(27), size=(hidden, 3, 3, 3))
        w[f"c2_{k}"] = rng.normal(0, 0.3 / math.sqrt(9 * hidden), size=(18, hidden, 3, 3))
        w[f"mix_{k}"] = np.linalg.qr(rng.standard_normal((9, 9)))[0]
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}


def _coupling(ll: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step k's affine coupling: log-scale and shift of the detail channels, from the low-pass channels."""
    wt = _flow_weights()
    h = F.relu(F.conv2d(F.pad(ll, (1,) * 4, mode="replicate"), wt[f"c1_{k}"]))
    st = F.conv2d(F.pad(h, (1,) * 4, mode="replicate"), wt[f"c2_{k}"])
    return 0.5 * torch.tanh(st[:, :9]), st[:, 9:]


def _haar(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squeeze as an orthonormal 2x2 Haar transform: (1, 3, H, W) -> low-pass (1, 3, H/2, W/2), detail (1, 9, ...)."""
    a, b, c, d = x[..., ::2, ::2], x[..., ::2, 1::2], x[..., 1::2, ::2], x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, torch.cat([(a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2], 1)


def _unhaar(ll: torch.Tensor, det: torch.Tensor) -> torch.Tensor:
    """The inverse of `_haar`."""
    h, v, g = det[:, :3], det[:, 3:6], det[:, 6:]
    out = torch.zeros(1, 3, 2 * ll.shape[-2], 2 * ll.shape[-1])
    out[..., ::2, ::2], out[..., ::2, 1::2] = (ll + h + v + g) / 2, (ll - h + v - g) / 2
    out[..., 1::2, ::2], out[..., 1::2, 1::2] = (ll + h - v - g) / 2, (ll - h - v + g) / 2
    return out


def _flow_sampler(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Glow-like: the detail channels through affine couplings and 1x1 mixes to latents, a share of their variance
    resampled (the temperature), and back through the exact inverse."""
    ll, det = _haar(to_tensor(img) * 2 - 1)
    steps = len([k for k in _flow_weights() if k.startswith("mix_")])
    for k in range(steps):
        log_s, t = _coupling(ll, k)
        det = torch.einsum("ij,bjhw->bihw", _flow_weights()[f"mix_{k}"], det * torch.exp(log_s) + t)
    tau = STRENGTH["flow_temperature"]
    eps = torch.from_numpy(rng.standard_normal(det.shape).astype(np.float32))
    det = math.sqrt(1 - tau) * det + math.sqrt(tau) * eps * det.std((2, 3), keepdim=True)
    for k in reversed(range(steps)):
        log_s, t = _coupling(ll, k)
        det = (torch.einsum("ji,bjhw->bihw", _flow_weights()[f"mix_{k}"], det) - t) * torch.exp(-log_s)
    return to_array((_unhaar(ll, det) + 1) / 2)


@cache
def _alias_free_weights(channels: int = 16) -> dict[str, torch.Tensor]:
    """The Kaiser-windowed sinc (12 taps, cutoff at the latent's Nyquist rate) and the detail net's convs."""
    rng = _weights_rng(3)
    taps = np.arange(12) - 5.5
    fir = np.sinc(taps / 2) * np.kaiser(12, 6.0)
    w = {
        "fir": fir / fir.sum(),
        "c1": rng.normal(0, 1 / math.sqrt(27), size=(channels, 3, 3, 3)),
        "b1": rng.normal(0, 0.3, size=channels),
        "c2": rng.normal(0, 1 / math.sqrt(9 * channels), size=(channels, channels, 3, 3)),
        "rgb": rng.normal(0, 1 / math.sqrt(channels), size=(3, channels, 1, 1)),
    }
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}


def _sinc_filter(x: torch.Tensor, gain: float, pad: bool = True) -> torch.Tensor:
    """The separable windowed sinc along both axes, per channel (replicate padding, or none: a 'valid' filter)."""
    c = x.shape[1]
    fir = _alias_free_weights()["fir"] * gain
    x = F.conv2d(F.pad(x, (6, 5, 0, 0), mode="replicate") if pad else x, fir.expand(c, 1, 1, 12), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 6, 5), mode="replicate") if pad else x, fir[:, None].expand(c, 1, 12, 1), groups=c)


def _up2(x: torch.Tensor) -> torch.Tensor:
    """x2 upsampling: edges replicated by three samples, zero insertion, the sinc (gain 2 per axis), cropped."""
    h, w = x.shape[-2:]
    x = F.pad(x, (3, 3, 3, 3), mode="replicate")
    z = torch.zeros(*x.shape[:2], 2 * x.shape[-2], 2 * x.shape[-1])
    z[..., ::2, ::2] = x
    return _sinc_filter(z, 2.0, pad=False)[..., : 2 * h, : 2 * w]


def _alias_free(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An x2 area latent, sinc-upsampled, plus a detail net whose nonlinearity runs at twice the latent's rate
    between sinc filters (upsample, leaky ReLU, low-pass and decimate), upsampled by the same sinc."""
    wt = _alias_free_weights()
    lat = F.avg_pool2d(to_tensor(img), 2)
    h = F.conv2d(F.pad(lat * 2 - 1, (1,) * 4, mode="replicate"), wt["c1"]) + wt["b1"][None, :, None, None]
    h = _sinc_filter(F.leaky_relu(_up2(h), 0.2) * math.sqrt(2), 1.0)[..., ::2, ::2]  # the filtered nonlinearity
    h = F.conv2d(F.pad(h, (1,) * 4, mode="replicate"), wt["c2"])
    detail = F.conv2d(F.leaky_relu(_up2(h), 0.2) * math.sqrt(2), wt["rgb"])
    detail = detail - blur(detail, 2.0)
    return to_array(_up2(lat) + detail / (detail.std() + 1e-6) * STRENGTH["alias_detail"])


GENERATORS = {"inpainted": _inpainted, "flow_sampler": _flow_sampler, "alias_free": _alias_free}


# ---------------------------------------------------------------- processed reals (evaluation-only)
def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))


def _from_pil(pil: Image.Image) -> np.ndarray:
    return np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0


def _unsharp(x: torch.Tensor, sigma: float, amount: float) -> torch.Tensor:
    """Unsharp masking of a (1, C, H, W) image: halos at edges, noise boosted too."""
    return (x + amount * (x - blur(x, sigma))).clamp(0, 1)


def _zoomed(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """Digital zoom in the phone's pipeline: the developed frame's centre crop, bicubic upscaling, strong sharpening,
    then the camera's JPEG."""
    lin, category = _scene(rng, size)
    shot = synthetic.draw_shot(rng)
    frame = synthetic.develop(synthetic.capture(rng, lin, shot), shot)
    side = int(size / rng.uniform(1.5, 3.0))
    y0, x0 = (int((size - side) * rng.uniform(0.3, 0.7)) for _ in range(2))
    crop = frame[..., y0 : y0 + side, x0 : x0 + side]
    up = F.interpolate(crop, size=(size, size), mode="bicubic", align_corners=False)
    up = _unsharp(up, float(rng.uniform(1.0, 2.0)), float(rng.uniform(0.8, 2.0)))
    return synthetic.jpeg(to_array(up), shot.quality), category


def _night(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """Night mode: a dim, warm-lit scene, a burst of raw frames averaged, digital gain, heavy NR, strong sharpening."""
    lin, category = _scene(rng, size)
    dim = float(rng.uniform(0.05, 0.2))
    shot = synthetic.draw_shot(rng)
    shot = replace(
        shot,
        exposure=shot.exposure * dim,
        illuminant=(float(rng.uniform(1.3, 1.8)), 1.0, float(rng.uniform(0.45, 0.75))),  # tungsten and sodium light
        frames=int(rng.integers(4, 11)),
        luma_nr=float(rng.uniform(0.002, 0.01)),
        chroma_nr=float(rng.uniform(2.5, 4.0)),
        sharpen=float(rng.uniform(1.2, 2.5)),
    )
    raw = (synthetic.capture(rng, lin, shot) / dim).clamp(0, 1)  # the merged burst, brightened
    return synthetic.jpeg(to_array(synthetic.develop(raw, shot)), shot.quality), category


def _merge_brackets(rng: np.random.Generator, lin: np.ndarray, shot: synthetic.Shot) -> torch.Tensor:
    """Three raw exposures (-2, 0, +2 EV) merged into one HDR raw: each pixel from the frames neither clipped nor
    near black, in the 0 EV frame's units."""
    total, weight = 0, 0
    for ev in (0.25, 1.0, 4.0):
        raw = synthetic.capture(rng, lin, replace(shot, exposure=shot.exposure * ev))
        w = (torch.minimum(raw, 0.95 - raw) * 20).clamp(0, 1) + 1e-4
        total, weight = total + w * raw / ev, weight + w
    return total / weight


def _local_tone_map(rng: np.random.Generator, rgb: torch.Tensor) -> torch.Tensor:
    """Durand-style: log luminance split by a guided filter into base and detail; the base compressed, the detail
    kept or boosted (halos at strong edges), colours scaled with the luminance and saturated."""
    lum = synthetic.to_ycc(rgb.clamp(min=0))[0] + 1e-4
    log_l = torch.log(lum)
    base = synthetic.guided_filter(log_l, max(2, rgb.shape[-1] // 16), 0.1)
    mapped = (base - base.amax()) * rng.uniform(0.3, 0.6) + (log_l - base) * rng.uniform(0.9, 1.3)
    out = rgb.clamp(min=0) * torch.exp(mapped) / lum * rng.uniform(0.8, 1.1)
    y, chroma = synthetic.to_ycc(out)
    return y + float(rng.uniform(1.3, 1.8)) * chroma


def _hdr(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """HDR: a back-lit scene, bracketed raw exposures merged, a local tone map with extra saturation, the camera's
    finish (tone curve, NR, sharpening) and JPEG."""
    lin, category = _scene(rng, size)
    yy, xx = pixel_grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.clip((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle) + rng.uniform(-0.2, 0.2), 0, None) * 4
    light = 1 + rng.uniform(4, 12) * np.clip(ramp, 0, 1) ** 2  # a window or the sun behind the subject
    shot = synthetic.draw_shot(rng)
    shot = replace(shot, exposure=shot.exposure / float(light.max()) * 4)
    rgb = synthetic.demosaic(_merge_brackets(rng, lin * light[..., None].astype(np.float32), shot), shot)
    mapped = _local_tone_map(rng, rgb)
    # the lifted shadows carry the short frame's noise: stronger NR than a single shot's
    look = replace(shot, contrast=float(rng.uniform(0.5, 1.5)), luma_nr=float(rng.uniform(0.001, 0.004)),
                   chroma_nr=float(rng.uniform(2.0, 3.0)))  # fmt: skip
    return synthetic.jpeg(to_array(synthetic.finish(synthetic.tone(mapped, look), look)), shot.quality), category


def _retouched(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """Beauty retouching: smooth where the photo is already smooth (guided filter), brighter and warmer, re-saved."""
    img, category = _photo(rng, size)
    x = to_tensor(img)
    y = synthetic.to_ycc(x)[0]
    var = synthetic.box_mean(y * y, 2) - synthetic.box_mean(y, 2) ** 2
    flat = blur((1 - var / rng.uniform(0.0005, 0.003)).clamp(0, 1), 1.5)
    radius, eps = int(rng.integers(3, 7)), float(rng.uniform(0.001, 0.01))
    soft = torch.cat([synthetic.guided_filter(x[:, c : c + 1], radius, eps) for c in range(3)], 1)
    out = x + rng.uniform(0.6, 1.0) * flat * (soft - x)
    warm = torch.tensor([1.03, 1.0, 0.96])[None, :, None, None] * rng.uniform(1.0, 1.08)
    return synthetic.jpeg(to_array((out * warm).clamp(0, 1)), int(rng.integers(85, 97))), category


def _resized(img: np.ndarray, side: int, method: Image.Resampling) -> np.ndarray:
    """An 8-bit resize to side x side, as apps do it (PIL antialiases when shrinking)."""
    return _from_pil(_pil(img).resize((side, side), method))


def _reshared(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """Messenger re-sharing: a larger photo shrunk to a max side and re-encoded, then again by a second app."""
    img, category = _photo(rng, int(size * rng.uniform(1.3, 1.8)))
    img = _resized(img, int(size * rng.uniform(1.1, 1.25)), Image.Resampling.BILINEAR)
    img = synthetic.jpeg(img, int(rng.integers(70, 86)))
    img = _resized(img, size, Image.Resampling.LANCZOS if rng.random() < 0.5 else Image.Resampling.BICUBIC)
    return synthetic.jpeg(img, int(rng.integers(55, 81))), category


def _rescaled(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A resize for display: a thumbnail of a larger photo or a viewer's upscale of a smaller one, JPEG or PNG."""
    if rng.random() < 0.5:
        img, category = _photo(rng, int(size * rng.uniform(1.4, 2.0)))
        pil = _pil(img)
        pil.thumbnail((size, size))  # PIL's thumbnail: a JPEG-style reduce, then bicubic
    else:
        img, category = _photo(rng, int(size * rng.uniform(0.5, 0.8)))
        method = Image.Resampling.BILINEAR if rng.random() < 0.5 else Image.Resampling.BICUBIC
        pil = _pil(img).resize((size, size), method)
    if rng.random() < 0.5:
        return synthetic.jpeg(_from_pil(pil), int(rng.integers(75, 96))), category
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return _from_pil(Image.open(io.BytesIO(buf.getvalue()))), category


def _words(rng: np.random.Generator, count: int) -> str:
    letters = list("abcdefghijklmnopqrstuvwxyz")
    return " ".join("".join(rng.choice(letters, size=int(rng.integers(2, 9)))) for _ in range(count))


def _status_and_header(rng: np.random.Generator, draw: ImageDraw.ImageDraw, w: int, fg: tuple[int, ...]) -> int:
    """A phone status bar (clock, signal, battery) and a post header (avatar, name, menu dots); returns its height."""
    bar = max(10, int(0.06 * w))
    font = ImageFont.load_default(size=max(8, int(bar * 0.6)))
    clock = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
    draw.text((int(0.05 * w), bar // 5), clock, fill=fg, font=font)
    right, charge = int(0.93 * w), int(rng.uniform(0.2, 1.0) * (bar - 4))
    draw.rectangle((right - bar, bar // 4, right, bar - bar // 4), outline=fg)
    draw.rectangle((right - bar + 2, bar // 4 + 2, right - bar + 2 + charge, bar - bar // 4 - 2), fill=fg)
    for i in range(4):
        x = right - 2 * bar + i * bar // 5
        draw.rectangle((x, bar - bar // 4 - (i + 1) * bar // 8, x + bar // 8, bar - bar // 4), fill=fg)
    head = int(0.1 * w)
    avatar = tuple(int(v) for v in rng.integers(0, 256, size=3))
    draw.ellipse((int(0.03 * w), bar + head // 6, int(0.03 * w) + head * 2 // 3, bar + head * 5 // 6), fill=avatar)
    font = ImageFont.load_default(size=max(8, head // 3))
    draw.text((int(0.03 * w) + head, bar + head // 3), _words(rng, 1), fill=fg, font=font)
    for i in range(3):
        cx = int(0.92 * w) + i * head // 8
        draw.ellipse((cx, bar + head // 2 - 1, cx + 2, bar + head // 2 + 1), fill=fg)
    return bar + head


def _post_footer(rng: np.random.Generator, draw: ImageDraw.ImageDraw, w: int, top: int, fg: tuple[int, ...]) -> None:
    """Below the photo: like, comment and share icons, a like count, caption lines and a grey timestamp."""
    icon = max(8, int(0.07 * w))
    y = top + icon // 2
    draw.ellipse((int(0.04 * w), y, int(0.04 * w) + icon, y + icon), outline=fg, width=2)
    draw.rectangle((int(0.16 * w), y, int(0.16 * w) + icon, y + icon * 3 // 4), outline=fg, width=2)
    draw.polygon([(int(0.28 * w), y), (int(0.28 * w) + icon, y + icon // 2), (int(0.28 * w), y + icon)], outline=fg)
    font = ImageFont.load_default(size=max(8, int(0.045 * w)))
    y += icon + icon // 3
    draw.text((int(0.04 * w), y), f"{int(rng.integers(2, 9999))} likes", fill=fg, font=font)
    for _ in range(int(rng.integers(1, 4))):
        y += int(0.06 * w)
        draw.text((int(0.04 * w), y), _words(rng, int(rng.integers(3, 7))), fill=fg, font=font)
    when = f"{int(rng.integers(1, 59))} minutes ago"
    draw.text((int(0.04 * w), y + int(0.06 * w)), when, fill=(128, 128, 128), font=font)


def _screenshot(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A phone screenshot of a social-media post (PNG): status bar, header, the photo resampled to the screen's width
    (bilinear), icons and caption, in a light or dark theme."""
    img, category = _photo(rng, int(size * rng.uniform(1.1, 1.8)))
    dark = rng.random() < 0.4
    bg, fg = ((0, 0, 0), (245, 245, 245)) if dark else ((255, 255, 255), (20, 20, 20))
    height = int(size * rng.uniform(1.35, 1.7))
    canvas = Image.new("RGB", (size, height), bg)
    draw = ImageDraw.Draw(canvas)
    top = _status_and_header(rng, draw, size, fg)
    canvas.paste(_pil(img).resize((size, size), Image.Resampling.BILINEAR), (0, top))
    _post_footer(rng, draw, size, top + size, fg)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return _from_pil(Image.open(io.BytesIO(buf.getvalue()))), category


PIPELINES: dict[str, Callable[[np.random.Generator, int], tuple[np.ndarray, str]]] = {
    "zoomed": _zoomed,
    "night": _night,
    "hdr": _hdr,
    "retouched": _retouched,
    "reshared": _reshared,
    "screenshot": _screenshot,
    "rescaled": _rescaled,
}


# ---------------------------------------------------------------- the set
def make_image(source: str, index: int, seed: int, prepared: None = None) -> tuple[bytes, str]:
    """JPEG bytes and category of image `index` of `source`: a camera photo, a generator's output on one, or a
    processing pipeline's output on fresh content; then ArtiFact's finish. A pure function of its arguments (at a
    fixed torch thread count)."""
    rng = np.random.default_rng([seed, SOURCES.index(source), index])
    size = int(rng.integers(synthetic.RENDER_MIN, synthetic.RENDER_MAX + 1)) // 8 * 8
    if source in PIPELINES:
        img, category = PIPELINES[source](rng, size)
    else:
        img, category = _photo(rng, size)
        if source in GENERATORS:
            img = GENERATORS[source](img, rng)
    return artifact_postprocess(img, rng, min_side=synthetic.MIN_CROP), category


HARD_REAL = GeneratedSet(
    name="hard_real",
    targets=TARGETS,
    categories=CATEGORIES,
    make_image=make_image,
    root=Path("data/hard_real"),
    description="sealed: fruit, flowers, fur; phone, app and screen processing of real photos; three generators",
)
