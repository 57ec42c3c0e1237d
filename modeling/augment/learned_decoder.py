"""A learned decoder for self-made fakes: a small autoencoder fitted on the run's own real training images.

Why: the hand-made decoder family of `modeling.augment.decoders` covers interpolation kernels, transposed
convolutions and bias grids, but not what a *trained* decoder leaves. Reconstructions of real images
by a latent-diffusion VAE are the closest cheap proxy of latent-diffusion output (the DRCT and
AEROBLADE finding); a small autoencoder fitted for a few hundred steps on the run's own training reals is a
CPU-sized stand-in, and `scripts/make_reconstructions.py` is the real-VAE path for real data.

The autoencoder: a x4 latent (two stride-2 4x4 convolutions), decoded by nearest x2 + 3x3 convolution
stages, as many VAE and GAN decoders are built. It is fitted with an L1 loss on random crops of the
training reals, a fixed number of steps from a fixed seed, single-threaded, so a run reproduces it.
Only the training split's reals are read; the fitted weights are not saved with the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

LATENT_FACTOR = 4  # the encoder's downsampling (two stride-2 convolutions)
FIT_CROP = 48  # side of the training crops (the demo's training crop)
FIT_BATCH = 16


class SmallAutoencoder(nn.Module):
    """(N, 3, H, W) in [0, 1] -> its reconstruction, H and W multiples of 4 (`reconstruct` pads otherwise)."""

    def __init__(self, latent_channels: int = 12, width: int = 32):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), act, nn.Conv2d(width, latent_channels, 4, 2, 1)
        )  # (N, 3, H, W) -> (N, latent, H/4, W/4)
        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, width, 3, 1, 1), act, up,
            nn.Conv2d(width, width, 3, 1, 1), act, up,
            nn.Conv2d(width, 3, 3, 1, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x - 0.5)) + 0.5

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """(3, H, W) float in [0, 1] -> (3, H, W): padded to a multiple of 4 (replicate), decoded, cut back."""
        h, w = x.shape[-2:]
        padded = F.pad(x[None], (0, (-w) % 4, 0, (-h) % 4), mode="replicate")
        return self(padded)[0, :, :h, :w]


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


def fit_autoencoder(images: Sequence[torch.Tensor], steps: int, seed: int, lr: float = 2e-3) -> SmallAutoencoder:
    """Fit a SmallAutoencoder on random crops of uint8 (3, H, W) images (>= FIT_CROP a side) with an L1 loss."""
    if not images:
        raise ValueError("fitting the learned decoder needs at least one real training image")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same weights on every machine and process count
    try:
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = SmallAutoencoder()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        start, loss = time.perf_counter(), torch.tensor(float("nan"))
        for _ in range(steps):
            batch = random_crops(images, FIT_BATCH, FIT_CROP, generator)
            loss = (model(batch) - batch).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        logger.info("learned decoder: %d steps on %d real images in %.0f s, L1 %.4f", steps, len(images),
                    time.perf_counter() - start, loss.item())
    finally:
        torch.set_num_threads(threads)
    return model.eval().requires_grad_(False)


def uint8_images(arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """(H, W, 3) uint8 arrays -> uint8 (3, H, W) tensors."""
    return [torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1).contiguous() for a in arrays]  # a copy
