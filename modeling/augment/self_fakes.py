"""Self-made fakes: real training images passed through a generator-like decoder and relabelled `ai`.

The idea of B-Free, DRCT and aligned-pair training: the same content appears in both classes, so the network
has to learn the decoder's trace, not the picture. The decoder is a draw of the hand-made family
(`modeling.augment.decoders`) or, with `learned_prob`, a small autoencoder fitted on the run's own training
reals (`modeling.augment.learned_decoder`); either way a share lam ~ U(hf_restore) of the detail that
resampling at the decoder's factor removes is put back (`out += lam * (x - up(down(x)))`): the original's own
fine detail (sensor noise, edges, JPEG blocks) comes back in part, so "less fine detail" is a weaker cue.

Where it runs
-------------
In the training transform, on the *full decoded image, before the random crop* (`BatchTransform` calls it
right after `load_image`, before the training transforms):
- the decoder's periodic grid (and the JPEG 8x8 grid of its final save) must land at a random phase
  relative to the training crop and hence to the stem's stride, as in real generated images that
  were cropped afterwards; applied after the crop, every self-fake's trace would be phase-locked to
  the crop origin, a shortcut the test images (random phase) never offer;
- a x8 decoder needs context (a 48 px crop is a 6x6 latent, mostly border);
- it costs ~2-4 ms per 200 px image on one core (less with `region`).
Only the training split gets it.

The processing rule ("was re-saved or resized" must carry no label information)
-----------------------------------------------------------------------------
A self-fake is always processed: resized by a random scale (`resample_prob`, `resample_range`: bicubic,
antialiased when shrinking, after the decoder and before the save, ArtiFact's order, since ArtiFact resized
every generated image after its generator and a self-fake made on a finished image would otherwise carry a
native-grid trace that no test image has) and saved once more as JPEG (`jpeg_prob`, quality from
`jpeg_quality`). Which other images get the same processing:
- `process_share=None` ("all"): every training image, whatever its label. Being processed then says
  nothing about the label, but every true ai image is resized and re-compressed too, which erases
  weak traces (docs/recipe.md).
- `process_share=s` ("matched"): true ai images are never processed, the reals that stay real are
  processed with probability s, and s is the self-fakes' share of the ai class, p*R / (A + p*R) for R
  real and A ai training images and self-fake probability p (`matched_process_share`). Then
  P(processed | ai) = P(processed | real) = s: the processing is still no label cue, and the true ai
  images keep their traces.
Every coin is tossed for every image, whatever its label, and the JPEG quality and resize scale have
the same distribution in both classes. A residual difference that the rule cannot remove: the
decoder blurs away part of the *first* JPEG's 8x8 blocking of a self-fake's source image (it comes
back in proportion to the restored high-pass residual).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from modeling.augment.decoders import highpass_residual, random_decoder
from modeling.augment.learned_decoder import SmallAutoencoder
from modeling.augment.transforms import jpeg_roundtrip, resize_by, to_uint8, to_uint8_tensor

Tensor = torch.Tensor


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
    learned: Sequence[SmallAutoencoder] = ()
    learned_prob: float = 0.0
    learned_hf_restore: Sequence[float] | None = None  # the learned fakes' restored share; None: `hf_restore`

    def __post_init__(self) -> None:
        share = 0.0 if self.process_share is None else self.process_share
        if not all(0.0 <= p <= 1.0 for p in (self.prob, self.jpeg_prob, self.resample_prob, share, self.learned_prob)):
            raise ValueError("prob, jpeg_prob, resample_prob, process_share and learned_prob must be in [0, 1]")
        if self.learned_prob > 0 and not self.learned:
            raise ValueError("learned_prob > 0 needs fitted learned decoders (modeling.augment.learned_decoder)")
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
        """float (3,H,W) in [0,1] -> a self-made fake, float, before quantisation and JPEG: with probability
        `learned_prob` the reconstruction by one of the learned decoders (drawn uniformly), else a draw of the
        hand-made family; either way with a share lam ~ U(hf_restore) (`learned_hf_restore` for the learned ones)
        of the detail that resampling at the decoder's factor removes put back."""
        restore = self.hf_restore
        if self.learned and rng.random() < self.learned_prob:
            decoder = self.learned[int(rng.integers(len(self.learned)))]
            f, y = decoder.factor, decoder.reconstruct(x)
            restore = self.hf_restore if self.learned_hf_restore is None else self.learned_hf_restore
        else:
            f = int(rng.choice(list(self.factors)))
            y = random_decoder(x, f, rng)
        lam = rng.uniform(*restore)
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



def rng_from_torch() -> np.random.Generator:
    """A numpy Generator drawn from torch's RNG: inside a DataLoader worker that RNG is seeded per
    worker (base_seed + worker_id, what the Trainer's seed_worker also uses), so draws are reproducible."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
