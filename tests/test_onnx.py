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

from modeling.data.selection import run_check_images
from modeling.inference import onnx_export
from modeling.inference.predictor import Detector, ModelLoadError
from modeling.run_folder import ONNX_RECORD, RunFolder


@pytest.fixture(scope="module")
def exported(tiny_trained_model, tmp_path_factory) -> Path:
    """A copy of the tiny run with model.onnx written by scripts/export_onnx.py (the manifest's images)."""
    folder = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(tiny_trained_model, folder)
    assert load_script("export_onnx").main(["--model", str(folder)]) == 0  # data_dir from training_config.yaml
    return folder


def data_images(model_dir: Path) -> onnx_export.CheckImages:
    return onnx_export.CheckImages(*run_check_images(model_dir))  # validation rows calibrate, test rows check


def test_fp32_export_matches_torch(exported, tiny_trained_model):
    record = json.loads((exported / ONNX_RECORD).read_text())["fp32"]
    test_rows = data_images(exported).check
    assert record["passed"] and record["max_abs_score_diff"] <= 1e-3
    assert record["num_images"] == len(test_rows)
    assert record["weights_sha256"] == RunFolder(exported).weights_sha256()
    data = tiny_trained_model.parent / "data"
    torch_fp32 = Detector.from_pretrained(exported, backend="torch", precision="fp32", batch_size=7, num_workers=0)
    torch_rows = list(torch_fp32.predict([data]))
    onnx = Detector.from_pretrained(exported, backend="onnx", batch_size=7, num_workers=0)
    assert onnx.backend_name == "onnx-fp32"
    onnx_rows = list(onnx.predict([data]))  # batch 7: the free batch dimension, incl. a short last batch
    assert [r.path for r in onnx_rows] == [r.path for r in torch_rows]
    gap = np.abs(np.array([r.score_ai for r in onnx_rows]) - np.array([r.score_ai for r in torch_rows]))
    assert gap.max() <= 1e-3


def test_auto_prefers_checked_onnx_even_over_native_bf16(exported, monkeypatch):
    assert Detector.from_pretrained(exported).backend_name == "onnx-fp32"
    monkeypatch.setattr("modeling.inference.predictor.cpu_has_native_bf16", lambda: True)
    assert Detector.from_pretrained(exported).backend_name == "onnx-fp32"  # bf16 turns verdicts: only on request


def test_stale_export_is_never_used(exported, tmp_path):
    """Weights changed after export (retrained or recalibrated in place): the ONNX file no longer applies."""
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    weights = load_file(folder / "model.safetensors")
    name = next(k for k in weights if k.endswith("classifier.bias"))
    weights[name] = weights[name] + 1.0
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    assert "other weights" in RunFolder(folder).usable_onnx("fp32")
    assert Detector.from_pretrained(folder).backend_name.startswith("torch-")
    with pytest.raises(ModelLoadError, match="re-export"):
        Detector.from_pretrained(folder, backend="onnx")



def test_evaluation_scores_with_the_checked_export(exported, tmp_path):
    """evaluate.py's default backend is the checked fp32 export: its figures and verdicts equal torch's on the
    same rows; a stale export is never used, and asking for ONNX without a usable one fails with the reason."""
    from accelerate import Accelerator

    from modeling.data.selection import resolve_eval_data
    from modeling.evaluation.evaluate import load_model_folder, run_evaluation, scoring_runner

    data = resolve_eval_data(exported, split="test")
    runs = {b: run_evaluation(exported, data, tmp_path / b, batch_size=5, backend=b, provenance=False)
            for b in ("auto", "torch")}
    assert runs["auto"].metrics["scoring_backend"] == "onnx-fp32"
    assert runs["torch"].metrics["scoring_backend"] == "torch-fp32"
    auto, ref = runs["auto"].predictions, runs["torch"].predictions
    assert list(auto["path"]) == list(ref["path"]) and len(auto) == len(data.frame)
    assert np.abs(auto["score_ai"] - ref["score_ai"]).max() <= 1e-4
    assert (auto["predicted"] == ref["predicted"]).all()
    assert runs["auto"].metrics["all"]["roc_auc"] == pytest.approx(runs["torch"].metrics["all"]["roc_auc"], abs=1e-6)

    stale = tmp_path / "stale"
    shutil.copytree(exported, stale)
    weights = load_file(stale / "model.safetensors")
    name = next(k for k in weights if k.endswith("classifier.bias"))
    save_file({**weights, name: weights[name] + 1.0}, stale / "model.safetensors", metadata={"format": "pt"})
    model, _ = load_model_folder(stale)
    assert scoring_runner(stale, model, Accelerator()).name == "torch-fp32"
    with pytest.raises(ValueError, match="other weights"):
        scoring_runner(stale, model, Accelerator(), backend="onnx")

