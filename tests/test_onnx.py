"""ONNX fast path on a tiny trained run folder: fp32 parity with torch on its real images, static int8
with its ROC-AUC check, the parity record guarding against stale exports, and backend choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
from safetensors.torch import load_file, save_file

from modeling import onnx_export
from modeling.predictor import Detector, ModelLoadError, cpu_has_native_bf16


@pytest.fixture(scope="module")
def exported(tiny_trained_model, tmp_path_factory) -> Path:
    """A copy of the tiny run with model.onnx written by scripts/export_onnx.py (the manifest's images)."""
    folder = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(tiny_trained_model, folder)
    assert load_script("export_onnx").main(["--model", str(folder)]) == 0  # data_dir from training_config.yaml
    return folder


def data_images(model_dir: Path) -> onnx_export.CheckImages:
    return onnx_export.images_from_manifest(model_dir)  # validation rows calibrate, test rows check


def test_fp32_export_matches_torch(exported, tiny_trained_model):
    record = json.loads((exported / onnx_export.RECORD_FILE).read_text())["fp32"]
    test_rows = data_images(exported).check
    assert record["passed"] and record["max_abs_score_diff"] <= 1e-3
    assert record["num_images"] == len(test_rows)
    assert record["weights_sha256"] == onnx_export.weights_sha256(exported)
    data = tiny_trained_model.parent / "data"
    torch_rows = list(Detector.from_pretrained(exported, backend="torch", batch_size=7, num_workers=0).predict([data]))
    onnx = Detector.from_pretrained(exported, backend="onnx", batch_size=7, num_workers=0)
    assert onnx.backend_name == "onnx-fp32"
    onnx_rows = list(onnx.predict([data]))  # batch 7: the free batch dimension, incl. a short last batch
    assert [r.path for r in onnx_rows] == [r.path for r in torch_rows]
    gap = np.abs(np.array([r.score_ai for r in onnx_rows]) - np.array([r.score_ai for r in torch_rows]))
    assert gap.max() <= 1e-3


def test_auto_prefers_checked_onnx(exported):
    expected = "torch-bf16" if cpu_has_native_bf16() else "onnx-fp32"
    assert Detector.from_pretrained(exported).backend_name == expected


def test_stale_export_is_never_used(exported, tmp_path):
    """Weights changed after export (retrained or recalibrated in place): the ONNX file no longer applies."""
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    weights = load_file(folder / "model.safetensors")
    name = next(k for k in weights if k.endswith("classifier.bias"))
    weights[name] = weights[name] + 1.0
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    assert "other weights" in onnx_export.usable_export(folder, "fp32")
    assert Detector.from_pretrained(folder).backend_name.startswith("torch-")
    with pytest.raises(ModelLoadError, match="re-export"):
        Detector.from_pretrained(folder, backend="onnx")


def test_int8_static_quantization_checked_on_roc_auc(exported, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    images = data_images(exported)
    try:
        record = onnx_export.quantize_checked(folder, images, num_calibration=12)
    except onnx_export.ExportError:
        record = json.loads((folder / onnx_export.RECORD_FILE).read_text())
    entry = record["int8"]
    assert entry["num_calibration_images"] == min(12, len(images.calibration))
    assert entry["num_images"] == len(images.check)
    assert entry["passed"] == (entry["roc_auc_fp32"] - entry["roc_auc_int8"] <= onnx_export.INT8_AUC_TOLERANCE)
    assert (folder / "model_int8.onnx").is_file() == entry["passed"]
    assert entry["mean_abs_score_diff"] < 0.02  # int8 moves scores a little, not a lot
    if entry["passed"]:
        detector = Detector.from_pretrained(folder, num_workers=0)
        assert detector.backend_name == "onnx-int8"  # the fastest, once checked
        graph = (folder / "model_int8.onnx").read_bytes()
        assert b"QuantizeLinear" in graph and b"DequantizeLinear" in graph


def test_failed_int8_check_removes_the_file(exported, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    monkeypatch.setattr(onnx_export, "INT8_AUC_TOLERANCE", -1.0)  # no model can pass this
    with pytest.raises(onnx_export.ExportError, match="ROC-AUC"):
        onnx_export.quantize_checked(folder, data_images(exported), num_calibration=8)
    assert not (folder / "model_int8.onnx").exists()
    assert json.loads((folder / onnx_export.RECORD_FILE).read_text())["int8"]["passed"] is False
    assert Detector.from_pretrained(folder).backend_name != "onnx-int8"
    with pytest.raises(ModelLoadError):
        Detector.from_pretrained(folder, backend="onnx", precision="int8")


def test_int8_needs_labels(exported, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    unlabelled = onnx_export.images_from_paths(data_images(exported).check)
    with pytest.raises(onnx_export.ExportError, match="unverified"):
        onnx_export.quantize_checked(folder, unlabelled, num_calibration=8)
    assert not (folder / "model_int8.onnx").exists()
