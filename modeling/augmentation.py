"""Training-time augmentations: what only training batches see, before the shared processor.

`build_train_transforms` does the processor's geometry the training way (a random crop where
evaluation takes the center crop; first a short-side resize for a "resize" processor) and adds the
robustness augmentations (flips, mild rescaling, blur, JPEG, grayscale); `BatchTransform` then runs
the same processor as evaluation with its own resize/crop switched off, so normalisation is shared.

`SelfFakes` runs before them, on the decoded training image, and may change its label: real
training images passed through a random generator-like decoder, relabelled `ai`. The idea of B-Free,
DRCT and aligned-pair training: the same content appears in both classes, so the network has to
learn the decoder's trace, not the picture.

Where it runs
-------------
In the training transform, on the *full decoded image, before the random crop* (BatchTransform calls
it right after `load_image`, before `train_transforms`):
- the decoder's periodic grid (and the JPEG 8x8 grid of its final save) must land at a random phase
  relative to the training crop and hence to the stem's stride, as in real generated images that
  were cropped afterwards; applied after the crop, every self-fake's trace would be phase-locked to
  the crop origin, a shortcut the test images (random phase) never offer;
- a x8 decoder needs context (a 48 px crop is a 6x6 latent, mostly border);
- it costs ~2-4 ms per 200 px image on one core (less with `region`).
Only the training split gets it (BatchTransform's `sample_transform` is set for the train split only).

The processing rule ("was re-saved or resized" must carry no label information)
-----------------------------------------------------------------------------
A self-fake is always processed: resized by a random scale (`resample_prob`, `resample_range`:
bicubic, antialiased when shrinking, after the decoder and before the save, ArtiFact's order, since
ArtiFact resized every generated image after its generator and a self-fake made on a finished
image would otherwise carry a native-grid trace that no test image has) and saved once more as JPEG
(`jpeg_prob`, quality from `jpeg_quality`). Which other images get the same processing:
- `process_share=None` ("all"): every training image, whatever its label. Being processed then says
  nothing about the label, but every true ai image is resized and re-compressed too, which erases
  weak traces: on the outside set (benchmarks/outside_data.py) that alone kept validation ROC-AUC at
  0.52-0.57 for 224 steps, where the untouched images reached 0.72 by step 168 (seed 0).
- `process_share=s` ("matched", the default of a run): true ai images are never processed, the reals
  that stay real are processed with probability s, and s is the self-fakes' share of the ai class,
  p*R / (A + p*R) for R real and A ai training images and self-fake probability p
  (`matched_process_share`). Then P(processed | ai) = P(processed | real) = s: the processing is still
  no label cue, and the true ai images keep their traces.
Every coin is tossed for every image, whatever its label, and the JPEG quality and resize scale have
the same distribution in both classes. A residual difference that the rule cannot remove: the
decoder blurs away part of the *first* JPEG's 8x8 blocking of a self-fake's source image (it comes
back in proportion to the restored high-pass residual, see `hf_restore`).

Decoder family (drawn per image; not fitted to any generator of the demo data)
--------------------------------------------------------------------------------
encoder: x2, x4 or x8 downsampling by area averaging, Gaussian blur + subsampling (sigma 0.3-0.7 x f),
  or antialiased bilinear resizing; optional small latent noise.
decoder: log2(f) x2 stages, each one of
  - a stride-2 transposed convolution with a random k x k kernel, k in 2..6: an interpolation base
    (box, triangle, bilinear-4, Gaussian with random width, or uniform random positive taps) made
    non-separable by a multiplicative perturbation of random strength 0-0.35; per-phase gains left
    uneven (checkerboard) or equalised, with the same or a different kernel per colour channel;
  - nearest or bilinear x2 resizing followed by a random 3x3 smoothing convolution;
  then, each with its own probability: a random 3x3 conv (sum 1), a per-phase additive bias
  pattern of period 2 (<= 4/255), a mild pointwise gamma (0.9-1.1).
after the last stage: optional period-2^s bias grid (s <= log2 f), a near-identity colour mix, and the
  high-frequency restoration `out += lam * (x - up(down(x)))`, lam ~ U(hf_restore): the original's
  own fine detail (sensor noise, edges, JPEG blocks) comes back in part. The learned decoder's
  reconstructions (modeling/learned_decoder.py) get the same restoration above their x4 latent: an
  autoencoder fitted for a few hundred steps blurs (a quarter of the Laplacian energy of the blind set's
  reals), and fakes that are all blurrier than reals teach "less detail = ai". With lam ~ U(0, 1) the
  hand-made fakes still keep only ~2/3 of the reals' median Laplacian energy: that cue is what part of
  the demo's unseen-generator transfer rests on (restoring all detail, lam = 1, dropped it from 0.95 to
  0.68 with half the reals as fakes, seed 0), and it points the wrong way on data whose generators add
  detail (the blind set's spectral_sr), one reason the demo keeps self_fake_prob low.
That family contains nearest+conv GANs, transposed-conv decoders and resize-conv decoders with any
kernel of these sizes; it is broad in kernels, factors, phase gains, biases and restoration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from modeling.config import AugmentArguments
from modeling.degradations import reencode
from modeling.learned_decoder import LATENT_FACTOR, SmallAutoencoder

Tensor = torch.Tensor


def resize_by(img: torch.Tensor, factor: float) -> torch.Tensor:
    """(..., H, W) resized by `factor`: bicubic, antialiased when shrinking (as PIL and ArtiFact resize)."""
    h, w = img.shape[-2:]
    size = [max(1, round(h * factor)), max(1, round(w * factor))]
    return v2.functional.resize(img, size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)


class RandomRescale(torch.nn.Module):
    """Mild antialiased rescale by a random factor: resized images are common in the wild."""

    def __init__(self, scale_range: tuple[float, float]):
        super().__init__()
        self.scale_range = scale_range

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        lo, hi = self.scale_range
        return resize_by(img, float(torch.empty(1).uniform_(lo, hi)))


def build_train_transforms(
    crop: tuple[int, int], aug: AugmentArguments, resize_short_side: int | None = None
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB -> uint8 (C, H, W) tensor of the training crop size, augmented (see the module docstring)."""
    steps: list[torch.nn.Module] = [v2.ToImage()]
    if resize_short_side:
        steps.append(v2.Resize(resize_short_side, interpolation=v2.InterpolationMode.BICUBIC, antialias=True))
    if aug.rescale_prob > 0:
        steps.append(v2.RandomApply([RandomRescale(tuple(aug.rescale_range))], p=aug.rescale_prob))
    steps.append(v2.RandomCrop(crop, pad_if_needed=True))  # native pixels: never resampled
    if aug.hflip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(aug.hflip_prob))
    if aug.blur_prob > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel_size=9, sigma=aug.blur_sigma)], p=aug.blur_prob))
    if aug.jpeg_prob > 0:
        steps.append(v2.RandomApply([v2.JPEG(quality=list(aug.jpeg_quality))], p=aug.jpeg_prob))
    if aug.grayscale_prob > 0:
        steps.append(v2.RandomGrayscale(p=aug.grayscale_prob))
    return v2.Compose(steps)


