"""The detector network: a stock ConvNext whose stem may start as a high-pass filter bank."""

from __future__ import annotations

import json

import torch
from tiny_model import DEMO_CONFIG
from transformers import AutoModelForImageClassification, ConvNextConfig

from modeling.config import parse_config
from modeling.model import dct_basis, highpass_filter_bank
from modeling.training.builders import build_model


def test_dct_basis_is_orthonormal_and_starts_with_the_mean():
    for k in (2, 4):
        atoms = dct_basis(k).reshape(k * k, -1)
        torch.testing.assert_close(atoms @ atoms.T, torch.eye(k * k, dtype=torch.float64))
        assert torch.allclose(atoms[0], atoms[0][0].expand(k * k))  # constant atom
        assert torch.allclose(atoms[1:].sum(dim=1), torch.zeros(k * k - 1, dtype=torch.float64), atol=1e-12)


def test_highpass_bank_puts_the_trace_first():
    """A patch of mean colour plus a small zero-sum (period-2) pattern: the stock init sees the colour,
    the high-pass bank sees the pattern."""
    torch.manual_seed(0)
    bank = highpass_filter_bank(48, 3, 2, gain=16.0, std=0.2).reshape(48, -1)
    stock = torch.randn(48, 12) * 0.02
    colour = torch.tensor([0.6, -0.2, 0.3]).repeat_interleave(4)  # (c, 2x2) flattened, per-channel constant
    trace = 0.02 * torch.tensor([1.0, -1.0, -1.0, 1.0]).repeat(3)  # a checkerboard, zero-sum per channel

    def trace_share(w: torch.Tensor) -> float:
        return float((w @ trace).norm() ** 2 / ((w @ colour).norm() ** 2 + (w @ trace).norm() ** 2))

    assert trace_share(stock) < 0.01 < 0.2 < trace_share(bank)
    assert abs(float(bank.std()) - 0.2) < 1e-6


def test_highpass_stem_saves_as_a_stock_model(tmp_path):
    config = parse_config(["--config", str(DEMO_CONFIG), "--stem_init", "highpass", "--hidden_sizes", "16", "32",
                           "--depths", "1", "1"])
    model = build_model(config.model)
    stem = model.convnext.embeddings.patch_embeddings.weight
    assert stem.shape[1:] == (3, 2, 2)
    assert (stem.sum(dim=(2, 3)).abs().mean() < stem.abs().mean())  # mostly zero-sum filters
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "convnext" and not any("stem" in key for key in saved)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert type(reloaded.config) is ConvNextConfig
    torch.testing.assert_close(reloaded.convnext.embeddings.patch_embeddings.weight, stem)


def test_fan_in_init_scales_every_stage_layer_and_saves_as_a_stock_model(tmp_path):
    """layer_init fan_in: each conv/linear of the stages is N(0, gain^2 / fan_in), so GELU starts in its nonlinear
    range (transformers' N(0, 0.02) leaves the MLP of a 48-channel block nearly linear); stem and head keep theirs."""
    argv = ["--config", str(DEMO_CONFIG), "--stem_init", "highpass", "--hidden_sizes", "48", "96", "--depths", "1", "1",
            "--patch_size", "2"]
    torch.manual_seed(0)
    stock = build_model(parse_config([*argv, "--layer_init", "stock"]).model)
    torch.manual_seed(0)
    model = build_model(parse_config([*argv, "--layer_init", "fan_in", "--layer_init_gain", "1.414"]).model)
    block = model.convnext.encoder.stages[0].layers[0].requires_grad_(False)
    for layer, fan_in in ((block.dwconv, 49), (block.pwconv1, 48), (block.pwconv2, 192)):
        assert abs(float(layer.weight.std()) - 1.414 / fan_in**0.5) < 0.1 * 1.414 / fan_in**0.5
    down = model.convnext.encoder.stages[1].downsampling_layer[1]
    assert abs(float(down.weight.std()) - 1.414 / (48 * 4) ** 0.5) < 0.01
    assert float(stock.convnext.encoder.stages[0].layers[0].pwconv1.weight.std()) < 0.025  # the stock 0.02
    torch.testing.assert_close(model.classifier.weight, stock.classifier.weight)
    stem = model.convnext.embeddings.patch_embeddings.weight
    stock_std = float(stock.convnext.embeddings.patch_embeddings.weight.std())
    assert abs(float(stem.std()) - stock_std) < 1e-5 and stem.sum(dim=(2, 3)).abs().mean() < stem.abs().mean()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert not any("init" in key and key != "layer_scale_init_value" and key != "initializer_range" for key in saved)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded.convnext.encoder.stages[0].layers[0].pwconv1.weight, block.pwconv1.weight)


def test_layer_init_is_checked():
    import pytest

    from modeling.config import ConfigError

    with pytest.raises(ConfigError, match="layer_init"):
        parse_config(["--config", str(DEMO_CONFIG), "--layer_init", "xavier"])
    with pytest.raises(ConfigError, match="layer_init"):
        parse_config(["--config", "configs/convnext_tiny_artifact.yaml", "--layer_init", "fan_in"])
