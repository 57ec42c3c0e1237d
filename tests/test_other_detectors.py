"""Any binary image classifier on the same yardstick: label maps, and tiny random-init Swin and ViT models with
other label names ({0: artificial, 1: human}, {0: FAKE, 1: REAL}) through `Detector`, predict.py, evaluate.py
(alone, and side by side with this package's model) and the web demo. Offline: the models are made here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import load_script
from provenance_files import picture
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
)

from modeling.evaluation.compare import comparison_table, parse_model_specs, stress_rates
from modeling.images import load_image
from modeling.inference.predictor import Detector, ModelLoadError
from modeling.labels import LabelMapError, label_map

SIZE = 32
FP32 = dict(backend="torch", precision="fp32", num_workers=0)


def save_foreign(folder: Path, model: torch.nn.Module) -> Path:
    """A folder as the Hub holds one: weights, config with its own label names, a stock ViT processor."""
    with torch.no_grad():
        model.classifier.weight.mul_(30.0)  # random init scores sit at 0.5: spread them
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": SIZE, "width": SIZE}).save_pretrained(folder)
    return folder


def labels(*names: str) -> dict:
    return dict(num_labels=2, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})


@pytest.fixture(scope="module")
def swin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = SwinConfig(image_size=SIZE, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4,
                        **labels("artificial", "human"))
    return save_foreign(tmp_path_factory.mktemp("models") / "swin", SwinForImageClassification(config).eval())


def tiny_vit(folder: Path, *names: str) -> Path:
    torch.manual_seed(1)
    config = ViTConfig(image_size=SIZE, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, **labels(*names))
    return save_foreign(folder, ViTForImageClassification(config).eval())


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_vit(tmp_path_factory.mktemp("models") / "vit", "FAKE", "REAL")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pictures")
    paths = [folder / f"{seed}.png" for seed in range(6)]
    for seed, path in enumerate(paths):
        picture(seed, size=(40 + 4 * seed, 36)).save(path)
    return paths


def softmax(model_dir: Path, label: str, paths: list[Path]) -> list[float]:
    """P(label) straight from the model and its processor: the figure every tool must report."""
    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    pixels = processor([load_image(p) for p in paths], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        probabilities = model(pixel_values=pixels).logits.softmax(-1)
    return probabilities[:, model.config.label2id[label]].tolist()


# --------------------------------------------------------------------------- label maps


@pytest.mark.parametrize("names, ai_id", [
    (("artificial", "human"), 0), (("FAKE", "REAL"), 0), (("ai", "human"), 0), (("real", "ai"), 1),
    (("Real", "AI-generated"), 1), (("AiArtData", "RealArt"), 0), (("authentic", "synthetic"), 1),
])
def test_the_ai_side_is_inferred_from_the_label_names(names, ai_id):
    mapping = label_map({str(i): n for i, n in enumerate(names)})
    assert (mapping.ai_id, mapping.inferred, mapping.is_own) == (ai_id, True, names == ("real", "ai"))
    assert [mapping.label(i) for i in (0, 1)] == ["ai" if i == ai_id else "real" for i in (0, 1)]


@pytest.mark.parametrize("names", [
    ("LABEL_0", "LABEL_1"), ("fake", "synthetic"), ("real", "human"), ("not_ai", "ai"), ("real", "ai", "other"),
])
def test_ambiguous_labels_are_refused_not_guessed(names):
    with pytest.raises(LabelMapError, match="ai_label|not a real/ai detector"):
        label_map(dict(enumerate(names)))


def test_an_ai_label_names_the_class_by_name_case_or_id():
    assert label_map({0: "LABEL_0", 1: "LABEL_1"}, "LABEL_1").ai_id == 1
    assert label_map({0: "Fake", 1: "Real"}, "fake").ai_id == 0
    assert label_map({0: "LABEL_0", 1: "LABEL_1"}, "0").ai_id == 0
    assert "given by ai_label" in label_map({0: "a", 1: "b"}, "b").describe()
    with pytest.raises(LabelMapError, match="none of the model's labels"):
        label_map({0: "artificial", 1: "human"}, "robot")


# --------------------------------------------------------------------------- Detector and predict.py


def test_predict_cli_ai_label_scores_equal_the_models_softmax(swin, images, tmp_path, caplog):
    """The issue's done-when: `predict.py --model SWIN --ai_label artificial` reports P(artificial)."""
    caplog.set_level("INFO")
    expected = softmax(swin, "artificial", images)
    for extra, how in ((["--ai_label", "artificial"], "given by ai_label"), ([], "inferred from the label names")):
        out = tmp_path / f"{how[:5]}.csv"
        args = ["--model", str(swin), *map(str, images), "--output", str(out), "--no_progress", "--precision", "fp32"]
        assert load_script("predict").main([*args, *extra]) == 0
        with out.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
        assert [float(r["score_ai"]) for r in rows] == pytest.approx(expected, abs=1e-6)
        assert [r["label"] for r in rows] == ["ai" if p >= 0.5 else "real" for p in expected]
        assert f"labels: ai = 'artificial' (id 0), real = 'human' (id 1), {how}" in caplog.text
        assert "backend: torch-fp32" in caplog.text  # a foreign model runs on torch
    assert {r["label"] for r in rows} == {"ai", "real"}  # the scores spread over both sides of 0.5


