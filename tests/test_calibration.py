"""Calibration: ECE/Brier definitions, temperature fitting, folding into the head (seen by `pipeline`),
threshold rules, and calibration at the end of training."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss
from tiny_model import TinyModelTester
from transformers import AutoConfig, ConvNextForImageClassification, pipeline

from modeling import calibration, metrics
from modeling.data.selection import resolve_eval_data
from modeling.evaluation.evaluate import calibrate_folder, load_model_folder, predict_logits
from modeling.labels import decision_threshold
from modeling.processing import build_image_processor


def overconfident_logits(n: int = 4000, scale: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z); the 'model' reports scale * z, i.e. far too confident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    logits = np.stack([np.zeros(n), scale * z], axis=1)
    return logits, labels


def test_ece_and_brier_match_sklearn() -> None:
    logits, labels = overconfident_logits(500)
    scores = metrics.ai_scores(logits)
    prob_true, prob_pred = calibration_curve(labels, scores, n_bins=15)
    counts = np.bincount(metrics.calibration_bins(scores), minlength=15)
    expected = np.sum(np.abs(prob_true - prob_pred) * counts[counts > 0]) / len(scores)
    assert metrics.expected_calibration_error(labels, scores) == pytest.approx(expected)
    assert metrics.brier_score(labels, scores) == pytest.approx(brier_score_loss(labels, scores))
    assert metrics.expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_temperature_fixes_overconfidence() -> None:
    logits, labels = overconfident_logits(scale=4.0)
    t = calibration.fit_temperature(logits, labels)
    assert t == pytest.approx(4.0, rel=0.15)  # recovers the inflation factor
    before = metrics.expected_calibration_error(labels, metrics.ai_scores(logits))
    after = metrics.expected_calibration_error(labels, metrics.ai_scores(logits / t))
    assert after < before / 3
    # underconfident logits get T < 1
    assert calibration.fit_temperature(logits / 16, labels) < 1.0


def test_a_shifted_prior_is_fixed_by_the_bias_not_by_a_temperature() -> None:
    """Self-made fakes train under ~3:1 ai odds: the gap is right up to +log 3. A temperature alone
    leaves most of that miscalibration; the fitted shift recovers -log 3 and removes it."""
    logits, labels = overconfident_logits(scale=1.0)
    shifted = calibration.shift_logits(logits, np.log(3.0))
    t, bias = calibration.fit_scaling(shifted, labels)
    assert bias == pytest.approx(-np.log(3.0), abs=0.2) and t == pytest.approx(1.0, rel=0.15)
    ece = functools.partial(metrics.expected_calibration_error, labels)
    temperature_only = ece(metrics.ai_scores(shifted / calibration.fit_temperature(shifted, labels)))
    assert ece(metrics.ai_scores(calibration.apply_scaling(shifted, t, bias))) < temperature_only / 2
    np.testing.assert_allclose(calibration.undo_scaling(calibration.apply_scaling(shifted, t, bias), t, bias), shifted)


def test_folding_composes_with_an_earlier_calibration() -> None:
    model = tiny_model()
    x = torch.randn(5, model.classifier.in_features)
    raw = model.classifier(x).detach().numpy().astype(np.float64)
    calibration.fold_temperature(model, 2.0, 0.6)
    calibration.fold_temperature(model, 0.5, -0.2)
    folded = model.classifier(x).detach().numpy()
    t, b = model.config.calibration_temperature, model.config.calibration_bias
    np.testing.assert_allclose(folded, calibration.apply_scaling(raw, t, b), rtol=1e-4, atol=1e-4)
    assert t == pytest.approx(1.0) and b == pytest.approx(0.6 / 0.5 - 0.2)


def tiny_model(seed: int = 0) -> ConvNextForImageClassification:
    # scores made extreme, so that a temperature has something to change
    return TinyModelTester.model(seed, head_scale=40.0, image_size=32)


def test_folded_temperature_changes_pipeline_scores(tmp_path: Path) -> None:
    model = tiny_model()
    build_image_processor(image_size=32).save_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "m")
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8))
              for i in range(3)]

    def ai_scores() -> np.ndarray:
        detector = pipeline("image-classification", model=str(tmp_path / "m"), device="cpu")
        return np.array([{r["label"]: r["score"] for r in detector(img)}["ai"] for img in images])

    before = ai_scores()
    calibration.fold_temperature(model, 3.0)
    model.save_pretrained(tmp_path / "m")
    after = ai_scores()
    logit_gap = np.log(before) - np.log1p(-before)  # logit(ai) - logit(real)
    np.testing.assert_allclose(after, 1 / (1 + np.exp(-logit_gap / 3.0)), rtol=1e-4)
    assert AutoConfig.from_pretrained(tmp_path / "m").calibration_temperature == pytest.approx(3.0)
    assert set(load_file(tmp_path / "m" / "model.safetensors")) >= {"classifier.weight", "classifier.bias"}


def test_calibrate_folder_lowers_ece_of_an_overconfident_model(tiny_trained_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_trained_model, folder)
    model = ConvNextForImageClassification.from_pretrained(folder)
    with torch.no_grad():  # inflate the head: the same ranking, far too confident
        model.classifier.weight.mul_(50.0)
        model.classifier.bias.mul_(50.0)
    model.save_pretrained(folder)
    validation = resolve_eval_data(folder, split="validation")
    report = calibrate_folder(folder, validation, "max_accuracy", batch_size=8)
    assert report is not None and report.temperature > 5
    assert report.ece_after < report.ece_before
    assert report.nll_after < report.nll_before
    saved = json.loads((folder / "config.json").read_text())
    assert saved["decision_threshold"] == pytest.approx(report.decision_threshold)
    assert saved["decision_threshold_rule"] == "max_accuracy"
    # the saved model's own scores are the calibrated ones: re-scoring gives ECE after, not before
    model, processor = load_model_folder(folder)
    logits, _ = predict_logits(model, processor, validation.paths, batch_size=8)
    ece = metrics.expected_calibration_error(validation.frame["label"], metrics.ai_scores(logits))
    assert ece == pytest.approx(report.ece_after, abs=1e-4)


def brute_force_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    grid = np.concatenate([scores, [np.inf]])
    return max(((scores >= t) == labels).mean() for t in grid)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_rules(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(0.35 * labels + rng.normal(0.35, 0.2, 200), 0, 1)
    t = calibration.choose_threshold(labels, scores, "max_accuracy")
    assert ((scores >= t) == labels).mean() == pytest.approx(brute_force_accuracy(labels, scores))
    for target in (0.0, 0.01, 0.05, 0.2):
        t = calibration.choose_threshold(labels, scores, f"target_fpr={target}")
        real = scores[labels == 0]
        assert (real >= t).mean() <= target
        lower = scores[scores < t]
        if lower.size:  # the next lower score would break the budget: t is the lowest allowed
            assert (real >= lower.max()).mean() > target


def test_threshold_prefers_half_on_ties_and_rejects_bad_rules() -> None:
    labels = np.array([0, 0, 1, 1])
    assert calibration.choose_threshold(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 0.5
    for rule in ("max_acc", "target_fpr=1.5", "target_fpr=abc", "fpr=0.1"):
        with pytest.raises(ValueError, match="threshold rule"):
            calibration.parse_rule(rule)
    with pytest.raises(ValueError, match="both real and ai"):
        calibration.choose_threshold(np.array([1, 1]), np.array([0.2, 0.9]))


def test_single_class_validation_leaves_model_unchanged() -> None:
    model = tiny_model()
    weight = model.classifier.weight.clone()
    assert calibration.calibrate_model(model, np.zeros((4, 2)), np.ones(4, dtype=int)) is None
    assert torch.equal(model.classifier.weight, weight)
    assert decision_threshold(model.config) == 0.5


def test_training_calibrates_before_final_metrics(tiny_trained_model: Path) -> None:
    report = json.loads((tiny_trained_model / "calibration.json").read_text())
    config = json.loads((tiny_trained_model / "config.json").read_text())
    assert config["decision_threshold"] == report["decision_threshold"]
    assert config["calibration_temperature"] == pytest.approx(report["temperature"])
    assert report["decision_threshold_rule"] == "max_accuracy" and report["fitted_on"] == "validation"
    # Trainer's final validation loss is the NLL of the calibrated model (calibration ran first)
    validation = json.loads((tiny_trained_model / "validation_results.json").read_text())
    assert validation["validation_loss"] == pytest.approx(report["nll_after"], abs=1e-4)
    assert not (tiny_trained_model / "training_args.bin").exists()


def test_a_threshold_never_falls_inside_float32_noise() -> None:
    """A real at 0.4 and an ai image 1e-9 above it are tied: the threshold clears both by a margin that
    float32 rounding of another batch size or process count cannot cross."""
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.4 + 1e-9, 0.9])
    threshold = calibration.choose_threshold(labels, scores, "target_fpr=0.0")
    assert threshold > 0.4 + 1e-7 and threshold < 0.9
    everything_real = calibration.choose_threshold(np.array([1, 0]), np.array([0.2, 0.7]), "target_fpr=0.0")
    assert everything_real > 0.7 + 1e-7  # above the top score by a margin, not by one ulp
