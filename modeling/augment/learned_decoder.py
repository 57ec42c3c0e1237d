"""Learned decoders for self-made fakes: a family of small autoencoders fitted on the run's own training reals.

Why: the hand-made decoder family of `modeling.augment.decoders` covers interpolation kernels, transposed
convolutions and bias grids, but not what a *trained* decoder leaves, and every generator users meet is
trained. Reconstructions of real images by a latent-diffusion VAE are the closest cheap proxy of
latent-diffusion output (the DRCT and AEROBLADE finding); small autoencoders fitted for a few hundred steps on
the run's own training reals are a CPU-sized stand-in (`scripts/make_reconstructions.py` is the real-VAE path).

The family: one autoencoder per (architecture, latent stride). The encoder halves the resolution log2(stride)
times (4x4 stride-2 convolutions); the decoder doubles it as many times with the architecture's upsampling,
the ways VAE and GAN decoders are built:
- `nearest_conv`: nearest x2 then a 3x3 convolution;
- `bilinear_conv`: bilinear x2 then a 3x3 convolution;
- `transposed_conv`: a 4x4 stride-2 transposed convolution;
- `pixel_shuffle`: a 3x3 convolution to 4x the channels, then a sub-pixel shuffle (ESPCN).
Each is fitted with an L1 loss on random crops of the training reals, a fixed number of steps from a seed of
its own, single-threaded, so a run reproduces it. Only the training split's reals are read. The fitted weights
are cached (safetensors, keyed by the images and every setting) so that a resumed or repeated run does not
fit them again; they are not part of the model.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing as mp
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

logger = logging.getLogger(__name__)

ARCHITECTURES = ("nearest_conv", "bilinear_conv", "transposed_conv", "pixel_shuffle")
FIT_CROP = 32  # side of the fitting crops: the trace is local, and 48 px cost 2.3x the time
FIT_BATCH = 16


def upsample_block(arch: str, width: int) -> nn.Module:
    """One x2 stage of the decoder, (N, width, h, w) -> (N, width, 2h, 2w)."""
    if arch in ("nearest_conv", "bilinear_conv"):
        mode = "nearest" if arch == "nearest_conv" else "bilinear"
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode), nn.Conv2d(width, width, 3, 1, 1))
    if arch == "transposed_conv":
        return nn.ConvTranspose2d(width, width, 4, 2, 1)
    if arch == "pixel_shuffle":
        return nn.Sequential(nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2))
    raise ValueError(f"unknown learned-decoder architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")


class SmallAutoencoder(nn.Module):
    """(N, 3, H, W) in [0, 1] -> its reconstruction through a latent `factor` times smaller; H and W multiples of
    `factor` (`reconstruct` pads otherwise)."""

    def __init__(self, arch: str = "nearest_conv", factor: int = 4, latent_channels: int = 12, width: int = 32):
        super().__init__()
        stages = int(round(math.log2(factor)))
        if 2**stages != factor or stages < 1:
            raise ValueError(f"latent stride must be a power of two >= 2, got {factor}")
        self.arch, self.factor = arch, factor
        act = nn.LeakyReLU(0.2)
        down: list[nn.Module] = []
        for i in range(stages):  # (N, 3, H, W) -> (N, latent, H/f, W/f)
            down += [nn.Conv2d(3 if i == 0 else width, latent_channels if i == stages - 1 else width, 4, 2, 1)]
            down += [act] if i < stages - 1 else []
        up: list[nn.Module] = [nn.Conv2d(latent_channels, width, 3, 1, 1), act]
        for _ in range(stages):
            up += [upsample_block(arch, width), act]
        self.encoder = nn.Sequential(*down)
        self.decoder = nn.Sequential(*up, nn.Conv2d(width, 3, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x - 0.5)) + 0.5

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """(3, H, W) float in [0, 1] -> (3, H, W): reflected by a margin of 2 latent cells (so the convolutions'
        zero padding leaves no dark rim on the kept image, a cue no real generator's output has), padded to a
        multiple of the stride, decoded, cut back."""
        h, w = x.shape[-2:]
        f = self.factor
        m = min(2 * f, h - 1, w - 1)
        padded = F.pad(x[None], (m, m, m, m), mode="reflect") if m > 0 else x[None]
        padded = F.pad(padded, (0, (-(w + 2 * m)) % f, 0, (-(h + 2 * m)) % f), mode="replicate")
        return self(padded)[0, :, m : m + h, m : m + w]


def random_crops(images: Sequence[torch.Tensor], count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random side x side crops (float [0, 1], (count, 3, side, side)) of uint8 (3, H, W) images."""
    picks = torch.randint(0, len(images), (count,), generator=generator).tolist()
    crops = []
    for i in picks:
        image = images[i]
        h, w = image.shape[-2:]
        top = int(torch.randint(0, max(1, h - side + 1), (1,), generator=generator))
        left = int(torch.randint(0, max(1, w - side + 1), (1,), generator=generator))
        crops.append(image[:, top : top + side, left : left + side].float().div(255.0))
    return torch.stack(crops)


@dataclass(frozen=True)
class DecoderSpec:
    """One member of the family and how it is fitted."""

    arch: str = "nearest_conv"
    factor: int = 4
    steps: int = 300
    seed: int = 0
    lr: float = 2e-3

    @property
    def name(self) -> str:
        return f"{self.arch}_x{self.factor}"


def fit_autoencoder(images: Sequence[torch.Tensor], spec: DecoderSpec) -> SmallAutoencoder:
    """Fit one autoencoder on random crops of uint8 (3, H, W) images (>= FIT_CROP a side) with an L1 loss."""
    if not images:
        raise ValueError("fitting a learned decoder needs at least one real training image")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same weights on every machine and process count
    try:
        generator = torch.Generator().manual_seed(spec.seed)
        with torch.random.fork_rng():
            torch.manual_seed(spec.seed)
            model = SmallAutoencoder(spec.arch, spec.factor)
        optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
        start, loss = time.perf_counter(), torch.tensor(float("nan"))
        for _ in range(spec.steps):
            batch = random_crops(images, FIT_BATCH, FIT_CROP, generator)
            loss = (model(batch) - batch).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        logger.info("learned decoder %s: %d steps on %d real images in %.0f s, L1 %.4f", spec.name, spec.steps,
                    len(images), time.perf_counter() - start, loss.item())
    finally:
        torch.set_num_threads(threads)
    return model.eval().requires_grad_(False)


def family_specs(archs: Sequence[str], factors: Sequence[int], steps: int, seed: int) -> list[DecoderSpec]:
    """Every (architecture, stride) pair, each with a seed of its own derived from the run's and from the pair
    alone (not its position), so a family without one architecture keeps the others' decoders."""
    for arch in archs:
        upsample_block(arch, 1)  # an unknown name fails here, before any fitting
    return [DecoderSpec(arch, factor, steps, seed * 1000 + 10 * ARCHITECTURES.index(arch) + int(math.log2(factor)))
            for arch in archs for factor in factors]


def images_key(images: Sequence[torch.Tensor]) -> str:
    """A digest of the fitting images (their pixels and sizes): part of every cache file's name."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(str(tuple(image.shape)).encode())
        digest.update(image.numpy().tobytes())
    return digest.hexdigest()[:16]


def _fit_job(job: tuple[list[torch.Tensor], DecoderSpec]) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in fit_autoencoder(*job).state_dict().items()}


def fit_family(images: Sequence[torch.Tensor], specs: Sequence[DecoderSpec], cache_dir: str | Path | None = None,
               workers: int = 1) -> list[SmallAutoencoder]:
    """The fitted family, in `specs` order: from the cache where a file matches, else fitted (in `workers` spawn
    processes, one thread each: the same weights whatever the worker count) and cached."""
    cache = Path(cache_dir) if cache_dir else None
    key = images_key(images)
    paths = [cache / f"{spec.name}_s{spec.steps}_c{FIT_CROP}x{FIT_BATCH}_seed{spec.seed}_lr{spec.lr:g}_{key}"
             ".safetensors" if cache else None for spec in specs]
    todo = [i for i, path in enumerate(paths) if path is None or not path.is_file()]
    states: dict[int, dict[str, torch.Tensor]] = {}
    if todo:
        jobs = [(list(images), specs[i]) for i in todo]
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("spawn")) as pool:
                fitted = list(pool.map(_fit_job, jobs))
        else:
            fitted = [_fit_job(job) for job in jobs]
        states.update(zip(todo, fitted, strict=True))
    models = []
    for i, spec in enumerate(specs):
        state = states.get(i) or load_file(str(paths[i]))
        if i in states and paths[i] is not None:
            paths[i].parent.mkdir(parents=True, exist_ok=True)
            save_file(state, str(paths[i]))
        model = SmallAutoencoder(spec.arch, spec.factor)
        model.load_state_dict(state)
        models.append(model.eval().requires_grad_(False))
    return models


def uint8_images(arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """(H, W, 3) uint8 arrays -> uint8 (3, H, W) tensors."""
    return [torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1).contiguous() for a in arrays]  # a copy
