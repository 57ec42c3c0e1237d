"""The training run, top to bottom: data -> Trainer -> calibration -> test evaluation -> ONNX export -> card
-> optional push.

    accelerate launch scripts/train.py [--config configs/demo.yaml] [--key value ...]

The output folder holds everything needed to use and to reproduce the run (`modeling.run_folder`).
One final test evaluation writes both `eval/metrics.json` and `test_results.json` /
`test_unseen_results.json`, so the figures of a released folder can never disagree.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import TrainingArguments, set_seed

from modeling.calibration import apply_scaling, calibrate_model, parse_rule
from modeling.config import ConfigError, RunConfig, save_config
from modeling.data.demo import is_demo_data
from modeling.data.index import DataError
from modeling.data.manifest import load_manifest
from modeling.data.selection import resolve_eval_data, run_check_images
from modeling.evaluation.evaluate import run_evaluation
from modeling.inference.onnx_export import CheckImages, ExportError, export, quantize_checked
from modeling.labels import DEFAULT_THRESHOLD
from modeling.metrics import ai_scores, detection_metrics, negative_log_likelihood, with_prefix
from modeling.processing import build_image_processor
from modeling.release.hub import HubError, check_push_ready, push_model_folder
from modeling.release.model_card import write_model_card
from modeling.run_folder import CALIBRATION, MANIFEST, RUN_INFO, TRAINER_PICKLE, TRAINING_CONFIG, RunFolder
from modeling.training.builders import build_model
from modeling.training.callbacks import StopOnSignal, TrainingInterrupted, last_complete_checkpoint
from modeling.training.data import (
    build_datasets,
    build_source_head,
    ensure_demo_data,
    prepare_manifest,
    training_label_weights,
)
from modeling.training.losses import WeightedCrossEntropy
from modeling.training.trainer import DetectionMetrics, ReliableTrainer, collate_counting_skips

logger = logging.getLogger(__name__)

ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")  # the `onnx` extra


# --------------------------------------------------------------------------- before the first step


def move_hub_token_to_env(args: TrainingArguments) -> None:
    """Trainer pickles its args into every checkpoint; a token there would leak, the environment is safer."""
    if args.hub_token:
        os.environ["HF_TOKEN"] = args.hub_token  # huggingface_hub reads it when a push needs it
        args.hub_token = None
        logger.info("hub_token moved to this process's HF_TOKEN so it is not saved with checkpoints")


def take_push_from_trainer(args: TrainingArguments) -> bool:
    """Trainer would create the repo at init (which fails offline): the run pushes at the end instead.
    Checked now, before hours of training, that the push can work. Returns whether to push."""
    push = bool(args.push_to_hub)
    args.push_to_hub = False
    if push:
        try:
            check_push_ready()
        except HubError as err:
            raise ConfigError(f"push_to_hub is set but {err}") from err
    return push


def check_precision(args: TrainingArguments) -> None:
    """fp16 is a CUDA feature; on CPU say clearly that the run is fp32 instead of failing silently."""
    if torch.cuda.is_available():
        logger.info("CUDA device %s: fp16=%s", torch.cuda.get_device_name(0), args.fp16)
        return
    if args.fp16 or args.bf16:
        logger.warning("No CUDA device: mixed precision is off, training runs in fp32 on CPU.")
        args.fp16 = args.bf16 = False
    else:
        logger.info("No CUDA device: training in fp32 on CPU.")
    args.dataloader_pin_memory = False  # pinning needs an accelerator; avoids a warning per loader


def prepare_arguments(config: RunConfig) -> bool:
    """Settle every argument before anything is written; returns whether to push at the end."""
    args = config.training
    args.remove_unused_columns = False  # with_transform needs the raw `image` column (else KeyError)
    try:
        parse_rule(config.run.decision_threshold_rule)
    except ValueError as err:
        raise ConfigError(f"decision_threshold_rule: {err}") from err
    if config.run.source_loss_weight > 0 and args.world_size > 1:  # before any data is made
        raise ConfigError("source_loss_weight > 0 runs in one process only (its head is not synchronised across "
                          "processes); set source_loss_weight: 0 for a multi-GPU run")
    move_hub_token_to_env(args)
    push = take_push_from_trainer(args)
    set_seed(args.seed)
    check_precision(args)
    return push


CHECKOUT = Path(__file__).resolve().parents[2]  # the source tree's root when the package runs from a git checkout


def git_commit(checkout: Path = CHECKOUT) -> tuple[str | None, bool | None]:
    """(commit, has uncommitted changes) of the package's own checkout; (None, None) for an installed wheel.

    Only a checkout of this package counts: git is not asked about site-packages, which may sit inside some
    other repository (a virtual environment in a user's project) whose commit says nothing about this code."""
    if not (checkout / ".git").exists() or not (checkout / "modeling" / "__init__.py").is_file():
        return None, None

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=checkout, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None


def package_version() -> str | None:
    """The installed package's version (setup.cfg takes it from `modeling.__version__`)."""
    try:
        return importlib.metadata.version("artifact-detector")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never pip-installed
        return None


def write_run_info(config: RunConfig, run: RunFolder) -> None:
    """What made this run: package version and commit, library versions, which data kind it read."""
    commit, dirty = git_commit()
    run.write_json(RUN_INFO, {
        "package_version": package_version(), "git_commit": commit, "git_dirty": dirty,
        "transformers": transformers.__version__, "torch": torch.__version__,
        "demo_data": is_demo_data(config.data.data_dir),
    })


def find_resume_checkpoint(args: TrainingArguments, output_dir: Path) -> str | None:
    """An explicit --resume_from_checkpoint wins; otherwise the newest checkpoint in output_dir."""
    if args.resume_from_checkpoint:
        return args.resume_from_checkpoint
    last = last_complete_checkpoint(output_dir)  # skips a checkpoint cut short by SIGKILL
    if last:
        logger.info("resuming from %s (delete it or pick another output_dir to start over)", last)
    return last


# --------------------------------------------------------------------------- after the last step


def calibrate(trainer: ReliableTrainer, dataset: Any, run: RunFolder, rule: str,
              kind_bound: float | None = None) -> dict[str, Any]:
    """Temperature and threshold from validation, folded in and re-saved; returns the validation figures.

    `trainer.predict` gathers the logits on every process, so each folds the same T into its copy. With
    processed copies in the split (a `process` column), the threshold rule holds per kind of processed real, and
    each kind's confidence bound is held to `kind_bound`.
    """
    if dataset is None or len(dataset) == 0:
        logger.warning("no validation split: the model is saved uncalibrated with threshold %.1f", DEFAULT_THRESHOLD)
        return {}
    output = trainer.predict(dataset, metric_key_prefix="calibration")
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    labels = output.label_ids
    groups = dataset.data.column("process").to_pylist() if "process" in dataset.column_names else None
    if groups is not None and len(groups) != len(labels):  # an unreadable image was dropped: rows no longer align
        logger.warning("calibration: %d of %d images scored; the threshold is chosen on all reals pooled",
                       len(labels), len(groups))
        groups = None
    report = calibrate_model(trainer.model, logits, labels, rule, groups, kind_bound)
    threshold = DEFAULT_THRESHOLD
    if report is not None:
        trainer.save_model(str(run.root))  # safetensors + config.json with the threshold
        if trainer.is_world_process_zero():
            run.write_json(CALIBRATION, report.to_dict())
        logits, threshold = apply_scaling(logits, report.temperature, report.bias), report.decision_threshold
    figures = detection_metrics(labels, ai_scores(logits), threshold)
    return with_prefix("validation", {"loss": negative_log_likelihood(logits, labels), **figures})


def evaluate_test(trainer: ReliableTrainer, config: RunConfig, run: RunFolder) -> dict[str, dict[str, Any]]:
    """The one final test evaluation: eval/ files and the Trainer-format test results from the same figures."""
    trainer.accelerator.wait_for_everyone()  # every process loads the weights the main process saved
    args = config.training
    try:
        data = resolve_eval_data(run.root, data_dir=config.data.data_dir, split="test")
    except DataError as err:
        logger.warning("no test evaluation: %s", err)
        return {}
    result = run_evaluation(run.root, data, run.eval_dir, batch_size=args.per_device_eval_batch_size,
                            num_workers=args.dataloader_num_workers, robustness=config.run.evaluate_robustness,
                            stress=config.run.evaluate_stress, stress_balanced=config.run.stress_balanced,
                            stress_ai_ratio=config.run.stress_ai_ratio,
                            accelerator=trainer.accelerator)
    sections = result.metrics
    out = {"test": with_prefix("test", sections.get("seen") or sections["all"])}
    if "unseen" in sections:
        out["test_unseen"] = with_prefix("test_unseen", sections["unseen"])
    return out


def export_fast_path(config: RunConfig, run: RunFolder, step: str) -> None:
    """The checked ONNX exports beside the weights, so predict.py, the web demo and a Hub download get the fast
    CPU backend with no extra step: `step` "fp32" before the test evaluation (which then scores with it), "int8"
    after it. A missing extra or a failed check costs the export, not the run."""
    if not config.run.export_onnx or (step == "int8" and not config.run.export_int8):
        return
    missing = [name for name in ONNX_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        if step == "fp32":
            logger.warning("no ONNX export (%s not installed): pip install '.[onnx]', then python "
                           "scripts/export_onnx.py --model %s --quantize int8", ", ".join(missing), run.root)
        return
    try:
        images = CheckImages(*run_check_images(run.root, config.data.data_dir))
        if step == "fp32":
            export(run.root, images)
        elif run.usable_onnx("fp32") is None:
            quantize_checked(run.root, images)
    except (DataError, ExportError, OSError) as err:
        logger.warning("ONNX export incomplete (%s); exports that passed their check are kept (onnx_export.json), and "
                       "the model folder is complete without them", err)


def publish(config: RunConfig, run: RunFolder, push: bool) -> None:
    """The model card, then the optional push. A failed push is logged with the command that retries
    it; the local folder is complete either way."""
    args = config.training
    repo_id = args.hub_model_id or run.root.resolve().name
    write_model_card(run.root)
    if not push:
        return
    try:
        url = push_model_folder(run.root, repo_id, private=bool(args.hub_private_repo),
                                before_upload=lambda full_id: write_model_card(run.root, full_id))
        logger.info("pushed to %s", url)
    except Exception as err:  # noqa: BLE001 - the run's results are on disk; say how to retry instead of losing them
        logger.error("push to the Hub failed (%s); the model folder %s is complete. Retry with: "
                     "python scripts/push_to_hub.py --model %s --repo_id %s", err, run.root, run.root, repo_id)


# --------------------------------------------------------------------------- the run


def build_trainer(config: RunConfig, splits: Any, processor: Any, stopper: StopOnSignal,
                  label_weights: tuple[float, float] | None = None, manifest: Any = None) -> ReliableTrainer:
    model = build_model(config.model)
    source_head = build_source_head(config, manifest, model.config.hidden_sizes[-1]) if manifest is not None else None
    logger.info("model: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    return ReliableTrainer(  # logs `skipped_images` (unreadable files dropped from batches)
        model=model,
        args=config.training,
        train_dataset=splits["train"],
        eval_dataset=splits.get("validation"),
        data_collator=collate_counting_skips,
        processing_class=processor,  # saved beside every checkpoint and the final weights
        compute_metrics=DetectionMetrics(),
        compute_loss_func=WeightedCrossEntropy(label_weights) if label_weights else None,
        callbacks=[stopper],
        source_head=source_head,
    )


def train(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Run one training as configured; returns the final metrics per split."""
    push = prepare_arguments(config)
    args = config.training
    run = RunFolder(args.output_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    # several processes (accelerate launch): local rank 0 makes the data and the manifest first, the
    # others then read that manifest, so every rank trains on the same split and nothing is written twice
    with args.main_process_first(desc="data preparation"):
        if args.local_process_index == 0:
            ensure_demo_data(config)
            manifest = prepare_manifest(config, run.root)
        else:
            manifest = load_manifest(run / MANIFEST)
    if args.process_index == 0:
        save_config(config, run / TRAINING_CONFIG)
        write_run_info(config, run)
    processor = build_image_processor(
        config.model.processor, config.model.image_size, config.model.image_mean, config.model.image_std
    )
    splits = build_datasets(config, manifest, processor)
    stopper = StopOnSignal()  # SIGTERM: checkpoint, then TrainingInterrupted
    trainer = build_trainer(config, splits, processor, stopper, training_label_weights(config, manifest), manifest)
    result = trainer.train(resume_from_checkpoint=find_resume_checkpoint(args, run.root))
    if stopper.stopped_at is not None:  # not a finished run: keep checkpoints, skip final save/eval
        raise TrainingInterrupted(stopper.stopped_at, str(run / f"checkpoint-{stopper.stopped_at}"))
    trainer.save_model(str(run.root))
    calibration_split = splits["calibration"] if "calibration" in splits else splits.get("validation")
    metrics = {"train": result.metrics, "validation": calibrate(trainer, calibration_split, run,
                                                                config.run.decision_threshold_rule,
                                                                config.run.kind_fpr_bound)}
    trainer.save_state()
    (run / TRAINER_PICKLE).unlink(missing_ok=True)  # pickled; training_config.yaml replaces it
    if trainer.is_world_process_zero():
        export_fast_path(config, run, "fp32")  # the test evaluation scores with it on one CPU process
    metrics.update(evaluate_test(trainer, config, run))
    for split, values in metrics.items():
        if values:
            trainer.save_metrics(split, values)  # {split}_results.json and all_results.json, main process only
    if trainer.is_world_process_zero():
        export_fast_path(config, run, "int8")
        publish(config, run, push)
        if not config.run.keep_checkpoints:
            for checkpoint in run.root.glob("checkpoint-*"):
                shutil.rmtree(checkpoint, ignore_errors=True)
    return metrics
