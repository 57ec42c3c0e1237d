"""Benchmarks: the memory estimate's accounting, the throughput run, start-up on a full-size index, recipes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from accelerate.commands.config.config_args import ClusterConfig
from PIL import Image
from tiny_model import TinyModelTester
from transformers import ConvNextForImageClassification

from benchmarks import memory
from benchmarks import train as train_bench
from modeling.config import ModelArguments, parse_config
from modeling.data.demo import DemoSpec, make_demo_data
from modeling.training.batches import collate_fn

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import benchmark  # noqa: E402  (scripts/benchmark.py)

RECIPE = PROJECT_ROOT / "configs" / "convnext_tiny_artifact.yaml"
DEMO = PROJECT_ROOT / "configs" / "demo.yaml"
TINY = ["--hidden_sizes", *map(str, TinyModelTester.hidden_sizes),
        "--depths", *map(str, TinyModelTester.depths), "--patch_size", str(TinyModelTester.patch_size),
        "--self_fake_learned_steps", "5"]  # the demo's learned decoder, fitted in a blink
SIZE = 32


@pytest.fixture(scope="module")
def tiny_model() -> ConvNextForImageClassification:
    return TinyModelTester.model().train()


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "demo"
    make_demo_data(root, DemoSpec(images_per_source=8))
    return root


# --------------------------------------------------------------------------- saved-tensor accounting


def test_counter_counts_each_storage_once():
    counter = memory.SavedTensorCounter()
    base = torch.zeros(10, 10)
    for tensor in (base, base.view(100), base[2:], base.t()):
        counter.pack(tensor)
    counter.pack(torch.zeros(3))
    assert counter.result() == memory.SavedTensors(total=400 + 12, largest=400, count=2)


def test_counter_leaves_out_excluded_storages():
    weight = torch.zeros(50)
    counter = memory.SavedTensorCounter(exclude={weight.untyped_storage().data_ptr()})
    counter.pack(weight[:10])
    assert counter.result().total == 0


def test_layer_norm_follows_the_cuda_rule():
    """CPU autocast keeps layer_norm in fp16; CUDA's (and the measurement's) runs it in fp32."""
    x = torch.randn(2, 4, 8)
    with torch.autocast("cpu", dtype=torch.float16):
        half = F.layer_norm(x.half(), (8,))
        with memory.cuda_layer_norm_policy():
            full = torch.nn.LayerNorm(8)(x.half())
    assert half.dtype == torch.float16 and full.dtype == torch.float32
    assert F.layer_norm is not None and F.layer_norm.__name__ == "layer_norm"  # restored
    torch.testing.assert_close(full, F.layer_norm(x.half().float(), (8,)), atol=1e-3, rtol=1e-3)


def test_fp32_compute_saves_the_bytes_of_native_half(tiny_model):
    """The speed-up (half matmuls/convs computed in fp32) leaves every saved byte as a half kernel would."""
    fast = memory.measure_saved_tensors(tiny_model, 2, SIZE, torch.float16, fast=True)
    native = memory.measure_saved_tensors(tiny_model, 2, SIZE, torch.float16, fast=False)
    assert fast == native


def test_saved_bytes_are_affine_in_the_batch(tiny_model):
    config = memory.parse_run_config(str(DEMO), [*TINY, "--train_crop_size", str(SIZE), "--fp16", "true"])
    estimate = memory.estimate_memory(config, tiny_model, cuda_context_gib=0.5)
    measured = memory.measure_saved_tensors(tiny_model, 5, SIZE, torch.float16).total
    assert measured == pytest.approx(estimate.saved_fixed + 5 * estimate.saved_per_sample, abs=1)
    assert estimate.saved_fixed > 0  # the fp16 weight copies autocast caches


def test_half_precision_saves_less_per_sample_than_fp32_but_more_than_half(tiny_model):
    """Residual stream (fp32 after layer scale) and fp32 layer-norm inputs stay fp32 under autocast."""

    def per_sample(dtype):
        small, large = (memory.measure_saved_tensors(tiny_model, b, SIZE, dtype).total for b in (2, 4))
        return (large - small) / 2

    fp32, fp16 = per_sample(None), per_sample(torch.float16)
    assert 0.5 * fp32 < fp16 < 0.8 * fp32


def test_parameter_parts_and_largest_batch(tiny_model):
    config = memory.parse_run_config(str(DEMO), [*TINY, "--train_crop_size", str(SIZE), "--fp16", "true"])
    estimate = memory.estimate_memory(config, tiny_model, cuda_context_gib=0.5)
    params = sum(p.numel() for p in tiny_model.parameters())
    assert (estimate.weights, estimate.gradients, estimate.optimizer_state) == (4 * params, 4 * params, 8 * params)
    budget = round(0.6 * memory.GIB)
    largest = estimate.largest_batch(budget)
    assert largest > 0
    assert estimate.total(largest) <= budget < estimate.total(largest + 1)
    assert estimate.largest_batch(estimate.cuda_context) == 0  # the context alone fills it


def test_pretrained_name_builds_tiny_architecture_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ModelArguments(model_name_or_path="facebook/convnext-tiny-224", drop_path_rate=0.1)
    model, note = memory.build_model_offline(args)
    assert list(model.config.depths) == [3, 3, 9, 3] and list(model.config.hidden_sizes) == [96, 192, 384, 768]
    assert model.config.num_labels == 2 and model.config.drop_path_rate == 0.1
    assert "not found offline" in note


def test_local_checkpoint_architecture_is_used(tmp_path, tiny_model):
    tiny_model.config.save_pretrained(tmp_path)
    model, note = memory.build_model_offline(ModelArguments(model_name_or_path=str(tmp_path)))
    assert list(model.config.hidden_sizes) == [8, 16, 32, 64] and "local config" in note


def test_memory_command_prints_breakdown_and_verdict(capsys):
    argv = ["memory", "--config", str(DEMO), "--gpu_steps", "0", "--", *TINY, "--image_size", str(SIZE)]
    assert benchmark.main(argv) == 0
    out = capsys.readouterr().out
    for expected in ("weights (fp32)", "saved activations", "CUDA context", "estimated peak:", "fits 4 GB"):
        assert expected in out
    assert "largest per-device batch that fits 4 GB:" in out
    assert benchmark.main([*argv[:5], "--fail_above_gib", "0.01", *argv[5:]]) == 1


def test_memory_command_rejects_unknown_override(capsys):
    assert benchmark.main(["memory", "--config", str(DEMO), "--", "--no_such_key", "1"]) == 2


@pytest.mark.slow  # ConvNeXt-Tiny forward/backward at 200 px on CPU: about a minute
def test_recipe_estimate_is_within_3_5_gib():
    config = memory.parse_run_config(str(RECIPE))
    model, _ = memory.build_model_offline(config.model)
    estimate = memory.estimate_memory(config, model, memory.DEFAULT_CUDA_CONTEXT_GIB)
    batch = config.training.per_device_train_batch_size
    assert estimate.total(batch, config.training.per_device_eval_batch_size) <= 3.5 * memory.GIB
    assert estimate.largest_batch(4 * 10**9) >= batch


# --------------------------------------------------------------------------- throughput


def tiny_run_config(demo_root: Path, tmp_path: Path, workers: int = 1):
    return memory.parse_run_config(
        str(DEMO),
        [*TINY, "--image_size", str(SIZE), "--train_crop_size", str(SIZE), "--data_dir", str(demo_root),
         "--demo_data", "false", "--output_dir", str(tmp_path / "out"), "--per_device_train_batch_size", "4",
         "--dataloader_num_workers", str(workers)],
    )  # fmt: skip


def test_train_loader_is_the_trainers(demo_root, tmp_path):
    config = tiny_run_config(demo_root, tmp_path, workers=1)
    _, loader = train_bench.build_train_loader(config, tmp_path)
    assert loader.num_workers == 1 and loader.collate_fn is collate_fn
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (4, 3, SIZE, SIZE) and batch["labels"].shape == (4,)


def test_throughput_measures_data_and_synthetic(demo_root, tmp_path, capsys):
    config = tiny_run_config(demo_root, tmp_path, workers=1)
    real, fake = train_bench.measure_throughput(config, steps=2, rounds=2)
    assert real.images == fake.images == 2 * 2 * 4
    assert len(real.rounds) == len(fake.rounds) == 2
    assert real.images_per_s > 0 and fake.images_per_s > 0 and 0 <= real.data_wait <= real.seconds
    report = "\n".join(train_bench.throughput_report(config, real, fake))
    assert f"ratio data/synthetic: {real.images_per_s / fake.images_per_s:.2f}" in report


def test_tiny_override_replaces_the_pretrained_network():
    config = memory.parse_run_config(str(RECIPE))
    train_bench.apply_tiny_model(config)
    assert config.model.model_name_or_path is None
    assert config.model.hidden_sizes == train_bench.TINY_MODEL["hidden_sizes"]
    assert config.training.dataloader_num_workers == 4  # the recipe's pipeline is kept


# --------------------------------------------------------------------------- full dataset start-up


def test_all_rows_start_up_lazily_without_images(tmp_path):
    """num_real = num_ai = 0 takes every row; nothing needs the image files until a batch is drawn."""
    root = tmp_path / "artifact"
    written = train_bench.write_synthetic_index(root, 5000)
    assert not list(root.rglob("*.jpg"))
    config = memory.parse_run_config(str(RECIPE))
    times = train_bench.measure_startup(config, root, tmp_path)
    assert times["rows"] == written
    assert times["train rows"] == pytest.approx(0.8 * written, rel=0.02)
    manifest_lines = (tmp_path / "manifest.csv").read_text().count("\n") - 1
    assert manifest_lines == written
    assert all(t >= 0 for t in times.values())
    report = "\n".join(train_bench.startup_report(times))
    assert f"{written:,} rows" in report and "total before the first step" in report


def test_file_checks_are_timed_on_real_images(demo_root, tmp_path):
    config = memory.parse_run_config(str(RECIPE))
    files, seconds = train_bench.measure_file_checks(config, demo_root, tmp_path)
    assert files == len(list(demo_root.rglob("*.jpg"))) and seconds > 0
    assert (tmp_path / "bad_files.csv").is_file()  # training's own validation pass ran
    times = {"rows": 1e6, "train rows": 8e5, "read_index (every metadata.csv)": 1.0, "build_manifest": 2.0,
             "file check files": files, "file check seconds": seconds}  # fmt: skip
    report = "\n".join(train_bench.startup_report(times))
    assert "ms per file" in report
    assert report.split("total before the first step")[1].split("\n")[0].strip() == "2.0 s"  # file checks apart


# --------------------------------------------------------------------------- the recipe


def test_recipe_parses_with_known_keys():
    config = parse_config(["--config", str(RECIPE)])
    args = config.training
    assert config.model.model_name_or_path == "facebook/convnext-tiny-224"
    assert (config.model.processor, config.model.image_size) == ("crop", 200)
    assert (config.data.num_real, config.data.num_ai) == (100_000, 100_000) and config.data.max_per_source
    assert args.num_train_epochs == 30 and args.fp16 and args.seed == 42
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 128
    assert args.metric_for_best_model == "roc_auc" and args.load_best_model_at_end
    assert str(args.eval_strategy.value) == str(args.save_strategy.value) == "epoch"
    assert isinstance(args.learning_rate, float) and args.dataloader_num_workers > 0


ACCELERATE_CONFIGS = {  # name -> (distributed_type, num_processes, num_machines)
    "single_gpu_fp16": ("NO", 1, 1),
    "multi_gpu_ddp": ("MULTI_GPU", 2, 1),
    "multi_node_ddp": ("MULTI_GPU", 8, 2),
}


@pytest.mark.parametrize("name, expected", ACCELERATE_CONFIGS.items())
def test_accelerate_configs_load(name, expected):
    config = ClusterConfig.from_yaml_file(str(PROJECT_ROOT / "configs" / "accelerate" / f"{name}.yaml"))
    assert (config.distributed_type.value, config.num_processes, config.num_machines) == expected
    assert config.mixed_precision == "fp16" and not config.use_cpu
    if config.num_machines > 1:
        assert config.main_process_ip and config.main_process_port


def test_full_dataset_overrides_lift_subset_and_cap():
    """The README's all-2.5M-images command: every row, no per-source cap, no per-file passes."""
    argv = ["--config", str(RECIPE), "--num_real", "0", "--num_ai", "0", "--max_per_source", "0",
            "--validate_files", "false", "--dedup", "false"]  # fmt: skip
    data = parse_config(argv).data
    assert (data.num_real, data.num_ai, data.max_per_source) == (0, 0, None)
    assert not data.validate_files and not data.dedup


