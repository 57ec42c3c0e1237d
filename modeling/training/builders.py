"""From a run's settings to the library's parts: the model, the training transforms, the self-made fakes.

The parts take plain values (`modeling.model`, `modeling.augment`); this module is the one place that reads
them out of the run's dataclasses, so a part can be built and tested without a configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import ConvNextForImageClassification

from modeling.augment.camera import KINDS, CameraProcessing
from modeling.augment.learned_decoder import SmallAutoencoder
from modeling.augment.self_fakes import SelfFakes, matched_process_share, rng_from_torch
from modeling.augment.transforms import build_train_transforms
from modeling.config import AugmentArguments, ConfigError, ModelArguments
from modeling.model import pretrained_detector, random_init_detector


def build_model(args: ModelArguments) -> ConvNextForImageClassification:
    """A pretrained backbone with a new 2-way head, or a random-init ConvNext from the settings."""
    if args.model_name_or_path:
        return pretrained_detector(args.model_name_or_path, args.drop_path_rate)
    return random_init_detector(
        args.hidden_sizes, args.depths, patch_size=args.patch_size, layer_scale_init_value=args.layer_scale_init_value,
        drop_path_rate=args.drop_path_rate, image_size=args.image_size, layer_init=args.layer_init,
        layer_init_gain=args.layer_init_gain, stem_init=args.stem_init, stem_highpass_gain=args.stem_highpass_gain,
        stem_weight_std=args.stem_weight_std,
    )


def train_transforms(
    aug: AugmentArguments, crop: tuple[int, int], resize_short_side: int | None = None
) -> Callable[[Image.Image], torch.Tensor]:
    """The geometry and robustness augmentations of `aug` (`modeling.augment.transforms`)."""
    return build_train_transforms(
        crop, resize_short_side=resize_short_side, rescale_prob=aug.rescale_prob, rescale_range=aug.rescale_range,
        hflip_prob=aug.hflip_prob, blur_prob=aug.blur_prob, blur_sigma=aug.blur_sigma, jpeg_prob=aug.jpeg_prob,
        jpeg_quality=aug.jpeg_quality, grayscale_prob=aug.grayscale_prob,
    )


def build_self_fakes(
    aug: AugmentArguments, num_real: int = 0, num_ai: int = 0, learned: Sequence[SmallAutoencoder] = ()
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
        learned=tuple(learned) if aug.self_fake_learned_prob > 0 else (), learned_prob=aug.self_fake_learned_prob,
        learned_hf_restore=None if aug.self_fake_learned_hf_restore is None else tuple(
            aug.self_fake_learned_hf_restore),
    )


def camera_kinds(aug: AugmentArguments) -> tuple[str, ...]:
    """The configured processing kinds (all of them when none are named); a ConfigError names the known ones."""
    unknown = [k for k in aug.camera_kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"camera_kinds: unknown {unknown}; known: {', '.join(KINDS)}")
    return tuple(aug.camera_kinds) or tuple(KINDS)


def build_camera_processing(aug: AugmentArguments, frame: int | None = None) -> CameraProcessing | None:
    """Label-blind camera and sharing processing of training images, or None when `camera_prob` is 0.
    `frame`: the side of the photos when the images reaching it are windows of them (the self-fakes' region)."""
    if aug.camera_prob <= 0:
        return None
    return CameraProcessing(aug.camera_prob, camera_kinds(aug), frame, aug.camera_subject_windows)


@dataclass
class SampleChain:
    """Sample transforms `(image, label, rng) -> (image, label)` run in order on one numpy Generator per image,
    drawn from the DataLoader worker's seeded torch stream (so a run reproduces its augmentations)."""

    steps: Sequence[Any]

    def __call__(self, image: Any, label: int) -> tuple[Any, int]:
        rng = rng_from_torch()
        for step in self.steps:
            image, label = step(image, label, rng)
        return image, label


def sample_transform(*steps: Any) -> Callable[[Any, int], tuple[Any, int]] | None:
    """The training split's sample transform: the steps that are on, chained (self-fakes first, then processing,
    so that self-fakes are processed as often as any other image)."""
    on = tuple(step for step in steps if step is not None)
    return SampleChain(on) if on else None
