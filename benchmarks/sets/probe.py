"""The learned-decoder probe: the demo's content reconstructed by small trained autoencoders, one source per
architecture of the self-fakes' learned family (`modeling.augment.learned_decoder.ARCHITECTURES`).

A tuning set, for the leave-one-architecture-out benchmark (`scripts/benchmark.py loao`): a model trained on the
demo data with the family minus one architecture is scored on this set, and the left-out architecture's source
says whether the others taught it. Real sources are fresh renders of the demo's two styles (another seed);
each AI source is the same kind of content through an autoencoder of one architecture at a x4 latent, fitted in
`prepare()` on a separate pool of renders, its reconstruction left as the decoder made it (no detail put back).
Both classes get the demo's finish (a native 200 px crop and a JPEG save at quality 65-100).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from modeling.augment.learned_decoder import ARCHITECTURES, DecoderSpec, SmallAutoencoder, fit_autoencoder
from modeling.data.demo import CATEGORIES, REAL_SOURCES, artifact_postprocess, render_scene
from modeling.data.generated import GeneratedSet

PROBE_SEED = 5_550_123  # the renders, the fitting pool and every autoencoder's seed
AI_SOURCES = tuple(f"ae_{arch}" for arch in ARCHITECTURES)
TARGETS = {**dict.fromkeys(REAL_SOURCES, 0), **{s: 20 + i for i, s in enumerate(AI_SOURCES)}}
FACTOR = 4
FIT_STEPS = 400
POOL = 64  # renders the autoencoders are fitted on (never written as images)


def prepare(steps: int = FIT_STEPS) -> dict[str, dict[str, np.ndarray]]:
    """Fit one autoencoder per architecture on a pool of fresh renders; their weights by source name."""
    rng = np.random.default_rng([PROBE_SEED, 999])
    pool = [render_scene(rng, 200, 200, str(REAL_SOURCES[i % 2]))[0] for i in range(POOL)]
    images = [torch.from_numpy((np.clip(p, 0, 1) * 255 + 0.5).astype(np.uint8)).permute(2, 0, 1).contiguous()
              for p in pool]
    states = {}
    for i, (source, arch) in enumerate(zip(AI_SOURCES, ARCHITECTURES, strict=True)):
        model = fit_autoencoder(images, DecoderSpec(arch, FACTOR, steps, PROBE_SEED + i))
        states[source] = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    return states


def reconstruct(img: np.ndarray, source: str, states: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """(H, W, 3) float image through the autoencoder of `source`'s architecture."""
    model = SmallAutoencoder(ARCHITECTURES[AI_SOURCES.index(source)], FACTOR)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in states[source].items()})
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)
    return model.eval().reconstruct(x).permute(1, 2, 0).numpy()


def make_image(source: str, index: int, seed: int, prepared: dict | None = None) -> tuple[bytes, str]:
    """JPEG bytes and category of image `index` of `source`: a pure function of its arguments."""
    rng = np.random.default_rng([PROBE_SEED, seed, list(TARGETS).index(source), index])
    size = int(rng.integers(200, 225)) // 4 * 4
    style = source if source in REAL_SOURCES else str(rng.choice(REAL_SOURCES))
    img, category = render_scene(rng, size, size, style)
    if source in AI_SOURCES:
        if prepared is None:
            raise ValueError(f"{source} needs the fitted autoencoders (prepare())")
        img = reconstruct(img, source, prepared)
    return artifact_postprocess(img, rng, 200, 200), category


def probe_set(steps: int = FIT_STEPS) -> GeneratedSet:
    """The set, its autoencoders fitted for `steps` steps (fewer only in tests: other weights, other fakes)."""
    return GeneratedSet(
        name="learned_probe",
        targets=TARGETS,
        categories=CATEGORIES,
        make_image=make_image,
        root=Path("data/learned_probe"),
        real_share=len(AI_SOURCES) / len(REAL_SOURCES),  # as many real images as fakes
        prepare=partial(prepare, steps=steps),
        needs_prepared=AI_SOURCES,
        description="tuning: the demo's content through one trained autoencoder per learned-family architecture",
    )


PROBE = probe_set()