def test_demo_benchmark_trains_each_seed_and_summarises(tmp_path, monkeypatch, capsys):
    """Two tiny seeds on generated demo data: a row per seed read from each run's own result files."""
    monkeypatch.chdir(tmp_path)  # the demo's data folder, data/demo, is made here
    tiny = [*TINY, "--image_size", "32", "--train_crop_size", "32", "--demo_images_per_source", "8",
            "--max_steps", "2", "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps",
            "--save_steps", "1", "--dataloader_num_workers", "0", "--export_onnx", "false"]
    assert benchmark.main(["demo", "--seeds", "2", "--output_dir", "bench", "--", *tiny]) == 0
    report = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert [r["seed"] for r in report["runs"]] == [0, 1]
    for row in report["runs"]:
        seen = json.loads((tmp_path / "bench" / f"seed_{row['seed']}" / "test_results.json").read_text())
        assert row["seen_roc_auc"] == seen["test_roc_auc"] and row["unseen_roc_auc"] is not None
        assert row["wall_s"] > 0
    values = [r["seen_roc_auc"] for r in report["runs"]]
    assert report["summary"]["seen_roc_auc"]["min"] == min(values)
    assert "median" in capsys.readouterr().out


def test_portrait_command_scores_the_runs_own_test_reals_at_each_radius(tiny_trained_model, capsys):
    """One row per radius scale after the plain one; the plain row's share called ai is the stored threshold's verdict
    on the run's real test images, recomputed here from the detector's own scores."""
    from modeling.data.manifest import load_manifest
    from modeling.inference.predictor import Detector
    from modeling.labels import AI_LABEL_ID
    from modeling.run_folder import MANIFEST, RunFolder

    assert benchmark.main(["portrait", "--model", str(tiny_trained_model), "--scales", "0.5", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    manifest = load_manifest(tiny_trained_model / MANIFEST)
    paths = manifest[(manifest["split"] == "test") & (manifest["label"] != AI_LABEL_ID)]["path"]
    assert lines[0].startswith(f"{len(paths)} real test images")
    assert [line.split()[0] for line in lines[2:]] == ["plain", "0.5", "2"]
    detector = Detector.from_pretrained(tiny_trained_model, backend="torch", provenance=False)
    data_dir = Path(RunFolder(tiny_trained_model).data_dir())
    rows = detector.predict_images([Image.open(data_dir / path).convert("RGB") for path in paths])
    called = np.mean([row.score_ai >= detector.threshold for row in rows])
    assert float(lines[2].split()[1]) == pytest.approx(called, abs=1e-3)
    assert all(0.0 <= float(line.split()[1]) <= 1.0 for line in lines[2:])
