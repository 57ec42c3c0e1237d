"""End to end: a tiny training on generated ArtiFact-layout data, loaded back the ways users load it."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from tiny_model import TinyModelTester
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

from modeling.data.demo import DemoSpec, make_demo_data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import train as train_script  # noqa: E402


def tiny_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return TinyModelTester.train_argv(data, out, "--train_crop_size", "48", "--num_train_epochs", "1",
                                      "--logging_steps", "1", "--holdout_generators", "latent_decoder", *extra)


ONNX = ("--export_onnx", "true", "--export_int8", "true")  # the demo config makes no int8; this run checks it


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    data = make_demo_data(base / "data", DemoSpec(images_per_source=10), progress=False)
    out = base / "out"
    rc = train_script.main(tiny_argv(data, out, *ONNX))
    assert rc == 0
    return data, out


def test_output_folder_is_complete_and_has_no_pickles(tiny_run):
    _, out = tiny_run
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "training_config.yaml",
                 "manifest.csv", "validation_results.json", "test_results.json", "test_unseen_results.json"):
        assert (out / name).is_file(), name
    pickles = [p for p in out.rglob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".ckpt"}]
    assert pickles == []
    assert not list(out.glob("checkpoint-*"))  # removed after a successful run
    test = json.loads((out / "test_results.json").read_text())
    assert 0.0 <= test["test_roc_auc"] <= 1.0 and 0.0 <= test["test_accuracy"] <= 1.0


def test_resolved_config_records_overrides(tiny_run):
    _, out = tiny_run
    resolved = yaml.safe_load((out / "training_config.yaml").read_text())
    assert resolved["hidden_sizes"] == [8, 16, 32, 64] and resolved["image_size"] == 64
    assert resolved["output_dir"] == str(out)


def test_heldout_generator_never_trained_on(tiny_run):
    _, out = tiny_run
    import pandas as pd

    manifest = pd.read_csv(out / "manifest.csv")
    held = manifest[manifest["source"] == "latent_decoder"]
    assert len(held) > 0 and set(held["split"]) == {"test"} and held["heldout"].all()


def test_loads_with_auto_classes_and_pipeline(tiny_run):
    data, out = tiny_run
    model = AutoModelForImageClassification.from_pretrained(out)
    assert model.config.id2label == {0: "real", 1: "ai"}
    processor = AutoImageProcessor.from_pretrained(out)
    image_path = next((data / "scenes").rglob("*.jpg"))
    image = Image.open(image_path)
    with torch.no_grad():
        probs = model(**processor(image, return_tensors="pt")).logits.softmax(-1)[0]

    classifier = pipeline("image-classification", model=str(out))
    result = classifier(str(image_path))
    assert {r["label"] for r in result} == {"real", "ai"}
    by_label = {r["label"]: r["score"] for r in result}
    assert by_label["ai"] == pytest.approx(probs[1].item(), abs=1e-5)


def test_missing_data_folder_fails_clearly(tmp_path, caplog):
    missing = tmp_path / "no_such_dir"
    with caplog.at_level(logging.ERROR):
        rc = train_script.main(tiny_argv(missing, tmp_path / "o"))
    assert rc == 2
    assert str(missing) in caplog.text


def test_misspelt_key_fails_clearly(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        rc = train_script.main(tiny_argv(tmp_path, tmp_path / "o", "--learning_rat", "0.1"))
    assert rc == 2
    assert "learning_rat" in caplog.text


def test_training_ships_the_checked_fast_path(tiny_run):
    """The end of training writes ONNX fp32 and int8 with passing checks; prediction picks int8 by itself."""
    from modeling.inference.predictor import Detector

    _, out = tiny_run
    record = json.loads((out / "onnx_export.json").read_text())
    assert record["fp32"]["passed"] and (out / "model.onnx").is_file()
    assert record["int8"]["passed"] == (out / "model_int8.onnx").is_file()
    if record["int8"]["passed"]:  # a two-step model can fail the int8 check honestly; then fp32 is the path
        assert "roc_auc_int8" in record["int8"]
    expected = "onnx-int8" if record["int8"]["passed"] else "onnx-fp32"
    assert Detector.from_pretrained(out, num_workers=0).backend_name == expected
    # the fp32 export comes before the test evaluation, which scores with it (one CPU process)
    assert json.loads((out / "eval" / "metrics.json").read_text())["scoring_backend"] == "onnx-fp32"


def test_a_users_data_folder_is_never_written(tmp_path):
    """The demo config (demo_data: true) pointed at a user's folder: it is read, not a byte changes, and
    the resolved config says no demo data was generated."""
    import hashlib
    import shutil

    from modeling.data.demo import DemoSpec, make_demo_data

    generated = make_demo_data(tmp_path / "generated", DemoSpec(images_per_source=6), progress=False)
    user = tmp_path / "my_photos"
    for label, sources in (("real", ("scenes", "textures")), ("ai", ("upconv_gan", "latent_decoder"))):
        for source in sources:
            shutil.copytree(generated / source, user / label / source, ignore=shutil.ignore_patterns("*.csv"))

    def listing() -> dict[str, str]:
        return {str(p.relative_to(user)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(user.rglob("*"))
                if p.is_file()}

    before = listing()
    argv = tiny_argv(user, tmp_path / "out", "--demo_data", "true", "--holdout_generators", "none", "--max_steps", "1",
                     "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false")
    assert train_script.main(argv) == 0
    assert listing() == before  # same files, same bytes: nothing generated, moved or deleted
    assert yaml.safe_load((tmp_path / "out" / "training_config.yaml").read_text())["demo_data"] is False


def test_demo_data_goes_only_into_the_demos_own_folder(tmp_path, monkeypatch):
    from modeling.data.demo import DEMO_DATA_DIR, may_generate_into

    monkeypatch.chdir(tmp_path)
    assert may_generate_into(DEMO_DATA_DIR)  # absent: the demo's first run
    assert not may_generate_into(tmp_path / "elsewhere")
    DEMO_DATA_DIR.mkdir(parents=True)
    (DEMO_DATA_DIR / "mine.jpg").write_bytes(b"a user's file")
    assert not may_generate_into(DEMO_DATA_DIR)  # data/demo holding something else is not the demo's


def test_balanced_loss_weights_each_label_half():
    from modeling.training.losses import WeightedCrossEntropy, balanced_weights

    weights = balanced_weights((20.0, 100.0))  # 1:5 real:ai, as self-fakes make of a 1:2 folder
    assert weights == pytest.approx((3.0, 0.6))
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 1])
    loss = WeightedCrossEntropy(weights)
    per_image = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    expected = (per_image * torch.tensor([3.0, 0.6, 0.6, 0.6])).mean()
    assert float(loss({"logits": logits}, labels)) == pytest.approx(float(expected))
    # under gradient accumulation the Trainer passes the label count of all micro-batches: the sum is divided by it
    assert float(loss({"logits": logits}, labels, num_items_in_batch=8)) == pytest.approx(float(expected) / 2)
    unweighted = WeightedCrossEntropy((1.0, 1.0))({"logits": logits}, labels)
    assert float(unweighted) == pytest.approx(float(per_image.mean()))


def test_training_weights_follow_the_split_and_the_self_fakes(tmp_path, caplog):
    import pandas as pd

    from modeling.config import ConfigError, parse_config
    from modeling.training.data import training_label_weights

    manifest = pd.DataFrame({"split": ["train"] * 6 + ["test"] * 4, "label": [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]})
    config = parse_config(["--config", "configs/demo.yaml", "--self_fake_prob", "0.5"])
    with caplog.at_level(logging.INFO):
        weights = training_label_weights(config, manifest)  # train: 2 real, 4 ai -> 1 real, 5 ai per epoch
    assert weights == pytest.approx((3.0, 0.6)) and "loss weights real 3.000, ai 0.600" in caplog.text
    off = parse_config(["--config", "configs/demo.yaml", "--class_weighting", "none"])
    assert training_label_weights(off, manifest) is None
    with pytest.raises(ConfigError, match="class_weighting"):
        parse_config(["--config", "configs/demo.yaml", "--class_weighting", "inverse"])