def test_evaluation_benchmark_compares_the_backends_on_the_same_rows(exported, capsys):
    before = {p: p.stat().st_mtime_ns for p in exported.rglob("*")}
    benchmark = load_script("benchmark")
    assert benchmark.main(["evaluate", "--model", str(exported), "--batch_size", "4"]) == 0
    out = capsys.readouterr().out
    assert "same verdicts on 1.0000 of the images" in out and "onnx / torch time" in out
    assert {p: p.stat().st_mtime_ns for p in exported.rglob("*")} == before  # the folder is only read


def test_int8_static_quantization_checked_on_roc_auc(exported, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    images = data_images(exported)
    try:
        record = onnx_export.quantize_checked(folder, images, num_calibration=12)
    except onnx_export.ExportError:
        record = json.loads((folder / ONNX_RECORD).read_text())
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
    assert json.loads((folder / ONNX_RECORD).read_text())["int8"]["passed"] is False
    assert Detector.from_pretrained(folder).backend_name != "onnx-int8"
    with pytest.raises(ModelLoadError):
        Detector.from_pretrained(folder, backend="onnx", precision="int8")


def test_int8_is_checked_by_verdict_agreement(exported, tmp_path, monkeypatch):
    """int8 is kept only while it changes no more than 0.5% of the verdicts at the model's threshold, with labels
    or without (export_onnx.py --images DIR), and the score differences are recorded."""
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    unlabelled = onnx_export.CheckImages.unlabelled(data_images(exported).check)
    entry = onnx_export.quantize_checked(folder, unlabelled, num_calibration=8)["int8"]
    assert entry["passed"] and entry["label_flips"] <= onnx_export.INT8_FLIP_TOLERANCE
    assert "roc_auc_int8" not in entry and entry["max_abs_score_diff"] >= entry["mean_abs_score_diff"] >= 0
    monkeypatch.setattr(onnx_export, "INT8_FLIP_TOLERANCE", -1.0)  # any agreement is now too little
    with pytest.raises(onnx_export.ExportError, match="changes the verdict"):
        onnx_export.quantize_checked(folder, unlabelled, num_calibration=8)
    assert not (folder / "model_int8.onnx").exists()
    with pytest.raises(onnx_export.ExportError, match="changes the verdict"):  # labelled: a good ROC-AUC is not enough
        onnx_export.quantize_checked(folder, data_images(exported), num_calibration=8)


def test_export_script_on_a_folder_without_manifest(exported, tmp_path, caplog):
    """A model folder that was not trained here (no manifest): parity on the given images, fp32 and int8."""
    folder = tmp_path / "downloaded"
    shutil.copytree(exported, folder)
    for name in ("manifest.csv", "training_config.yaml", "model.onnx", "model_int8.onnx", ONNX_RECORD):
        (folder / name).unlink(missing_ok=True)
    images = sorted(Path(data_images(exported).check[0]).parents[1].rglob("*.jpg"))[:12]
    image_dir = tmp_path / "mine"
    image_dir.mkdir()
    for path in images:
        shutil.copy(path, image_dir / f"{path.parent.name}_{path.name}")
    script = load_script("export_onnx")
    assert script.main(["--model", str(folder), "--quantize", "int8"]) == 1  # no manifest: says to pass --images
    assert "--images" in caplog.text
    assert script.main(["--model", str(folder), "--quantize", "int8", "--images", str(image_dir)]) == 0
    record = json.loads((folder / ONNX_RECORD).read_text())
    assert record["fp32"]["passed"] and record["int8"]["passed"] and "label_flips" in record["int8"]
    assert Detector.from_pretrained(folder).backend_name == "onnx-int8"


def test_layer_scale_folding_keeps_the_function(tiny_trained_model):
    """The exported graphs fold gamma into pwconv2; the copy must compute what the model computes."""
    import torch
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(str(tiny_trained_model), use_safetensors=True).eval()
    blocks = [m for m in model.modules() if getattr(m, "layer_scale_parameter", None) is not None]
    assert blocks, "the tiny model has layer scales to fold"
    torch.manual_seed(0)
    for block in blocks:  # gamma far from 1 and a bias far from 0, so that a missed or doubled fold shows
        block.layer_scale_parameter.data.uniform_(0.2, 3.0)
        block.pwconv2.bias.data.uniform_(-0.5, 0.5)
    before = [b.layer_scale_parameter.detach().clone() for b in blocks]
    folded = onnx_export.fold_layer_scale(model)
    assert not any(getattr(m, "layer_scale_parameter", None) is not None for m in folded.modules())
    assert all(torch.equal(b.layer_scale_parameter, g) for b, g in zip(blocks, before, strict=True))  # original intact
    pixels = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        expected, got = model(pixel_values=pixels).logits, folded(pixel_values=pixels).logits
        unfolded_gamma_only = onnx_export.fold_layer_scale(model)
        for block in [m for m in unfolded_gamma_only.modules() if hasattr(m, "pwconv2")]:
            block.pwconv2.bias.zero_()  # a wrong fold (weight only) must be caught by the comparison
        wrong = unfolded_gamma_only(pixel_values=pixels).logits
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(wrong, expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def int8_graph(exported, tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """(fp32 file, int8 file, a calibration batch): `quantize_int8` alone, without the ROC-AUC check."""
    from transformers import AutoImageProcessor

    folder = tmp_path_factory.mktemp("int8") / "model"
    shutil.copytree(exported, folder)
    processor = AutoImageProcessor.from_pretrained(str(folder))
    calibration, _ = onnx_export.load_pixels(data_images(exported).calibration, processor, limit=8)
    onnx_export.quantize_int8(folder / "model.onnx", folder / "model_int8.onnx", calibration)
    return folder / "model.onnx", folder / "model_int8.onnx", calibration[0].numpy()


def test_int8_graph_keeps_matmul_outputs_fp32(int8_graph):
    """The fast int8 graph: int8 MatMul inputs, fp32 MatMul outputs (no requantize), tanh GELU, no layer-scale Mul."""
    import onnx

    graph = onnx.load(str(int8_graph[1])).graph
    ops = [n.op_type for n in graph.node]
    producer = {out: n.op_type for n in graph.node for out in n.output}
    consumers = {name: [n.op_type for n in graph.node if name in n.input] for n in graph.node for name in n.output}
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    assert matmuls and "Erf" not in ops and ops.count("FastGelu") == len(matmuls) // 2
    assert "Mul" not in ops  # GELU's Muls became FastGelu, the layer scale's was folded into pwconv2
    for node in matmuls:
        assert [producer.get(name) for name in node.input] == ["DequantizeLinear", "DequantizeLinear"]
        assert "QuantizeLinear" not in consumers[node.output[0]]


def test_operator_profile_shows_the_int8_gemm(int8_graph):
    """`benchmark.py predict --profile`: per-operator CPU time; in int8, MatMuls run as MatMulIntegerToFloat."""
    from benchmarks.predict import format_profile, profile_operators

    fp32_file, int8_file, pixels = int8_graph
    fp32 = profile_operators(fp32_file, pixels, runs=1)
    int8 = profile_operators(int8_file, pixels, runs=1)
    assert "MatMul" in fp32 and "MatMulIntegerToFloat" in int8 and "MatMul" not in int8
    assert all(ms > 0 for ms in [*fp32.values(), *int8.values()])
    assert list(int8.values()) == sorted(int8.values(), reverse=True)
    assert format_profile("onnx-int8", int8).startswith(f"onnx-int8: {sum(int8.values()):.1f} CPU ms/image")


def test_concurrent_onnx_runs_keep_rows_and_order(exported, tiny_trained_model):
    """Batches scored two at a time (one onnxruntime thread each) give the same rows, in input order."""
    from transformers import AutoConfig, AutoImageProcessor

    from modeling.inference.runners import OnnxRunner

    images = sorted(str(p) for p in (tiny_trained_model.parent / "data").rglob("*.jpg"))[:40]
    inputs = [*images[:13], str(exported / "missing.jpg"), *images[13:]]  # an error row in the middle
    config, processor = AutoConfig.from_pretrained(str(exported)), AutoImageProcessor.from_pretrained(str(exported))
    rows = {}
    for cores in (1, 3):
        runner = OnnxRunner(exported / "model.onnx", "fp32", num_threads=cores)
        assert runner.concurrent_runs == cores
        detector = Detector(runner, processor, config, exported, batch_size=4, num_workers=1)
        rows[cores] = list(detector.predict(inputs))
    assert [r.path for r in rows[3]] == [r.path for r in rows[1]] == inputs
    assert rows[3][13].error and "no such file" in rows[3][13].error
    scores = [(a.score_ai, b.score_ai) for a, b in zip(rows[1], rows[3], strict=True) if a.error is None]
    assert len(scores) == 40 and all(a == pytest.approx(b, abs=1e-6) for a, b in scores)