# --------------------------------------------------------------------------- self-made fakes


def to_uint8_tensor(image: Image.Image) -> Tensor:
    """PIL RGB -> uint8 (3, H, W)."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def to_uint8(x: Tensor) -> Tensor:
    return x.clamp(0.0, 1.0).mul(255.0).add_(0.5).floor_().to(torch.uint8)


def jpeg_roundtrip(x8: Tensor, quality: int) -> Tensor:
    """uint8 (3, H, W) -> a JPEG save at `quality` and back (PIL, as a default save) -> uint8 (3, H, W)."""
    return to_uint8_tensor(reencode(Image.fromarray(x8.permute(1, 2, 0).numpy()), "JPEG", int(quality)))


def _pad_to_multiple(x: Tensor, f: int) -> tuple[Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        x = F.pad(x[None], (0, pw, 0, ph), mode="replicate")[0]
    return x, h, w


def downsample(x: Tensor, f: int, method: str, sigma_rel: float = 0.5) -> Tensor:
    """(3,H,W) with H,W divisible by f -> (3,H/f,W/f): 'area', 'gauss' (blur + subsample) or 'bilinear'."""
    if method == "area":
        return F.avg_pool2d(x[None], f)[0]
    if method == "bilinear":
        h, w = x.shape[-2:]
        return F.interpolate(x[None], size=(h // f, w // f), mode="bilinear", antialias=True, align_corners=False)[0]
    if method == "gauss":  # separable Gaussian blur, evaluated only at the kept (strided) positions
        sigma = max(0.3, sigma_rel * f)
        r = int(math.ceil(2.5 * sigma))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        g = torch.exp(-0.5 * (t / sigma) ** 2)
        g = (g / g.sum())[None, None]
        c, h, w = x.shape
        y = F.conv1d(F.pad(x.reshape(c * h, 1, w), (r, r), mode="replicate"), g, stride=f)  # (c*h, 1, w/f)
        y = y.reshape(c, h, -1).transpose(1, 2).reshape(-1, 1, h)
        y = F.conv1d(F.pad(y, (r, r), mode="replicate"), g, stride=f)
        return y.reshape(c, -1, y.shape[-1]).transpose(1, 2).contiguous()
    raise ValueError(method)


def base_kernel_1d(kind: str, k: int, rng: np.random.Generator) -> np.ndarray:
    """A 1-D x2 interpolation kernel of length k, summing to 2 (each output gets ~1x its input)."""
    if kind == "box":
        h = np.ones(k)
    elif kind == "triangle":
        c = (k - 1) / 2
        h = np.maximum(0.0, 1.0 - np.abs(np.arange(k) - c) / (c + 1))
    elif kind == "gauss":
        c = (k - 1) / 2
        s = rng.uniform(0.4, 1.2) * max(1.0, k / 3)
        h = np.exp(-0.5 * ((np.arange(k) - c) / s) ** 2)
    elif kind == "random":
        h = rng.uniform(0.1, 1.0, size=k)
    else:
        raise ValueError(kind)
    return 2.0 * h / h.sum()


def random_tconv_kernel(rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    """(C, k, k) kernels for a stride-2 transposed conv: base (x) base, perturbed, sum 4 per channel."""
    k = int(rng.integers(2, 7))
    kinds = ["box", "triangle", "gauss", "random"] + (["bilinear"] if k == 4 else [])
    kind = str(rng.choice(kinds))
    if kind == "bilinear":
        h = np.array([0.25, 0.75, 0.75, 0.25])
    else:
        h = base_kernel_1d(kind, k, rng)
    eps = rng.uniform(0.0, 0.35)
    equalise = rng.random() < 0.5
    delta = rng.uniform(0.0, 0.12)
    per_channel = rng.random() < 0.5
    out = []
    K0 = None
    for _ in range(channels):
        if K0 is not None and not per_channel:
            out.append(K0)
            continue
        K = np.outer(h, h) * (1.0 + eps * rng.standard_normal((k, k)))
        K = np.maximum(K, -0.1 * np.abs(K).max())
        # each of the 4 output phases first gets unit gain (odd k or random taps would otherwise give
        # gains up to 2:1, a checkerboard far beyond any trained decoder's); then, unless `equalise`,
        # a per-phase gain jitter of random strength delta <= 0.12 (the transposed-conv checkerboard)
        for a in range(2):
            for b in range(2):
                s = K[a::2, b::2].sum()
                if abs(s) > 1e-6:
                    K[a::2, b::2] /= s
        if not equalise:
            gains = 1.0 + delta * rng.standard_normal((2, 2))
            for a in range(2):
                for b in range(2):
                    K[a::2, b::2] *= gains[a, b]
        K0 = K
        out.append(K)
    return np.stack(out).astype(np.float32)


def tconv_x2(x: Tensor, K: np.ndarray) -> Tensor:
    """(3,h,w) -> (3,2h,2w) by a per-channel stride-2 transposed conv with kernels K (3,k,k)."""
    k = K.shape[-1]
    xp = F.pad(x[None], (2, 2, 2, 2), mode="replicate")
    y = F.conv_transpose2d(xp, torch.from_numpy(K)[:, None], stride=2, groups=3)
    h, w = x.shape[-2:]
    s = 4 + (k - 2) // 2
    return y[0, :, s : s + 2 * h, s : s + 2 * w]


def random_smooth3(rng: np.random.Generator, strength: float) -> np.ndarray:
    """(3,3,3) per-channel 3x3 kernels summing to 1: centre tap plus random positive neighbours."""
    out = []
    for _ in range(3):
        K = rng.uniform(0.0, 1.0, size=(3, 3)) * strength + rng.normal(0, 0.03, size=(3, 3))
        K[1, 1] = 1.0
        out.append(K / K.sum())
    return np.stack(out).astype(np.float32)


def conv3(x: Tensor, K: np.ndarray) -> Tensor:
    """Per-channel 3x3 correlation, replicate padding (shift-and-add: faster than grouped conv2d on CPU)."""
    h, w = x.shape[-2:]
    xp = F.pad(x[None], (1, 1, 1, 1), mode="replicate")[0]
    Kt = torch.from_numpy(K)
    out = torch.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            out.addcmul_(xp[:, dy : dy + h, dx : dx + w], Kt[:, dy, dx, None, None])
    return out


def resize_conv_x2(x: Tensor, mode: str, K: np.ndarray) -> Tensor:
    y = F.interpolate(x[None], scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))[0]
    return conv3(y, K)


def periodic_bias(h: int, w: int, period: int, amp: float, rng: np.random.Generator) -> Tensor:
    """(3,h,w) additive pattern, a random (3, period, period) tile repeated: a bias grid."""
    tile = torch.from_numpy(rng.normal(0.0, amp, size=(3, period, period)).astype(np.float32))
    reps = (1, h // period + 1, w // period + 1)
    return tile.repeat(*reps)[:, :h, :w]


def random_decoder(x: Tensor, f: int, rng: np.random.Generator) -> Tensor:
    """One draw of the hand-made family (see module docstring): (3,H,W) in [0,1] -> (3,H,W)."""
    xp, h, w = _pad_to_multiple(x, f)
    z = downsample(xp, f, str(rng.choice(["area", "gauss", "bilinear"])), rng.uniform(0.3, 0.7))
    if rng.random() < 0.3:
        z = z + torch.from_numpy(rng.normal(0, rng.uniform(0.0, 0.01), size=z.shape).astype(np.float32))
    for _ in range(int(round(math.log2(f)))):
        if rng.random() < 0.6:
            z = tconv_x2(z, random_tconv_kernel(rng))
        else:
            z = resize_conv_x2(z, str(rng.choice(["nearest", "bilinear"])), random_smooth3(rng, rng.uniform(0.0, 0.6)))
        if rng.random() < 0.4:
            z = conv3(z, random_smooth3(rng, rng.uniform(0.0, 0.5)))
        if rng.random() < 0.3:
            z = z + periodic_bias(z.shape[-2], z.shape[-1], 2, rng.uniform(0.0, 4 / 255), rng)
        if rng.random() < 0.2:
            z = z.clamp(0, 1) ** float(rng.uniform(0.9, 1.1))
    if rng.random() < 0.3:
        period = int(2 ** rng.integers(1, int(math.log2(f)) + 1))
        z = z + periodic_bias(z.shape[-2], z.shape[-1], period, rng.uniform(0.0, 4 / 255), rng)
    if rng.random() < 0.5:
        M = torch.from_numpy((np.eye(3) + rng.normal(0, 0.03, size=(3, 3))).astype(np.float32))
        M = M / M.sum(dim=1, keepdim=True)
        z = torch.einsum("ij,jhw->ihw", M, z)
    return z[:, :h, :w]


def highpass_residual(x: Tensor, f: int) -> Tensor:
    """x - bilinear_up(area_down(x, f)): the detail a clean x f resampling removes."""
    xp, h, w = _pad_to_multiple(x, f)
    low = F.interpolate(F.avg_pool2d(xp[None], f), scale_factor=f, mode="bilinear", align_corners=False)[0]
    return (xp - low)[:, :h, :w]


# ----------------------------------------------------------------------------- the augmentation


@dataclass
class SelfFakes:
    """(image, label, rng) -> (image, label): with probability `prob` a real image becomes a self-made fake.

    image: PIL RGB or uint8 (3,H,W) tensor; the same type comes back. rng: numpy Generator (the caller
    derives it from the DataLoader worker's torch RNG, so results are fixed by the worker seed).
    Every fake draws a fresh decoder of the family: what is shared by all of them (a resampling grid,
    its period, restored detail on top of smoothed content) is what the network can learn from them.
    `region`: if set, every image (label-blind) is first cut to a random `region` x `region` window
    (plus `context` pixels each side that the decoder sees and that are then dropped, so no padding
    border reaches the output); the training RandomCrop then crops inside it. With the demo's 48 px
    training crops, region 64 costs ~1/8 of working on the full 200 px image.
    """

    prob: float = 0.5
    jpeg_prob: float = 1.0
    jpeg_quality: Sequence[int] = (65, 100)
    factors: Sequence[int] = (2, 4, 8)
    hf_restore: Sequence[float] = (0.0, 1.0)
    real_label: int = 0
    ai_label: int = 1
    region: int | None = None
    context: int = 8
    resample_prob: float = 0.0
    resample_range: Sequence[float] = (0.77, 1.25)
    process_share: float | None = None
    learned: SmallAutoencoder | None = None
    learned_prob: float = 0.0

    def __post_init__(self) -> None:
        share = 0.0 if self.process_share is None else self.process_share
        if not all(0.0 <= p <= 1.0 for p in (self.prob, self.jpeg_prob, self.resample_prob, share, self.learned_prob)):
            raise ValueError("prob, jpeg_prob, resample_prob, process_share and learned_prob must be in [0, 1]")
        if self.learned_prob > 0 and self.learned is None:
            raise ValueError("learned_prob > 0 needs the fitted learned decoder (modeling.learned_decoder)")
        if not 0.0 < self.resample_range[0] <= self.resample_range[1]:
            raise ValueError(f"resample_range must be [lo, hi] with 0 < lo <= hi, got {self.resample_range}")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"jpeg_quality must be [lo, hi] within 1..100, got {self.jpeg_quality}")

    def processes(self, label: int, make_fake: bool, coin: float) -> bool:
        """Whether this image gets the resample and JPEG save (see "The processing rule" above)."""
        if self.process_share is None or make_fake:
            return True
        return label == self.real_label and coin < self.process_share

    def fake(self, x: Tensor, rng: np.random.Generator) -> Tensor:
        """float (3,H,W) in [0,1] -> a self-made fake, float, before quantisation and JPEG: the learned decoder's
        reconstruction with probability `learned_prob`, else a draw of the hand-made family; either way with a
        share lam ~ U(hf_restore) of the detail that resampling at the decoder's factor removes put back."""
        if self.learned is not None and rng.random() < self.learned_prob:
            f, y = LATENT_FACTOR, self.learned.reconstruct(x)
        else:
            f = int(rng.choice(list(self.factors)))
            y = random_decoder(x, f, rng)
        lam = rng.uniform(*self.hf_restore)
        if lam > 0:
            y = y + lam * highpass_residual(x, f)
        return y

    def _window(self, x8: Tensor, rng: np.random.Generator, scale: float = 1.0) -> tuple[Tensor, int]:
        """A random (region / scale + 2*context) window, clamped to the image; returns it and the context kept.

        With a resample by `scale` coming, the window is cut 1/scale larger so that `region` pixels remain."""
        if not self.region:
            return x8, 0
        h, w = x8.shape[-2:]
        region = math.ceil(self.region / scale)
        side = min(region + 2 * self.context, h, w)
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        ctx = max(0, min(self.context, (side - region) // 2))
        return x8[:, top : top + side, left : left + side], ctx

    def _resample(self, x8: Tensor, scale: float) -> Tensor:
        """Resize by `scale` as ArtiFact's finish does (bicubic, antialiased when shrinking); with a region,
        then the central region x region (the resized context is dropped, as without a resample)."""
        out = resize_by(x8, scale)
        if not self.region:
            return out
        size = out.shape[-2:]
        side = min(self.region, *size)
        top, left = (size[0] - side) // 2, (size[1] - side) // 2
        return out[:, top : top + side, left : left + side]

    def __call__(
        self, image: Image.Image | Tensor, label: int, rng: np.random.Generator | None = None
    ) -> tuple[Image.Image | Tensor, int]:
        rng = rng if rng is not None else rng_from_torch()
        was_pil = isinstance(image, Image.Image)
        # every coin is tossed for every image, whatever its label, so the draws below stay in step
        save = rng.random() < self.jpeg_prob
        quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        resample = rng.random() < self.resample_prob
        scale = float(rng.uniform(*self.resample_range))
        fake_coin = rng.random() < self.prob
        process_coin = rng.random()
        make_fake = int(label) == self.real_label and fake_coin
        if not self.processes(int(label), make_fake, process_coin):
            save = resample = False
        scale = scale if resample else 1.0
        if not save and not make_fake and not self.region and not resample:
            return image, label
        x8 = to_uint8_tensor(image) if was_pil else image
        x8, ctx = self._window(x8, rng, scale)
        if make_fake:
            x8 = to_uint8(self.fake(x8.float().div(255.0), rng))
        if resample:  # after the decoder, before the save: the order of ArtiFact's finish
            x8 = self._resample(x8, scale)
        elif ctx:
            x8 = x8[:, ctx:-ctx, ctx:-ctx]
        if save:
            x8 = jpeg_roundtrip(x8, quality)
        out_label = self.ai_label if make_fake else label
        if was_pil:
            return Image.fromarray(x8.permute(1, 2, 0).numpy()), out_label
        return x8, out_label


def matched_process_share(prob: float, num_real: int, num_ai: int) -> float:
    """The self-fakes' expected share of the ai class, p*R / (A + p*R): the "matched" processing rate of the
    reals that stay real, so that P(processed | label) is the same for both labels."""
    fakes = prob * num_real
    return fakes / (num_ai + fakes) if fakes > 0 else 0.0


def label_counts_after_self_fakes(prob: float, num_real: int, num_ai: int) -> tuple[float, float]:
    """Expected (real, ai) training images per epoch once a share `prob` of the reals became ai."""
    return num_real * (1.0 - prob), num_ai + prob * num_real


def build_self_fakes(
    aug: AugmentArguments, num_real: int = 0, num_ai: int = 0, learned: SmallAutoencoder | None = None
) -> SelfFakes | None:
    """The self-made-fakes sample transform of a run's settings and its training split's label counts (and the
    fitted learned decoder when `self_fake_learned_prob` > 0), or None when off."""
    if aug.self_fake_prob <= 0:
        return None
    share = None
    if aug.self_fake_processing == "matched":
        share = matched_process_share(aug.self_fake_prob, num_real, num_ai)
    return SelfFakes(
        prob=aug.self_fake_prob, jpeg_prob=aug.self_fake_jpeg_prob, jpeg_quality=tuple(aug.self_fake_jpeg_quality),
        factors=tuple(aug.self_fake_factors), hf_restore=tuple(aug.self_fake_hf_restore),
        region=aug.self_fake_region or None, resample_prob=aug.self_fake_resample_prob,
        resample_range=tuple(aug.self_fake_resample_range), process_share=share,
        learned=learned if aug.self_fake_learned_prob > 0 else None, learned_prob=aug.self_fake_learned_prob,
    )


def rng_from_torch() -> np.random.Generator:
    """A numpy Generator drawn from torch's RNG: inside a DataLoader worker that RNG is seeded per
    worker (base_seed + worker_id, what the Trainer's seed_worker also uses), so draws are reproducible."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
