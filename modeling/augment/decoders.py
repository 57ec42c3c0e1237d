"""A hand-made family of generator-like decoders: what the self-made fakes are made with (drawn per image).

Not fitted to any generator of the demo data. Each draw:
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
after the last stage: optional period-2^s bias grid (s <= log2 f) and a near-identity colour mix.
The family contains nearest+conv GANs, transposed-conv decoders and resize-conv decoders with any kernel of
these sizes. `highpass_residual` is the detail a clean resampling at the decoder's factor removes; the
self-fakes put a share of it back (`modeling.augment.self_fakes`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor


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
