"""The run's data: demo data on first use, the manifest and its checks, and the datasets with their transforms.

Everything a run writes here goes into its output folder (manifest.csv, bad_files.csv, dedup.json),
except the demo data, which goes only into the demo's own folder (`modeling.data.demo.may_generate_into`):
a user's `--data_dir` is read and never written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict, concatenate_datasets

from modeling.augment.learned_decoder import FIT_CROP, family_specs, fit_family, uint8_images
from modeling.augment.self_fakes import SelfFakes, label_counts_after_self_fakes
from modeling.config import ConfigError, RunConfig
from modeling.data.dedup import drop_cross_split_duplicates
from modeling.data.demo import DEMO_DATA_DIR, DemoSpec, demo_data_exists, make_demo_data, may_generate_into
from modeling.data.index import DataError
from modeling.data.manifest import build_manifest, load_manifest, manifest_to_datasets, save_manifest
from modeling.data.validation import drop_bad_files, exclude_paths, load_bad_files
from modeling.images import ImageLoadError, load_image
from modeling.metrics import section_masks
from modeling.processing import processor_crop_size
from modeling.run_folder import BAD_FILES, DEDUP, LEARNED_DECODERS, MANIFEST
from modeling.system import available_cores
from modeling.training.batches import BatchTransform
from modeling.training.builders import (
    build_camera_processing,
    build_self_fakes,
    camera_kinds,
    sample_transform,
    train_transforms,
)
from modeling.training.losses import balanced_weights
from modeling.training.source_loss import SourceHead, SourceLabeller, source_class_counts, source_classes

logger = logging.getLogger(__name__)

VALIDATION_PROCESS_SEED = 3_141_592  # the validation copies' processing draws (the stress test has its own seed)


def ensure_demo_data(config: RunConfig) -> None:
    """The demo config generates its data on first use, so the first command needs nothing else.

    Only into the demo's own folder: with `demo_data: true` inherited by a run on another data_dir,
    that folder is only read, and the resolved config records `demo_data: false`.
    """
    data = config.data
    if not data.demo_data or data.manifest:
        return
    if not may_generate_into(data.data_dir):
        logger.info("data_dir %s is not the demo's own folder %s: no demo data is generated, the folder is only read",
                    data.data_dir, DEMO_DATA_DIR)
        data.demo_data = False
        return
    if not demo_data_exists(data.data_dir):
        logger.info("demo data not found in %s: generating it (offline, deterministic)", data.data_dir)
        make_demo_data(data.data_dir, DemoSpec(images_per_source=data.demo_images_per_source))


def prepare_manifest(config: RunConfig, output_dir: Path) -> pd.DataFrame:
    """Load the given manifest or sample a new one; either way a copy lands in the output folder."""
    data = config.data
    if data.manifest:
        manifest = load_manifest(data.manifest)
        logger.info("using manifest %s (%d images)", data.manifest, len(manifest))
    else:
        manifest = build_manifest(
            data.data_dir,
            layout=data.layout,
            num_real=data.num_real,
            num_ai=data.num_ai,
            max_per_source=data.max_per_source,
            validation_fraction=data.validation_fraction,
            test_fraction=data.test_fraction,
            holdout_sources=data.holdout_generators,
            seed=config.training.data_seed or config.training.seed,
        )
    manifest = clean_manifest(config, manifest, output_dir)
    save_manifest(manifest, output_dir / MANIFEST)
    counts = manifest.groupby(["split", "label"]).size().to_dict()
    logger.info("manifest: %s", ", ".join(f"{s}/{'ai' if lab else 'real'}={n}" for (s, lab), n in counts.items()))
    return manifest


def clean_manifest(config: RunConfig, manifest: pd.DataFrame, output_dir: Path) -> pd.DataFrame:
    """Drop listed and unreadable files, then evaluation copies of training images."""
    data = config.data
    if data.exclude_files:
        manifest = exclude_paths(manifest, load_bad_files(data.exclude_files), f"listed in {data.exclude_files}")
    if data.validate_files:
        manifest = drop_bad_files(manifest, data.data_dir, output_dir / BAD_FILES, data.preparation_workers)
    if data.dedup:
        manifest, _ = drop_cross_split_duplicates(manifest, data.data_dir, output_dir / DEDUP,
                                                  data.preparation_workers)
    return manifest


def processing_frame(self_fakes: SelfFakes | None, processor: Any) -> int | None:
    """The side of the photo that training's processing draws frame-relative kinds for: evaluation's crop side when
    the self-fakes cut small windows before processing, else None (the image processed is the whole photo)."""
    return processor_crop_size(processor)[0] if self_fakes is not None and self_fakes.region else None


def build_datasets(config: RunConfig, manifest: pd.DataFrame, processor: Any) -> DatasetDict:
    """Lazy datasets (nothing decoded yet) with the train or eval transform attached."""
    splits = manifest_to_datasets(manifest, config.data.data_dir, decode=False)
    crop = processor_crop_size(processor)
    if config.augment.train_crop_size:
        crop = (config.augment.train_crop_size, config.augment.train_crop_size)
    resize = config.model.image_size if config.model.processor == "resize" else None
    learned = learned_decoders(config, manifest, Path(config.training.output_dir))
    self_fakes = build_self_fakes(config.augment, *train_label_counts(manifest), learned)
    labeller = SourceLabeller(source_classes(manifest)) if config.run.source_loss_weight > 0 else None
    camera = build_camera_processing(config.augment, processing_frame(self_fakes, processor))
    train_tf = BatchTransform(processor, train_transforms(config.augment, crop, resize), processor_geometry=False,
                              sample_transform=sample_transform(self_fakes, camera), source_labeller=labeller)
    eval_tf = BatchTransform(processor, process_seed=VALIDATION_PROCESS_SEED)
    if config.augment.camera_validation and "validation" in splits:
        kinds = camera_kinds(config.augment)
        splits["calibration"] = with_processed_copies(splits["validation"], kinds, every_kind=True)
        splits["validation"] = with_processed_copies(splits["validation"], kinds)
    return DatasetDict(
        {name: ds.with_transform(train_tf if name == "train" else eval_tf) for name, ds in splits.items()}
    )


def with_processed_copies(split: Dataset, kinds: tuple[str, ...], every_kind: bool = False) -> Dataset:
    """The split followed by processed copies of its images: one each (the kinds in turn), for a validation that
    is not separable by the network's processing cues (checkpoint choice), or one per kind (`every_kind`), for
    calibration and a threshold that must hold on every kind of processed real. The copies' draws are keyed by
    VALIDATION_PROCESS_SEED, not the stress test's."""
    plain = split.add_column("process", [""] * len(split))
    if every_kind:
        copies = [split.add_column("process", [kind] * len(split)) for kind in kinds]
    else:
        copies = [split.add_column("process", [kinds[i % len(kinds)] for i in range(len(split))])]
    return concatenate_datasets([plain, *copies])


