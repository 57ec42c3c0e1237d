"""Two CPU processes through `accelerate launch`: gathered metrics equal one process's on the same data.

`accelerate launch --num_processes 2 --cpu` starts ONE process in accelerate 1.15 (`--cpu` picks the
simple launcher), so the test launches the multi-GPU config with `--num_processes 2` and passes
`--use_cpu true` to the training (DDP over gloo), then checks that two processes really ran.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import DatasetDict
from transformers import AutoImageProcessor, AutoModelForImageClassification, Trainer, TrainingArguments

from modeling.data import load_manifest, manifest_to_datasets
from modeling.demo_data import DemoSpec, make_demo_data
from modeling.processing import BatchTransform, collate_fn
from modeling.training import DetectionMetrics, softmax_scores, split_test

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"
MAX_STEPS, BATCH, EVAL_BATCH = 2, 4, 2
# Metrics computed from the gathered logits must match exactly. eval_loss cannot: Trainer averages
# batch-mean losses, and in the padded last batch the duplicate's loss sits inside that batch's mean.
EXACT = ("accuracy", "roc_auc")
# One duplicate in a batch of EVAL_BATCH moves that batch's mean by |loss_dup - mean| / EVAL_BATCH and the
# overall mean by that over the number of batches: for a 2-step model (losses within ~0.1 of ln 2) this is
# at most ~1e-2 here; a dropped or doubled batch of the exact metrics above is caught separately.
LOSS_TOLERANCE = 2.5e-2


def free_port() -> int:
    """A port nobody listens on now: parallel test runs must not share accelerate's default 29500."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_args(data: Path, out: Path) -> list[str]:
    """A tiny run: 64 px, 2 steps; validation (9 images) and test are odd-sized so the last eval batch pads."""
    return [
        "--config", "configs/demo.yaml", "--data_dir", str(data), "--demo_data", "false", "--output_dir", str(out),
        "--hidden_sizes", "8", "16", "32", "64", "--depths", "1", "1", "1", "1", "--patch_size", "4",
        "--image_size", "64", "--train_crop_size", "64", "--validation_fraction", "0.2", "--test_fraction", "0.2",
        "--max_steps", str(MAX_STEPS), "--per_device_train_batch_size", str(BATCH),
        "--per_device_eval_batch_size", str(EVAL_BATCH), "--dataloader_num_workers", "0",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--use_cpu", "true",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("distributed")
    data, out = root / "data", root / "out"
    make_demo_data(data, DemoSpec(images_per_source=16))
    launch = [
        str(ACCELERATE), "launch", "--config_file", "configs/accelerate/multi_gpu_ddp.yaml",
        "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port()),
        "--num_cpu_threads_per_process", "1",
        "scripts/train.py", *train_args(data, out),
    ]  # fmt: skip
    result = subprocess.run(launch, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return data, out


def evaluate_in_one_process(model_dir: Path, data: Path, tmp: Path) -> tuple[dict[str, dict[str, float]], Trainer]:
    """The saved model on the run's own manifest, in this (single) process, with another eval batch size."""
    model = AutoModelForImageClassification.from_pretrained(model_dir)
    transform = BatchTransform(AutoImageProcessor.from_pretrained(model_dir))
    splits = manifest_to_datasets(load_manifest(model_dir / "manifest.csv"), data, decode=False)
    splits = DatasetDict({name: ds.with_transform(transform) for name, ds in splits.items()})
    args = TrainingArguments(
        output_dir=str(tmp), per_device_eval_batch_size=3, use_cpu=True, report_to="none", remove_unused_columns=False
    )
    trainer = Trainer(model=model, args=args, data_collator=collate_fn, compute_metrics=DetectionMetrics())
    eval_sets = {"validation": splits["validation"], **split_test(splits)}
    metrics = {name: trainer.evaluate(ds, metric_key_prefix=name) for name, ds in eval_sets.items()}
    test = splits["test"]
    scores = softmax_scores(trainer.predict(test).predictions)
    return metrics, pd.Series(scores, index=test.data.column("path").to_pylist())


@pytest.fixture(scope="module")
def one_process(two_process_run, tmp_path_factory):
    data, out = two_process_run
    return evaluate_in_one_process(out, data, tmp_path_factory.mktemp("single"))


def results(out: Path, name: str) -> dict[str, float]:
    return json.loads((out / f"{name}_results.json").read_text())


def test_two_processes_really_ran(two_process_run):
    """Each of the 2 ranks saw half the training set: twice the epochs per step of one process."""
    _, out = two_process_run
    manifest = load_manifest(out / "manifest.csv")
    n_train = int((manifest["split"] == "train").sum())
    epoch = results(out, "train")["epoch"]
    assert epoch == pytest.approx(MAX_STEPS / math.ceil(n_train / (2 * BATCH)), abs=1e-3)
    assert epoch != pytest.approx(MAX_STEPS / math.ceil(n_train / BATCH), abs=1e-3)


def test_gathered_metrics_equal_one_process(two_process_run, one_process):
    """No sample duplicated by the padding of the last batch, none dropped: the metrics match."""
    _, out = two_process_run
    single, _ = one_process
    manifest = load_manifest(out / "manifest.csv")
    assert (manifest["split"] == "validation").sum() % (2 * EVAL_BATCH) != 0  # the last batch is padded
    assert set(single) == {"validation", "test", "test_unseen"}
    for name, metrics in single.items():
        launched = results(out, name)
        for key in EXACT:
            one, two = metrics[f"{name}_{key}"], launched[f"{name}_{key}"]
            assert (np.isnan(one) and np.isnan(two)) or one == pytest.approx(two, abs=1e-6), (name, key, one, two)
        assert metrics[f"{name}_loss"] == pytest.approx(launched[f"{name}_loss"], abs=LOSS_TOLERANCE)


def test_each_test_image_scored_once(two_process_run, one_process):
    """The per-image test predictions of the 2-process run: every test image once, scored as one process does."""
    _, out = two_process_run
    _, single_scores = one_process
    predictions = pd.read_csv(out / "eval" / "predictions.csv")
    assert not predictions["path"].duplicated().any()
    assert sorted(predictions["path"]) == sorted(single_scores.index)  # seen and held-out test rows
    scores = predictions.set_index("path")["score_ai"].loc[single_scores.index]
    np.testing.assert_allclose(scores.to_numpy(), single_scores.to_numpy(), atol=1e-5)
