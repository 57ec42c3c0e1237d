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
from tiny_model import TinyModelTester

from modeling.data.demo import DemoSpec, make_demo_data
from modeling.data.manifest import load_manifest
from modeling.data.selection import resolve_eval_data
from modeling.evaluation.evaluate import load_model_folder, predict_logits, run_evaluation
from modeling.labels import decision_threshold
from modeling.metrics import ai_scores, detection_metrics, negative_log_likelihood

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"
MAX_STEPS, BATCH, EVAL_BATCH = 2, 4, 2
# Every figure is computed from the gathered per-image logits, so a duplicated or dropped image shows up
EXACT = ("accuracy", "roc_auc", "n_images", "true_positives", "false_positives", "average_precision", "loss")


def free_port() -> int:
    """A port nobody listens on now: parallel test runs must not share accelerate's default 29500."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_args(data: Path, out: Path) -> list[str]:
    """A tiny run: 64 px, 2 steps; validation (9 images) and test are odd-sized so the last eval batch pads."""
    return TinyModelTester.train_argv(data, out,
        "--validation_fraction", "0.2", "--test_fraction", "0.2",
        "--max_steps", str(MAX_STEPS), "--per_device_train_batch_size", str(BATCH),
        "--per_device_eval_batch_size", str(EVAL_BATCH), "--dataloader_num_workers", "0",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--use_cpu", "true",
    )  # fmt: skip


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


def evaluate_in_one_process(model_dir: Path, data: Path, tmp: Path) -> tuple[dict[str, dict[str, float]], pd.Series]:
    """The saved model on the run's own manifest, in this (single) process, with another batch size."""
    result = run_evaluation(model_dir, resolve_eval_data(model_dir, data, split="test"), tmp / "eval", batch_size=3)
    validation = resolve_eval_data(model_dir, data, split="validation")
    model, processor = load_model_folder(model_dir)
    logits, _ = predict_logits(model, processor, validation.paths, batch_size=3)
    labels = validation.frame["label"].to_numpy()
    figures = detection_metrics(labels, ai_scores(logits), decision_threshold(model.config))
    sections = {
        "validation": {**figures, "loss": negative_log_likelihood(logits, labels)},
        "test": result.metrics["seen"],
        "test_unseen": result.metrics["unseen"],
    }
    return sections, result.predictions.set_index("path")["score_ai"]


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
            if key not in metrics:  # the loss is a validation figure
                continue
            one, two = metrics[key], launched[f"{name}_{key}"]
            assert (one is None and two is None) or one == pytest.approx(two, abs=1e-6), (name, key, one, two)


def test_each_test_image_scored_once(two_process_run, one_process):
    """The per-image test predictions of the 2-process run: every test image once, scored as one process does."""
    _, out = two_process_run
    _, single_scores = one_process
    predictions = pd.read_csv(out / "eval" / "predictions.csv")
    assert not predictions["path"].duplicated().any()
    assert sorted(predictions["path"]) == sorted(single_scores.index)  # seen and held-out test rows
    scores = predictions.set_index("path")["score_ai"].loc[single_scores.index]
    np.testing.assert_allclose(scores.to_numpy(), single_scores.to_numpy(), atol=1e-5)