def learned_decoders(config: RunConfig, manifest: pd.DataFrame, output_dir: Path | None = None) -> list:
    """The self-fakes' learned decoders, fitted on (a seeded draw of) the training split's real images, one per
    (architecture, latent stride); [] when `self_fake_learned_prob` is 0. Only the training reals are read:
    evaluation data never reaches them. Cached in `self_fake_learned_cache` (default: output_dir)."""
    aug = config.augment
    if aug.self_fake_prob <= 0 or aug.self_fake_learned_prob <= 0:
        return []
    reals = manifest[(manifest["split"] == "train") & (manifest["label"] == 0)]
    seed = config.training.seed
    reals = reals.sample(min(len(reals), aug.self_fake_learned_images), random_state=seed)
    arrays = []
    for path in reals["path"]:
        try:
            arrays.append(np.asarray(load_image(str(Path(config.data.data_dir) / path)), dtype=np.uint8))
        except ImageLoadError as err:
            logger.warning("learned decoder: skipping unreadable image: %s", err)
    usable = [a for a in arrays if min(a.shape[:2]) >= FIT_CROP]
    if not usable:
        raise DataError(f"self_fake_learned_prob is {aug.self_fake_learned_prob} but the training split of "
                        f"{config.data.data_dir} has no readable real image of at least {FIT_CROP} px a side to fit "
                        "the learned decoders on; set self_fake_learned_prob: 0")
    try:
        specs = family_specs(aug.self_fake_learned_archs, aug.self_fake_learned_factors, aug.self_fake_learned_steps,
                             seed)
        cache = aug.self_fake_learned_cache or (output_dir / LEARNED_DECODERS if output_dir else None)
        return fit_family(uint8_images(usable), specs, cache, workers=available_cores())
    except ValueError as err:  # an unknown architecture or stride
        raise ConfigError(f"self_fake_learned_archs / self_fake_learned_factors: {err}") from err


def train_label_counts(manifest: pd.DataFrame) -> tuple[int, int]:
    """(real, ai) images in the training split."""
    labels = manifest.loc[manifest["split"] == "train", "label"]
    return int((labels == 0).sum()), int((labels == 1).sum())


def build_source_head(config: RunConfig, manifest: pd.DataFrame, hidden_size: int) -> SourceHead | None:
    """The auxiliary source head for `source_loss_weight` > 0 (`prepare_arguments` refuses it in several
    processes), its classes balanced."""
    weight = config.run.source_loss_weight
    if weight <= 0:
        return None
    classes = source_classes(manifest)
    counts = source_class_counts(manifest, classes, config.augment.self_fake_prob)
    logger.info("source loss: %d classes %s, weight %g", len(counts), sorted(classes, key=classes.get), weight)
    return SourceHead(hidden_size, list(balanced_weights(tuple(counts))), weight)


def training_label_weights(config: RunConfig, manifest: pd.DataFrame) -> tuple[float, float] | None:
    """Loss weights (real, ai) for `class_weighting: balanced`, from the training split's counts after the
    self-made fakes; None for 'none'."""
    if config.run.class_weighting == "none":
        return None
    counts = label_counts_after_self_fakes(config.augment.self_fake_prob, *train_label_counts(manifest))
    weights = balanced_weights(counts)
    logger.info("loss weights real %.3f, ai %.3f (training labels per epoch: %.0f real, %.0f ai)", *weights, *counts)
    return weights


def split_test(splits: DatasetDict) -> dict[str, Any]:
    """The test split's sections as datasets: "test" (seen generators) and "test_unseen" (held-out
    generators against the same real rows), by `modeling.metrics.section_masks`."""
    if "test" not in splits:
        return {}
    test = splits["test"]
    # read the columns from Arrow directly: indexing would run the image transform
    heldout = np.asarray(test.data.column("heldout").to_pylist(), dtype=bool)
    labels = np.asarray(test.data.column("label").to_pylist())
    masks = section_masks(heldout, labels)
    out = {"test": test.select(np.flatnonzero(masks.get("seen", masks["all"])))}
    if "unseen" in masks:
        out["test_unseen"] = test.select(np.flatnonzero(masks["unseen"]))
    return out
