"""Training's auxiliary source loss: classes from the split, labels through the batch transform, the loss the
Trainer adds, and a saved model that stays a stock two-label ConvNext."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from tiny_model import TinyModelTester
from transformers import TrainingArguments

from modeling.config import ConfigError, parse_config
from modeling.data.demo import DemoSpec, make_demo_data
from modeling.processing import build_image_processor
from modeling.training.batches import BatchTransform, collate_fn
from modeling.training.data import build_source_head
from modeling.training.run import prepare_arguments
from modeling.training.source_loss import (
    REAL_CLASS,
    SELF_FAKE,
    SOURCE_KEY,
    SourceHead,
    SourceLabeller,
    source_class_counts,
    source_classes,
)
from modeling.training.trainer import ReliableTrainer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import train as train_script  # noqa: E402

MANIFEST = pd.DataFrame({
    "split": ["train"] * 7 + ["test"] * 2,
    "label": [0, 0, 0, 0, 1, 1, 1, 0, 1],
    "source": ["coco", "coco", "afhq", "afhq", "stylegan", "ddpm", "ddpm", "coco", "glide"],
})  # fmt: skip


def test_classes_are_real_then_each_training_ai_source_then_the_self_fakes():
    classes = source_classes(MANIFEST)
    assert classes == {"ddpm": 1, "stylegan": 2, SELF_FAKE: 3}  # glide is test-only: no class
    # 4 reals of which a quarter become self-fakes; ddpm 2, stylegan 1
    assert source_class_counts(MANIFEST, classes, 0.25) == pytest.approx([3.0, 2.0, 1.0, 1.0])


def test_labeller_keeps_reals_real_and_names_self_fakes_and_sources():
    label = SourceLabeller(source_classes(MANIFEST))
    assert label("coco", 0, 0) == REAL_CLASS
    assert label("coco", 0, 1) == 3  # a real made into a self-fake
    assert label("ddpm", 1, 1) == 1 and label("stylegan", 1, 1) == 2
    with pytest.raises(KeyError, match="glide"):
        label("glide", 1, 1)


def _png(colour: tuple[int, int, int]) -> dict:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def test_batch_transform_carries_source_classes_past_self_fakes_and_unreadable_files():
    made = []

    def first_real_becomes_fake(image, label):
        if label == 0 and not made:
            made.append(image)
            return image, 1
        return image, label

    transform = BatchTransform(build_image_processor("crop", image_size=16), sample_transform=first_real_becomes_fake,
                               source_labeller=SourceLabeller(source_classes(MANIFEST)))
    batch = {"image": [_png((10, 20, 30)), {"bytes": b"not an image", "path": None}, _png((1, 2, 3)),
                       _png((9, 9, 9))],
             "label": [0, 1, 0, 1], "source": ["coco", "ddpm", "afhq", "stylegan"]}
    out = transform(batch)
    assert out["labels"] == [1, 1, 0, 1] and out[SOURCE_KEY] == [3, None, REAL_CLASS, 2]
    rows = [dict(zip(out, values, strict=True)) for values in zip(*out.values(), strict=True)]
    collated = collate_fn(rows)  # the unreadable row is dropped from labels and source classes alike
    assert collated["labels"].tolist() == [1, 0, 1] and collated[SOURCE_KEY].tolist() == [3, 0, 2]
    plain = BatchTransform(build_image_processor("crop", image_size=16))(batch)
    assert SOURCE_KEY not in plain  # evaluation batches carry none


def test_trainer_adds_the_weighted_source_loss_and_trains_the_head(tmp_path):
    model = TinyModelTester.model(seed=0).train()
    head = SourceHead(model.config.hidden_sizes[-1], [1.0, 2.0, 0.5], weight=0.7)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", learning_rate=0.1, use_cpu=True)
    trainer = ReliableTrainer(model=model, args=args, source_head=head)
    pixels = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    labels, sources = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 2, 0])
    loss = trainer.compute_loss(model, {"pixel_values": pixels, "labels": labels, SOURCE_KEY: sources})
    with torch.no_grad():
        pooled = model.convnext(pixel_values=pixels).pooler_output
        binary = F.cross_entropy(model.classifier(pooled), labels)
        weights = torch.tensor([1.0, 2.0, 0.5])
        per_image = F.cross_entropy(head.linear(pooled), sources, weight=weights, reduction="none")
        expected = binary + 0.7 * per_image.mean()  # weighted like WeightedCrossEntropy: a mean over images
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    before = head.linear.weight.detach().clone()
    trainer.create_optimizer()
    loss.backward()
    trainer.optimizer.step()
    assert not torch.equal(before, head.linear.weight.detach())  # the head is in the optimizer
    groups = len(trainer.optimizer.param_groups)
    trainer.create_optimizer()  # a second call adds nothing
    assert len(trainer.optimizer.param_groups) == groups


def test_source_loss_weight_is_checked_and_one_process_only(monkeypatch):
    with pytest.raises(ConfigError, match="source_loss_weight"):
        parse_config(["--config", "configs/demo.yaml", "--source_loss_weight", "-1"])
    config = parse_config(["--config", "configs/demo.yaml", "--source_loss_weight", "1"])
    manifest = MANIFEST.assign(split=["train"] * 9)
    head = build_source_head(config, manifest, hidden_size=8)
    assert head.linear.out_features == 5  # real, ddpm, glide, stylegan, the self-fakes
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    with pytest.raises(ConfigError, match="one process"):
        prepare_arguments(config)  # refused before any data is made
    off = parse_config(["--config", "configs/demo.yaml", "--source_loss_weight", "0"])
    assert build_source_head(off, manifest, hidden_size=8) is None


def test_a_run_with_the_source_loss_saves_a_stock_two_label_model(tmp_path):
    data = make_demo_data(tmp_path / "data", DemoSpec(images_per_source=6), progress=False)
    out = tmp_path / "out"
    argv = TinyModelTester.train_argv(data, out, "--num_train_epochs", "1", "--source_loss_weight", "1",
                                      "--holdout_generators", "latent_decoder")
    assert train_script.main(argv) == 0
    weights = load_file(out / "model.safetensors")
    assert weights["classifier.weight"].shape[0] == 2 and not any("source" in key for key in weights)
