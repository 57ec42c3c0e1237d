"""The training run: config -> manifest -> datasets -> Trainer -> a self-contained output folder.

The output folder holds everything needed to use and to reproduce the run: `config.json` +
`model.safetensors` (the model), `preprocessor_config.json` (the one preprocessing path),
`training_config.yaml` (resolved settings, reloadable with --config), `manifest.csv` (the exact
images and splits) and `*_results.json` (final metrics on validation and test).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import DatasetDict
from transformers import EvalPrediction, TrainingArguments, set_seed

from modeling.calibration import calibrate_trainer, rule_from_config
from modeling.callbacks import (
    ReliableTrainer,
    StopOnSignal,
    TrainingInterrupted,
    collate_counting_skips,
    last_complete_checkpoint,
)
from modeling.config import RunConfig, save_config
from modeling.data import build_manifest, load_manifest, manifest_to_datasets, save_manifest
from modeling.dedup import DEDUP_NAME, drop_cross_split_duplicates
from modeling.demo_data import DemoSpec, demo_data_exists, make_demo_data
from modeling.hub import disable_trainer_push, finish_training
from modeling.labels import AI_LABEL_ID
from modeling.metrics import load_metric
from modeling.modeling import build_model
from modeling.processing import (
    BatchTransform,
    build_image_processor,
    build_train_transforms,
    processor_crop_size,
)
from modeling.validation import BAD_FILES_NAME, drop_bad_files, exclude_paths, load_bad_files

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
CONFIG_NAME = "training_config.yaml"


def softmax_scores(logits: np.ndarray) -> np.ndarray:
    """P(ai) from (N, 2) logits, computed stably."""
    logits = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    return probs[:, AI_LABEL_ID] / probs.sum(axis=-1)


class DetectionMetrics:
    """`compute_metrics` for Trainer: accuracy and ROC-AUC via the bundled `evaluate` modules."""

    def __init__(self) -> None:
        self.accuracy = load_metric("accuracy")
        self.roc_auc = load_metric("roc_auc")

    def __call__(self, pred: EvalPrediction) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        labels = pred.label_ids
        scores = softmax_scores(logits)
        out = self.accuracy.compute(predictions=logits.argmax(-1), references=labels)
        out.update(self.roc_auc.compute(prediction_scores=scores, references=labels))
        return out


def prepare_manifest(config: RunConfig, output_dir: Path):
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
    save_manifest(manifest, output_dir / MANIFEST_NAME)
    counts = manifest.groupby(["split", "label"]).size().to_dict()
    logger.info("manifest: %s", ", ".join(f"{s}/{'ai' if lab else 'real'}={n}" for (s, lab), n in counts.items()))
    return manifest


def clean_manifest(config: RunConfig, manifest, output_dir: Path):
    """Drop listed and unreadable files, then evaluation copies of training images (see issue 5)."""
    data = config.data
    if data.exclude_files:
        manifest = exclude_paths(manifest, load_bad_files(data.exclude_files), f"listed in {data.exclude_files}")
    if data.validate_files:
        manifest = drop_bad_files(manifest, data.data_dir, output_dir / BAD_FILES_NAME, data.preparation_workers)
    if data.dedup:
        manifest, _ = drop_cross_split_duplicates(
            manifest, data.data_dir, output_dir / DEDUP_NAME, data.preparation_workers
        )
    return manifest


def move_hub_token_to_env(args: TrainingArguments) -> None:
    """Trainer pickles its args into every checkpoint; a token there would leak, the environment is safer."""
    if args.hub_token:
        os.environ["HF_TOKEN"] = args.hub_token  # huggingface_hub reads it when a push needs it
        args.hub_token = None
        logger.info("hub_token moved to this process's HF_TOKEN so it is not saved with checkpoints")


def ensure_demo_data(config: RunConfig) -> None:
    """The demo config generates its data on first use, so the first command needs nothing else."""
    data = config.data
    if data.demo_data and not data.manifest and not demo_data_exists(data.data_dir):
        logger.info("demo data not found in %s: generating it (offline, deterministic)", data.data_dir)
        make_demo_data(data.data_dir, DemoSpec(images_per_source=data.demo_images_per_source))


def build_datasets(config: RunConfig, manifest, processor) -> DatasetDict:
    """Lazy datasets (nothing decoded yet) with the train or eval transform attached."""
    splits = manifest_to_datasets(manifest, config.data.data_dir, decode=False)
    crop = processor_crop_size(processor)
    if config.augment.train_crop_size:
        crop = (config.augment.train_crop_size, config.augment.train_crop_size)
    resize = config.model.image_size if config.model.processor == "resize" else None
    train_tf = BatchTransform(processor, build_train_transforms(crop, config.augment, resize), processor_geometry=False)
    eval_tf = BatchTransform(processor)
    return DatasetDict(
        {name: ds.with_transform(train_tf if name == "train" else eval_tf) for name, ds in splits.items()}
    )


def check_precision(config: RunConfig) -> None:
    """fp16 is a CUDA feature; on CPU say clearly that the run is fp32 instead of failing silently."""
    args = config.training
    if torch.cuda.is_available():
        logger.info("CUDA device %s: fp16=%s", torch.cuda.get_device_name(0), args.fp16)
    elif args.fp16 or args.bf16:
        logger.warning("No CUDA device: mixed precision is off, training runs in fp32 on CPU.")
        args.fp16 = args.bf16 = False
    else:
        logger.info("No CUDA device: training in fp32 on CPU.")
    if not torch.cuda.is_available():
        args.dataloader_pin_memory = False  # pinning needs an accelerator; avoids a warning per loader


def find_resume_checkpoint(config: RunConfig, output_dir: Path) -> str | None:
    """An explicit --resume_from_checkpoint wins; otherwise the newest checkpoint in output_dir."""
    explicit = config.training.resume_from_checkpoint
    if explicit:
        return explicit
    last = last_complete_checkpoint(output_dir)  # skips a checkpoint cut short by SIGKILL
    if last:
        logger.info("resuming from %s (delete it or pick another output_dir to start over)", last)
    return last


def split_test(splits: DatasetDict) -> dict[str, Any]:
    """Test rows of seen generators; and held-out (unseen) generators scored against the same real rows.

    The unseen set re-uses the seen test split's real images, so its ROC-AUC is defined and the two
    sets differ only in which generators the AI images come from.
    """
    out: dict[str, Any] = {}
    if "test" not in splits:
        return out
    test = splits["test"]
    # read the flag from Arrow directly: indexing would run the image transform
    heldout = np.asarray(test.data.column("heldout").to_pylist(), dtype=bool)
    real = np.asarray(test.data.column("label").to_pylist()) == 0
    out["test"] = test.select(np.flatnonzero(~heldout))
    if heldout.any():
        out["test_unseen"] = test.select(np.flatnonzero(heldout | (real & ~heldout)))
    return out


def train(config: RunConfig) -> dict[str, dict[str, float]]:
    """Run one training as configured; returns the final metrics per split."""
    args = config.training
    args.remove_unused_columns = False  # with_transform needs the raw `image` column (else KeyError)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    move_hub_token_to_env(args)
    push = disable_trainer_push(config)  # Trainer would create the repo at init (fails offline): we push at the end
    set_seed(args.seed)
    check_precision(config)
    # several processes (accelerate launch): local rank 0 makes the data and the manifest first, the
    # others then read that manifest, so every rank trains on the same split and nothing is written twice
    with args.main_process_first(desc="data preparation"):
        if args.local_process_index == 0:
            ensure_demo_data(config)
            manifest = prepare_manifest(config, output_dir)
        else:
            manifest = load_manifest(output_dir / MANIFEST_NAME)
    save_config(config, output_dir / CONFIG_NAME)
    processor = build_image_processor(
        config.model.processor, config.model.image_size, config.model.image_mean, config.model.image_std
    )
    splits = build_datasets(config, manifest, processor)
    model = build_model(config.model)
    logger.info("model: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)

    stopper = StopOnSignal()  # SIGTERM: checkpoint, then TrainingInterrupted
    trainer = ReliableTrainer(  # logs `skipped_images` (unreadable files dropped from batches)
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits.get("validation"),
        data_collator=collate_counting_skips,
        processing_class=processor,  # saved beside every checkpoint and the final weights
        compute_metrics=DetectionMetrics(),
        callbacks=[stopper],
    )
    result = trainer.train(resume_from_checkpoint=find_resume_checkpoint(config, output_dir))
    if stopper.stopped_at is not None:  # not a finished run: keep checkpoints, skip final save/eval
        raise TrainingInterrupted(stopper.stopped_at, str(output_dir / f"checkpoint-{stopper.stopped_at}"))
    trainer.save_model(str(output_dir))
    # temperature + threshold from validation, folded in and re-saved: the final metrics below are calibrated
    calibrate_trainer(trainer, splits.get("validation"), output_dir, rule_from_config(config))
    trainer.save_state()
    (output_dir / "training_args.bin").unlink(missing_ok=True)  # pickled; training_config.yaml replaces it

    metrics: dict[str, dict[str, float]] = {"train": result.metrics}
    trainer.save_metrics("train", result.metrics)
    eval_sets = {"validation": splits.get("validation"), **split_test(splits)}
    for name, dataset in eval_sets.items():
        if dataset is None or len(dataset) == 0:
            continue
        m = trainer.evaluate(dataset, metric_key_prefix=name)
        trainer.save_metrics(name, m)
        metrics[name] = m
        logger.info("%s: %s", name, {k: round(v, 4) for k, v in m.items() if isinstance(v, float)})
    finish_training(trainer, config, output_dir, push)  # test evaluation files, model card (README.md), push
    if not config.run.keep_checkpoints and trainer.is_world_process_zero():
        for ckpt in output_dir.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    return metrics