def test_a_vit_with_fake_real_labels_and_the_onnx_path_refused(vit, images):
    detector = Detector.from_pretrained(vit, **FP32)
    assert detector.threshold == 0.5 and detector.labels.ai_id == 0  # no decision_threshold in its config
    scores = [row.score_ai for row in detector.predict(images)]
    assert scores == pytest.approx(softmax(vit, "FAKE", images), abs=1e-6)
    assert [row.score_ai for row in detector.predict_images(images)] == pytest.approx(scores, abs=1e-6)
    with pytest.raises(ModelLoadError, match="ONNX is used only for this package's model folders"):
        Detector.from_pretrained(vit, backend="onnx")


def test_ambiguous_labels_stop_predict_until_ai_label_names_one(tmp_path, images, caplog):
    model = tiny_vit(tmp_path / "unnamed", "LABEL_0", "LABEL_1")
    args = ["--model", str(model), str(images[0]), "--no_progress", "--output", str(tmp_path / "out.csv")]
    assert load_script("predict").main(args) == 2
    assert "cannot tell which label is the AI side ('LABEL_0': neither, 'LABEL_1': neither)" in caplog.text
    detector = Detector.from_pretrained(model, ai_label="LABEL_1", **FP32)
    assert [r.score_ai for r in detector.predict(images)] == pytest.approx(softmax(model, "LABEL_1", images), abs=1e-6)


# --------------------------------------------------------------------------- evaluate.py and the comparison


def test_model_specs_from_the_command_line():
    specs = parse_model_specs(["runs/a", "hub/swin::artificial", "other/a"])
    assert [(s.model, s.ai_label, s.name) for s in specs] == [
        ("runs/a", None, "1_a"), ("hub/swin", "artificial", "swin"), ("other/a", None, "3_a")]
    assert [s.ai_label for s in parse_model_specs(["a", "b"], ["auto", "FAKE"])] == [None, "FAKE"]
    with pytest.raises(ValueError, match="one per --model"):
        parse_model_specs(["a", "b"], ["FAKE"])
    with pytest.raises(ValueError, match="in --model and"):
        parse_model_specs(["a::x"], ["y"])


def test_stress_rates_are_read_where_a_model_has_them():
    stress = {"threshold": 0.5, "kinds": {"night_mode": {"false_positive_rate": 0.25, "false_positive_rate_at_1pct":
                                                          0.1, "detection_rate": 0.9}}}
    rows = stress_rates(stress)
    assert rows == {("stress test (real photos)", "night_mode: false_positive_rate"): 0.25,
                    ("stress test (real photos)", "night_mode: false_positive_rate_at_1pct"): 0.1}
    assert stress_rates(None) == {} and stress_rates({"kinds": "?"}) == {}
    table = comparison_table({"a": {("all", "roc_auc"): 0.9, **rows}, "b": {("all", "roc_auc"): 0.8}})
    assert table["b"].iloc[0] == 0.8 and table["b"].iloc[1:].isna().all()  # no stress test: empty cells, not zeros


