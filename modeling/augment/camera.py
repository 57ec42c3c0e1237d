"""What camera and sharing pipelines do to real photos: processing that smooths, sharpens and resamples.

Phones and messengers leave marks that look like a generator's to a detector that learned "smoothed or
resampled means ai": digital zoom upsamples, night modes denoise and then sharpen hard, HDR modes tone-map
locally, beauty filters smooth skin, messengers shrink and re-compress, screenshots paste a photo into a UI.
Each kind below is written from how those pipelines work, as a PIL RGB -> PIL RGB function of the image and
a numpy Generator (its parameters are drawn per image):

- `digital_zoom`: a central crop of 1/1.3..1/2.5 of the frame, bicubic upscale back to full size, then the
  unsharp mask every phone applies to zoomed frames.
- `night_mode`: an underexposed, noisy burst (shot and read noise) averaged over 4-8 frames, an edge-aware
  denoise, gain back with a lifted tone curve, then a strong unsharp mask.
- `hdr_tone_map`: local tone mapping on log luminance (a large-scale base compressed, the detail layer
  boosted: the "HDR look"), then a saturation boost.
- `skin_smoothing`: an edge-preserving (bilateral) smoothing blended in where the local gradient is low, as
  beauty and retouch filters do.
- `reshare`: a downscale to 50-85% and a JPEG save, then a second platform's smaller resize and JPEG.
- `screenshot`: the photo, shown at 70-100% display scale, pasted into a flat UI frame with bars and text;
  saved losslessly.
- `resized`: another size than training's (x0.6..0.9 or x1.15..2, bicubic) and a high-quality JPEG save.
- `thumbnail`: a small copy (40-90% a side) re-saved as JPEG: smaller than the model's input, so the saved
  processor zero-pads it, as `pipeline` does.
- `portrait_blur`: a phone's portrait mode: a subject mask (one to three feathered ellipses) and a depth guess
  (the background farther towards the top) set a lens-blur radius per pixel; disc blurs done in linear light (so
  bright spots bloom into discs) are blended by that radius, and the result is saved as the camera's JPEG.

Training (`CameraProcessing`) applies them label-blind, so "processed" carries no label; evaluation's stress
test (`modeling.evaluation.stress`) applies each kind to every test image with its own seeded draws. Training
processes the self-fakes' small windows of each photo: the `FRAMED` kinds, whose geometry is a share of the frame,
are then drawn for the whole photo and the window placed in it (for an ai image, on the part left sharp).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from modeling.degradations import reencode
from modeling.labels import AI_LABEL_ID

Tensor = torch.Tensor
Processing = Callable[[Image.Image, np.random.Generator], Image.Image]


# ------------------------------------------------------------------ tensor helpers, (3, H, W) float in [0, 1]


def to_float(image: Image.Image) -> Tensor:
    """PIL RGB -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def to_pil(x: Tensor) -> Image.Image:
    """float (3, H, W) -> PIL RGB, rounded and clipped."""
    return Image.fromarray(x.clamp(0, 1).mul(255).add(0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy())


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (C, H, W), reflect padding (replicate where the image is too small)."""
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).repeat(x.shape[0], 1, 1)
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    y = F.conv2d(F.pad(x[None], (r, r, 0, 0), mode=mode), k[:, :, None, :], groups=x.shape[0])
    return F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k[:, :, :, None], groups=x.shape[0])[0]


def unsharp(x: Tensor, sigma: float, amount: float) -> Tensor:
    """x + amount * (x - blur(x)): the sharpening of camera pipelines (with its halos)."""
    return x + amount * (x - gaussian_blur(x, sigma))


def bilateral(x: Tensor, sigma_space: float, sigma_range: float, radius: int = 3) -> Tensor:
    """Edge-preserving smoothing of (3, H, W): neighbours weighted by distance and by colour difference.

    One shifted copy per offset (shift-and-add) instead of an unfolded (49, H*W) stack: the same sums, a
    fraction of the memory traffic."""
    h, w = x.shape[-2:]
    mode = "reflect" if min(h, w) > radius else "replicate"
    padded = F.pad(x[None], (radius,) * 4, mode=mode)[0]
    total, norm = torch.zeros_like(x), torch.zeros((1, h, w))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[:, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            weight = math.exp(-(dy * dy + dx * dx) / (2 * sigma_space**2)) * torch.exp(
                -((shifted - x) ** 2).sum(0, keepdim=True) / (2 * sigma_range**2))
            total += shifted * weight
            norm += weight
    return total / norm


def luminance(x: Tensor) -> Tensor:
    """(1, H, W) Rec. 601 luma."""
    return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]


def rescale(image: Image.Image, factor: float) -> Image.Image:
    """Bicubic resize of both sides by `factor` (PIL antialiases when shrinking), at least 1 px a side."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC)


# ------------------------------------------------------------------ the kinds


def digital_zoom(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Crop 1/zoom of the frame around a random centre, upscale it back to full size, sharpen."""
    zoom = rng.uniform(1.3, 2.5)
    w, h = image.size
    cw, ch = max(8, round(w / zoom)), max(8, round(h / zoom))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    up = image.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.BICUBIC)
    return to_pil(unsharp(to_float(up), rng.uniform(0.8, 2.0), rng.uniform(0.5, 1.5)))


def night_mode(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A dim, noisy burst merged, denoised edge-aware, brightened with a lifted curve and sharpened hard."""
    x = to_float(image)
    gain = rng.uniform(0.15, 0.45)  # how underexposed each frame is
    frames = int(rng.integers(4, 9))
    dim = x * gain
    shot = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32)) * torch.sqrt(dim * 0.01)
    read = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32)) * rng.uniform(0.005, 0.015)
    merged = dim + (shot + read) / math.sqrt(frames)  # averaging a burst divides the noise by sqrt(frames)
    denoised = bilateral(merged.clamp(0, 1), rng.uniform(1.5, 3.0), rng.uniform(0.02, 0.05) * gain * 4)
    bright = (denoised / gain).clamp(0, 1) ** rng.uniform(0.7, 0.9)
    return to_pil(unsharp(bright, rng.uniform(1.0, 2.0), rng.uniform(1.5, 3.0)))


