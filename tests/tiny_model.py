"""The one tiny model of the test suite, like transformers' `ConvNextModelTester`: four stages of 8 to
64 channels, one block each, patch 4, 64 px. Tests that need another size say so with overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import ConvNextConfig, ConvNextForImageClassification

from modeling.labels import ID2LABEL, LABEL2ID
from modeling.processing import build_image_processor

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


class TinyModelTester:
    hidden_sizes = (8, 16, 32, 64)
    depths = (1, 1, 1, 1)
    patch_size = 4
    image_size = 64

    @classmethod
    def config(cls, **overrides: Any) -> ConvNextConfig:
        values = dict(hidden_sizes=list(cls.hidden_sizes), depths=list(cls.depths), patch_size=cls.patch_size,
                      image_size=cls.image_size, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
        return ConvNextConfig(**{**values, **overrides})

    @classmethod
    def model(cls, seed: int = 0, head_scale: float = 1.0, **overrides: Any) -> ConvNextForImageClassification:
        """Random init; `head_scale` > 1 spreads the scores over (0, 1) instead of near 0.5."""
        torch.manual_seed(seed)
        model = ConvNextForImageClassification(cls.config(**overrides)).eval()
        with torch.no_grad():
            model.classifier.weight.mul_(head_scale)
        return model

    @classmethod
    def save(cls, folder: Path, seed: int = 0, head_scale: float = 1.0, **overrides: Any) -> Path:
        """A model folder as training writes it: safetensors weights and the crop processor."""
        model = cls.model(seed, head_scale, **overrides)
        model.save_pretrained(folder)
        build_image_processor("crop", image_size=model.config.image_size).save_pretrained(folder)
        return folder

    @classmethod
    def train_argv(cls, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
        """scripts/train.py arguments for a seconds-long CPU run of the demo config on generated data;
        `extra` flags come last, so they override these."""
        return [
            "--config", str(DEMO_CONFIG), "--data_dir", str(data_dir), "--demo_data", "false",
            "--output_dir", str(output_dir),
            "--hidden_sizes", *map(str, cls.hidden_sizes), "--depths", *map(str, cls.depths),
            "--patch_size", str(cls.patch_size), "--image_size", str(cls.image_size),
            "--train_crop_size", str(cls.image_size),
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--dataloader_num_workers", "0",
            "--export_onnx", "false",  # tests/test_training.py checks the end-of-training export once
            "--self_fake_learned_steps", "5", "--self_fake_learned_images", "16",  # the demo's learned decoders, cheap:
            "--self_fake_learned_archs", "nearest_conv", "--self_fake_learned_factors", "4",  # one, fitted in-process
            "--evaluate_stress", "false",  # tests/test_stress.py runs the stress test on its own
            "--camera_prob", "0", "--camera_validation", "false",  # and the camera processing, so splits stay plain
            *extra,
        ]  # fmt: skip