def test_evaluate_compares_this_packages_model_with_a_swin(tiny_trained_model, swin, tmp_path, capsys):
    """The issue's done-when: one table and one ROC plot with both models, on the same images."""
    out = tmp_path / "comparison"
    args = ["--model", str(tiny_trained_model), "--model", str(swin), "--data_dir",
            str(tiny_trained_model.parent / "data"), "--output_dir", str(out), "--batch_size", "16"]
    assert load_script("evaluate").main(args) == 0
    for name in ("comparison.csv", "comparison.md", "comparison_roc.png", "comparison_roc_log.png"):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "comparison.csv", keep_default_na=False)
    assert list(table.columns) == ["section", "metric", "model", "swin"]
    rows = table.set_index(["section", "metric"])
    ours, theirs = (pd.read_csv(out / name / "predictions.csv") for name in ("model", "swin"))
    manifest = pd.read_csv(tiny_trained_model / "manifest.csv")
    assert sorted(ours["path"]) == sorted(theirs["path"]) == sorted(manifest[manifest["split"] == "test"]["path"])
    for name in ("model", "swin"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        for key in ("roc_auc", "average_precision", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct"):
            assert float(rows.loc[("all", key), name]) == pytest.approx(metrics["all"][key]), (name, key)
        assert float(rows.loc[("own threshold", "false_positive_rate_real"), name]) == pytest.approx(
            metrics["all"]["false_positive_rate"])
        assert float(rows.loc[("shared 5% FPR point", "false_positive_rate_real"), name]) <= 0.05
    assert rows.loc[("model", "labels"), "swin"].startswith("ai = 'artificial' (id 0)")
    assert float(rows.loc[("own threshold", "threshold"), "swin"]) == 0.5
    assert any(table["section"] == "per source") and "unseen" in set(table["section"])
    root = tiny_trained_model.parent / "data"
    assert theirs["score_ai"].tolist()[:4] == pytest.approx(
        softmax(swin, "artificial", [root / p for p in theirs["path"][:4]]), abs=1e-5)
    markdown = (out / "comparison.md").read_text()
    assert "| section | metric | model | swin |" in markdown and "| all | roc_auc |" in markdown
    assert "roc_auc" in capsys.readouterr().out


def test_evaluate_refuses_a_comparison_it_cannot_make(tiny_trained_model, swin, tmp_path, caplog):
    """Ambiguous labels stop it before any image is scored; --calibrate (one re-saved folder) takes one model."""
    unnamed = tiny_vit(tmp_path / "unnamed", "LABEL_0", "LABEL_1")
    out = tmp_path / "comparison"
    args = ["--model", str(tiny_trained_model), "--model", str(unnamed), "--output_dir", str(out)]
    assert load_script("evaluate").main(args) == 2
    assert "cannot tell which label is the AI side" in caplog.text and not out.exists()
    with pytest.raises(SystemExit):
        load_script("evaluate").main(["--model", str(tiny_trained_model), "--model", str(swin), "--calibrate"])


# --------------------------------------------------------------------------- the web demo


def test_the_demo_serves_a_swin_without_a_heat_map(swin, images):
    from modeling.app.demo import DemoPredictor, render_table

    predictor = DemoPredictor.from_pretrained(swin, ai_label="artificial")
    report = predictor.analyze(images[0])
    assert report.error is None and report.overlay is None  # Grad-CAM is for ConvNeXt only
    assert report.score == pytest.approx(softmax(swin, "artificial", images[:1])[0], abs=1e-2)  # bf16 where native
    assert report.label == ("ai" if report.score >= 0.5 else "real")
    page = render_table([report], predictor.threshold, predictor.margin)
    assert "data-c2pa-state='none found'" in page and "No claim either way" in page
