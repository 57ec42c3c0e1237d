"""Evaluation: every output file, figures that scikit-learn reproduces from predictions.csv,
sections for held-out generators, robustness, pipeline-identical pixels, and multi-process gathering."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_script
from PIL import Image
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from transformers import pipeline

from modeling.data.index import DataError
from modeling.data.selection import EvalData, resolve_eval_data
from modeling.evaluation.evaluate import (
    build_predictions,
    load_model_folder,
    metrics_by_section,
    predict_logits,
    run_evaluation,
)
from modeling.evaluation.robustness import DEGRADATIONS
from modeling.metrics import ai_scores, detection_metrics, section_masks

ROOT = Path(__file__).resolve().parent.parent

PLOTS = ("roc_curve.png", "roc_curve_log.png", "reliability_diagram.png", "confusion_matrix.png", "per_source.png")


def sklearn_figures(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """The metrics.json figures, recomputed independently with scikit-learn."""
    pred = (scores >= threshold).astype(int)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    prob_true, prob_pred = calibration_curve(labels, scores, n_bins=15, strategy="uniform")
    counts, _ = np.histogram(scores, bins=np.linspace(0, 1, 16))
    return {
        "n_images": len(labels),
        "n_real": int((labels == 0).sum()),
        "n_ai": int((labels == 1).sum()),
        "false_positives": int(((pred == 1) & (labels == 0)).sum()),
        "true_positives": int(((pred == 1) & (labels == 1)).sum()),
        "accuracy": accuracy_score(labels, pred),
        "precision": precision_score(labels, pred, zero_division=np.nan),
        "recall": recall_score(labels, pred),
        "f1": f1_score(labels, pred),
        "false_positive_rate": pred[labels == 0].mean(),
        "roc_auc": roc_auc_score(labels, scores),
        "average_precision": average_precision_score(labels, scores),
        "tpr_at_fpr_1pct": tpr[fpr <= 0.01].max(),
        "tpr_at_fpr_5pct": tpr[fpr <= 0.05].max(),
        "brier": brier_score_loss(labels, scores),
        "ece": float(np.sum(np.abs(prob_true - prob_pred) * counts[counts > 0]) / len(labels)),
    }


def assert_agrees(reported: dict, labels: np.ndarray, scores: np.ndarray, threshold: float, raw: np.ndarray) -> None:
    expected_figures = sklearn_figures(labels, scores, threshold)
    expected_figures["ece_before_calibration"] = sklearn_figures(labels, raw, threshold)["ece"]
    assert set(reported) >= set(expected_figures)
    for key, expected in expected_figures.items():
        got = reported[key]
        if expected is None or (isinstance(expected, float) and np.isnan(expected)):
            assert got is None, key
        else:
            assert got == pytest.approx(expected, abs=1e-9), key


def test_training_evaluation_files_agree_with_sklearn(tiny_trained_model: Path) -> None:
    out = tiny_trained_model / "eval"
    for name in ("metrics.json", "per_source.csv", "predictions.csv", "robustness.csv", "robustness.png", *PLOTS):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    manifest = pd.read_csv(tiny_trained_model / "manifest.csv")
    test_rows = manifest[manifest["split"] == "test"]
    assert sorted(predictions["path"]) == sorted(test_rows["path"])  # every test image, once
    threshold = metrics["decision_threshold"]
    config = json.loads((tiny_trained_model / "config.json").read_text())
    assert threshold == config["decision_threshold"]  # the calibrated model's own threshold

    labels, scores = predictions["label"].to_numpy(), predictions["score_ai"].to_numpy()
    raw = predictions["score_ai_uncalibrated"].to_numpy()  # P(ai) before the folded temperature
    heldout = predictions["heldout"].astype(str).eq("True").to_numpy()
    assert heldout.any() and set(metrics) >= {"all", "seen", "unseen"}
    assert metrics["calibration_temperature"] == pytest.approx(config["calibration_temperature"])
    assert_agrees(metrics["all"], labels, scores, threshold, raw)
    assert_agrees(metrics["seen"], labels[~heldout], scores[~heldout], threshold, raw[~heldout])
    unseen = heldout | (labels == 0)  # held-out generators against the same real images
    assert_agrees(metrics["unseen"], labels[unseen], scores[unseen], threshold, raw[unseen])
    # the Trainer-format results are the same final evaluation: one "test accuracy" per folder
    for split, section in (("test", "seen"), ("test_unseen", "unseen")):
        results = json.loads((tiny_trained_model / f"{split}_results.json").read_text())
        for key in ("accuracy", "roc_auc", "recall", "false_positive_rate", "n_images"):
            assert results[f"{split}_{key}"] == metrics[section][key], (split, key)
    point = metrics["operating_point"]
    assert point["false_positive_rate_real"] == metrics["all"]["false_positive_rate"]
    assert point["detection_rate_seen"] == metrics["seen"]["recall"]
    assert point["detection_rate_unseen"] == metrics["unseen"]["recall"]

    per_source = pd.read_csv(out / "per_source.csv")
    for row in per_source.itertuples():
        rows = predictions[(predictions["source"] == row.source) & (predictions["label"] == (row.label == "ai"))]
        assert row.count == len(rows)
        assert row.rate == pytest.approx((rows["score_ai"] >= threshold).mean())
        assert row.rate_name == ("detection_rate" if row.label == "ai" else "false_positive_rate")


def test_robustness_table_agrees_with_its_predictions(tiny_trained_model: Path) -> None:
    out = tiny_trained_model / "eval"
    table = pd.read_csv(out / "robustness.csv")
    assert list(table["degradation"]) == ["original", *DEGRADATIONS]
    long = pd.read_csv(out / "robustness_predictions.csv", keep_default_na=False)
    threshold = json.loads((out / "metrics.json").read_text())["decision_threshold"]
    for row in table.itertuples():
        rows = long[long["degradation"] == row.degradation]
        labels, scores = rows["label"].to_numpy(), rows["score_ai"].to_numpy()
        assert row.accuracy == pytest.approx(accuracy_score(labels, scores >= threshold))
        assert row.roc_auc == pytest.approx(roc_auc_score(labels, scores))
    original = long[long["degradation"] == "original"]["score_ai"].to_numpy()
    jpeg50 = long[long["degradation"] == "jpeg_q50"]["score_ai"].to_numpy()
    assert not np.allclose(original, jpeg50)  # the degradation really reached the model


def test_evaluate_script_reproduces_training_evaluation(tiny_trained_model: Path, tmp_path: Path, capsys) -> None:
    rc = load_script("evaluate").main(["--model", str(tiny_trained_model), "--output_dir", str(tmp_path)])
    assert rc == 0
    again = json.loads((tmp_path / "metrics.json").read_text())
    first = json.loads((tiny_trained_model / "eval" / "metrics.json").read_text())
    for section in ("all", "seen", "unseen"):
        for key, value in first[section].items():
            assert again[section][key] == pytest.approx(value, abs=1e-6, nan_ok=True), (section, key)
    assert not (tmp_path / "robustness.csv").exists()  # only with --robustness
    printed = capsys.readouterr().out
    assert "roc_auc" in printed and "detection_rate" in printed


def test_scores_equal_pipeline(tiny_trained_model: Path) -> None:
    """Evaluation's pixels are the pipeline's: same decode, same saved processor."""
    paths = resolve_eval_data(tiny_trained_model).paths[:4]
    model, processor = load_model_folder(tiny_trained_model)
    logits, valid = predict_logits(model, processor, paths, batch_size=3)
    detector = pipeline("image-classification", model=str(tiny_trained_model), device="cpu")
    expected = [{r["label"]: r["score"] for r in detector(p)}["ai"] for p in paths]
    assert valid.all()
    np.testing.assert_allclose(ai_scores(logits), expected, atol=1e-5)


def test_unreadable_image_is_reported_not_fatal(tiny_trained_model: Path, tmp_path: Path) -> None:
    data = resolve_eval_data(tiny_trained_model)
    root = tmp_path / "data"
    shutil.copytree(data.root, root)
    broken = data.frame["path"].iloc[0]
    (root / broken).write_bytes(b"not an image")
    data = EvalData(data.frame, root, "test with one broken file")
    result = run_evaluation(tiny_trained_model, data, tmp_path / "out", batch_size=4)
    assert result.metrics["n_unreadable"] == 1
    assert broken not in set(result.predictions["path"])
    assert result.metrics["all"]["n_images"] == len(data.frame) - 1


def test_plain_folder_and_manifest_errors(tiny_trained_model: Path, tmp_path: Path) -> None:
    for label in ("real", "ai"):
        (tmp_path / "mine" / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 30), (i * 90, 20, 200)).save(tmp_path / "mine" / label / f"{i}.png")
    data = resolve_eval_data(tiny_trained_model, tmp_path / "mine", use_model_manifest=False)
    assert len(data.frame) == 4 and sorted(data.frame["label"]) == [0, 0, 1, 1]
    with pytest.raises(DataError, match="--no_manifest"):  # the model's manifest does not fit that folder
        resolve_eval_data(tiny_trained_model, tmp_path / "mine")
    with pytest.raises(DataError, match="no 'nonexistent' rows"):
        resolve_eval_data(tiny_trained_model, split="nonexistent")


def test_sections_and_undefined_metrics() -> None:
    labels, heldout = [0, 0, 1, 1], [False, False, False, True]
    masks = section_masks(heldout, labels)
    assert masks["seen"].tolist() == [True, True, True, False]
    assert masks["unseen"].tolist() == [True, True, False, True]
    only_ai = detection_metrics(np.array([1, 1]), np.array([0.2, 0.9]), 0.5)
    assert only_ai["roc_auc"] is None and only_ai["false_positive_rate"] is None and only_ai["recall"] == 0.5
    assert set(section_masks([False] * 4, labels)) == {"all"}


def test_ece_before_calibration_comes_from_the_logits() -> None:
    """A sharpening temperature saturates calibrated scores at 1.0; the uncalibrated P(ai) must not be
    rebuilt from them (that gave 1.0 for raw 0.93) but from the logits times T."""
    temperature, raw_gap = 0.056, 2.6  # raw P(ai) = sigmoid(2.6) = 0.931
    logits = np.array([[0.0, raw_gap / temperature]] * 4 + [[raw_gap / temperature, 0.0]] * 4)
    frame = pd.DataFrame({"path": [f"{i}.jpg" for i in range(8)], "label": [1, 1, 1, 1, 0, 0, 0, 0],
                          "source": "s", "category": "", "heldout": False})
    predictions = build_predictions(EvalData(frame, Path("."), "unit"), logits, np.ones(8, bool), 0.5, temperature)
    assert (predictions["score_ai"].iloc[:4] == 1.0).all()  # saturated in float64
    expected_raw = 1 / (1 + np.exp(-raw_gap))
    np.testing.assert_allclose(predictions["score_ai_uncalibrated"].iloc[:4], expected_raw, rtol=1e-12)
    sections = metrics_by_section(predictions, 0.5)["all"]
    assert sections["ece"] == pytest.approx(0.0, abs=1e-12)  # calibrated scores 1.0 / 0.0 on correctly ranked images
    assert sections["ece_before_calibration"] == pytest.approx(1 - expected_raw)  # raw 0.93 / 0.07: under-confident


def test_degradations() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
    for name, degrade in DEGRADATIONS.items():
        out = degrade(image)
        assert out.mode == "RGB", name
        assert out.size == ((24, 32) if name.startswith("downscale") else image.size), name
        assert not np.array_equal(np.asarray(out), np.asarray(image)), name


@pytest.mark.slow  # three fresh Python processes (launcher + 2 workers) importing torch: 20-50 s on 2 busy cores
def test_accelerate_launch_two_processes_gather_every_row_once(tiny_trained_model: Path, tmp_path: Path) -> None:
    """`accelerate launch` with 2 CPU processes: each image scored once, with the single-process scores."""
    # on CPU, `--cpu --num_processes 2` needs mpirun; torch.distributed.run + gloo is `--multi_gpu` with USE_CPU
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(ROOT / "scripts" / "evaluate.py"),
        "--model", str(tiny_trained_model), "--output_dir", str(tmp_path), "--batch_size", "5",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["num_processes"] == 2
    two = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    one = pd.read_csv(tiny_trained_model / "eval" / "predictions.csv", keep_default_na=False)
    assert len(one) % 10 != 0  # batches of 5 on 2 processes: the last round is padded, then trimmed
    assert two["path"].tolist() == one["path"].tolist()
    np.testing.assert_allclose(two["score_ai"], one["score_ai"], atol=1e-5)