def hdr_tone_map(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Local tone mapping on log luminance (base compressed, detail boosted), then more saturation."""
    x = to_float(image)
    log_l = torch.log(luminance(x) + 1e-3)
    base = gaussian_blur(log_l, rng.uniform(4.0, 12.0))
    mapped = base.mean() + (base - base.mean()) * rng.uniform(0.4, 0.75) + (log_l - base) * rng.uniform(1.2, 1.8)
    y = x * torch.exp(mapped - log_l)
    grey = luminance(y)
    return to_pil(grey + (y - grey) * rng.uniform(1.1, 1.5))


def skin_smoothing(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Bilateral smoothing where the gradient is low (skin, sky), the edges kept: a beauty filter."""
    x = to_float(image)
    smooth = bilateral(x, rng.uniform(2.0, 4.0), rng.uniform(0.05, 0.12))
    lum = luminance(gaussian_blur(x, 1.0))
    grad = torch.sqrt(F.pad((lum[:, :, 1:] - lum[:, :, :-1]) ** 2, (0, 1)) + F.pad((lum[:, 1:] - lum[:, :-1]) ** 2,
                                                                                   (0, 0, 0, 1)))
    mask = gaussian_blur((1.0 - grad / rng.uniform(0.03, 0.08)).clamp(0, 1), 2.0) * rng.uniform(0.6, 1.0)
    return to_pil(x * (1 - mask) + smooth * mask)


def reshare(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shrunk and re-compressed by one platform, then by another."""
    once = reencode(rescale(image, rng.uniform(0.5, 0.85)), "JPEG", int(rng.integers(70, 91)))
    return reencode(rescale(once, rng.uniform(0.8, 1.0)), "JPEG", int(rng.integers(60, 86)))


def screenshot(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The photo at 70-100% display scale inside a flat UI frame (bars, buttons, text lines), saved losslessly."""
    shown = rescale(image, rng.uniform(0.7, 1.0)) if rng.random() < 0.8 else image
    dark = rng.random() < 0.5
    background = tuple(int(v) for v in (rng.integers(10, 40, 3) if dark else rng.integers(225, 256, 3)))
    ink = (230, 230, 230) if dark else (30, 30, 30)
    bar = round(shown.height * rng.uniform(0.08, 0.15))
    margin = round(shown.width * rng.uniform(0.03, 0.12))
    canvas = Image.new("RGB", (shown.width + 2 * margin, shown.height + 3 * bar), background)
    draw = ImageDraw.Draw(canvas)
    accent = tuple(int(v) for v in rng.integers(0, 256, 3))
    draw.rectangle((0, 0, canvas.width, bar), fill=accent)
    for i in range(int(rng.integers(2, 5))):  # text lines and a button below the photo
        y = 2 * bar + shown.height + 4 + 10 * i
        draw.text((margin, y), "lorem ipsum dolor sit amet"[: int(rng.integers(8, 26))], fill=ink)
    draw.ellipse((margin, bar // 4, margin + bar // 2, bar // 4 + bar // 2), fill=ink)
    canvas.paste(shown, (margin, round(1.5 * bar)))
    return canvas


def resized(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Another size than training's, saved again as a high-quality JPEG."""
    factor = rng.uniform(0.6, 0.9) if rng.random() < 0.5 else rng.uniform(1.15, 2.0)
    return reencode(rescale(image, factor), "JPEG", int(rng.integers(85, 96)))


def thumbnail(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A small copy, re-saved: smaller than the model input, so it reaches the network zero-padded."""
    return reencode(rescale(image, rng.uniform(0.4, 0.9)), "JPEG", int(rng.integers(80, 96)))


def disc_blur(x: Tensor, radius: float) -> Tensor:
    """(C, H, W) convolved with a uniform disc of `radius` px, antialiased at its rim: a lens's defocus blur."""
    r = max(1, math.ceil(radius))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    kernel = (radius + 0.5 - torch.sqrt(t[:, None] ** 2 + t[None, :] ** 2)).clamp(0, 1)
    kernel = (kernel / kernel.sum()).expand(x.shape[0], 1, -1, -1)
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    return F.conv2d(F.pad(x[None], (r, r, r, r), mode=mode), kernel, groups=x.shape[0])[0]


def subject_mask(h: int, w: int, rng: np.random.Generator) -> Tensor:
    """(1, H, W) in [0, 1]: one to three overlapping ellipses near the centre (a head and shoulders, an object),
    feathered as a segmentation network's soft edge is."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32) / h, torch.arange(w, dtype=torch.float32) / w,
                            indexing="ij")
    mask = torch.zeros((h, w))
    cy, cx = rng.uniform(0.35, 0.65), rng.uniform(0.3, 0.7)
    for _ in range(int(rng.integers(1, 4))):
        oy, ox = cy + rng.uniform(-0.15, 0.25), cx + rng.uniform(-0.15, 0.15)
        ry, rx = rng.uniform(0.12, 0.35), rng.uniform(0.1, 0.3)
        mask = torch.maximum(mask, (((yy - oy) / ry) ** 2 + ((xx - ox) / rx) ** 2 <= 1).float())
    return gaussian_blur(mask[None], max(0.5, rng.uniform(0.005, 0.02) * min(h, w)))


def window_place(subject: Tensor, h: int, w: int, rng: np.random.Generator, on_subject: bool) -> tuple[int, int]:
    """(top, left) of an h x w window in a frame with this (H, W) subject mask: uniform, or (`on_subject`)
    centred on a random pixel of the subject (mask > 0.5) and kept inside the frame."""
    fh, fw = subject.shape
    inside = torch.nonzero(subject > 0.5) if on_subject else ()
    if len(inside) == 0:
        return int(rng.integers(0, fh - h + 1)), int(rng.integers(0, fw - w + 1))
    cy, cx = (int(v) for v in inside[int(rng.integers(len(inside)))])
    return min(max(cy - h // 2, 0), fh - h), min(max(cx - w // 2, 0), fw - w)


def portrait_blur(
    image: Image.Image, rng: np.random.Generator, frame: int | None = None, on_subject: bool = False,
    radius_scale: float = 1.0,
) -> Image.Image:
    """Portrait mode: the background lens-blurred by a radius that grows with its guessed depth, in linear light.

    `frame`: the side of the photo this image is a window of (training's small windows). The subject, depth and
    blur radius are then drawn for that frame and the window sits at a random place in it (`on_subject`: centred
    on a random pixel of the subject), so the window looks as the same place of a whole processed photo does: a
    radius drawn for the window alone would be 3x too small. `radius_scale` multiplies the drawn radius
    (`scripts/benchmark.py portrait` scores a model over it)."""
    x = to_float(image)
    h, w = x.shape[-2:]
    fh, fw = (max(frame, h), max(frame, w)) if frame else (h, w)
    linear = x**2.2
    far = torch.linspace(1.0, rng.uniform(0.3, 0.8), fh)[:, None].expand(fh, fw)  # the top of a frame is farther
    subject = subject_mask(fh, fw, rng)
    frame_radius = (1 - subject).clamp(0, 1) * far[None] * rng.uniform(0.015, 0.05) * min(fh, fw) * radius_scale
    top, left = window_place(subject[0], h, w, rng, on_subject) if (fh, fw) != (h, w) else (0, 0)
    radius = frame_radius[:, top : top + h, left : left + w]
    levels = [0.0, *np.geomspace(0.75, max(1.0, float(frame_radius.max())), 4)]
    blurred = [linear] + [disc_blur(linear, r) for r in levels[1:]]
    out = torch.zeros_like(linear)
    for i, (lo, hi) in enumerate(zip(levels[:-1], levels[1:], strict=True)):  # linear blend between two levels
        t = ((radius - lo) / (hi - lo)).clamp(0, 1)
        inside = (radius >= lo) & ((radius < hi) | (i == len(levels) - 2))
        out = torch.where(inside, blurred[i] * (1 - t) + blurred[i + 1] * t, out)
    return reencode(to_pil(out.clamp(0, 1) ** (1 / 2.2)), "JPEG", int(rng.integers(85, 96)))


KINDS: dict[str, Processing] = {
    "digital_zoom": digital_zoom,
    "night_mode": night_mode,
    "hdr_tone_map": hdr_tone_map,
    "skin_smoothing": skin_smoothing,
    "reshare": reshare,
    "screenshot": screenshot,
    "resized": resized,
    "thumbnail": thumbnail,
    "portrait_blur": portrait_blur,
}
# kinds whose geometry is drawn relative to the whole photo, so a window of one must be told the photo's side
Framed = Callable[[Image.Image, np.random.Generator, int, bool], Image.Image]
FRAMED: dict[str, Framed] = {"portrait_blur": portrait_blur}


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """The kinds as a tuple; a ValueError naming the known ones for an unknown name."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown processing kind(s) {unknown or '(none given)'}; known: {', '.join(KINDS)}")
    return tuple(kinds)


def keyed_rng(image: Image.Image, kind: str, seed: int) -> np.random.Generator:
    """A generator keyed by (seed, kind, the image's pixels and size): the same image gets the same draw in any
    order, process or worker, and another seed gives other draws."""
    key = zlib.crc32(image.tobytes()) ^ (image.width << 16 | image.height)
    return np.random.default_rng([seed, list(KINDS).index(kind), key])


@dataclass(frozen=True)
class KeyedProcessing:
    """One kind with its draw keyed by the image (`keyed_rng`): picklable, so DataLoader workers can run it.
    Evaluation's stress test and the processed copies of the validation split use it, each with its own seed."""

    kind: str
    seed: int

    def __call__(self, image: Image.Image) -> Image.Image:
        return KINDS[self.kind](image, keyed_rng(image, self.kind, self.seed))


# ------------------------------------------------------------------ training: label-blind processing


@dataclass
class CameraProcessing:
    """(image, label, rng) -> (image, label): with probability `prob` the image goes through one kind, drawn
    uniformly; the label never changes. Label-blind, so a processed image is as often real as ai (the share is
    matched by construction) and "processed" is no cue; the real images it processes teach that smoothing,
    sharpening and resampling by themselves are not a generator's trace."""

    prob: float = 0.3
    kinds: Sequence[str] = tuple(KINDS)
    # the side of the photos that training's windows are cut from: `FRAMED` kinds draw their geometry for it and
    # process the window alone (a kind on a whole 200 px photo costs 1.3-7x its cost on the 64 px window)
    frame: int | None = None
    ai_on_subject: bool = False  # an ai image's window of a framed kind sits on the part the kind leaves sharp

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"camera processing prob must be in [0, 1], got {self.prob}")
        self.kinds = check_kinds(self.kinds)

    def __call__(self, image: Image.Image, label: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
        apply = rng.random() < self.prob
        kind = self.kinds[int(rng.integers(len(self.kinds)))]  # drawn for every image: the stream stays in step
        if not apply:
            return image, label
        if kind in FRAMED and self.frame:
            return FRAMED[kind](image, rng, self.frame, self.ai_on_subject and label == AI_LABEL_ID), label
        return KINDS[kind](image, rng), label
