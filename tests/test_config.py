"""Configuration: YAML + command-line overrides, typos fail loudly, the resolved config reloads."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_script

from modeling.config import ConfigError, parse_config, save_config

ROOT = Path(__file__).resolve().parent.parent
DEMO = str(ROOT / "configs" / "demo.yaml")


def test_demo_config_is_the_training_scripts_default_and_parses():
    config = parse_config([], default_config=load_script("train").DEFAULT_CONFIG)
    assert config.config_path == ROOT / "configs" / "demo.yaml"
    assert config.model.hidden_sizes and config.model.model_name_or_path is None
    assert config.training.metric_for_best_model == "roc_auc"
    assert config.training.output_dir == "outputs/demo"


def test_the_library_asks_for_a_config_instead_of_guessing_a_path():
    """An installed wheel has no configs/ folder beside it: without --config the message says what to pass."""
    with pytest.raises(ConfigError, match="no --config given"):
        parse_config([])


def test_command_line_overrides_yaml():
    config = parse_config(["--config", DEMO, "--learning_rate", "0.5", "--hidden_sizes", "4", "8", "--depths", "1",
                           "1"])
    assert config.training.learning_rate == 0.5
    assert config.model.hidden_sizes == [4, 8]


def test_yaml_scientific_notation_string_becomes_float(tmp_path):
    # YAML reads `5e-5` (no dot) as a string; the parser must still give a float
    cfg = tmp_path / "c.yaml"
    cfg.write_text("hidden_sizes: [4]\ndepths: [1]\nlearning_rate: 5e-5\n")
    assert parse_config(["--config", str(cfg)]).training.learning_rate == pytest.approx(5e-5)


def test_misspelt_yaml_key_names_file_and_suggests(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("hidden_sizes: [4]\ndepths: [1]\nlearnin_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        parse_config(["--config", str(cfg)])
    assert str(cfg) in str(err.value) and "learnin_rate" in str(err.value)
    assert "learning_rate" in str(err.value)  # the suggestion


def test_misspelt_command_line_flag_fails():
    with pytest.raises(ConfigError, match="num_train_epoch"):
        parse_config(["--config", DEMO, "--num_train_epoch", "3"])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        parse_config(["--config", str(tmp_path / "nope.yaml")])


def test_model_source_must_be_unambiguous(tmp_path):
    cfg = tmp_path / "both.yaml"
    cfg.write_text("model_name_or_path: facebook/convnext-tiny-224\nhidden_sizes: [4]\ndepths: [1]\n")
    with pytest.raises(ConfigError, match="not both"):
        parse_config(["--config", str(cfg)])


def test_real_recipe_parses():
    config = parse_config(["--config", str(ROOT / "configs" / "convnext_tiny_artifact.yaml")])
    assert config.model.model_name_or_path == "facebook/convnext-tiny-224"
    assert config.training.num_train_epochs == 30
    assert config.training.fp16


def test_resolved_config_reloads(tmp_path):
    config = parse_config(["--config", DEMO, "--learning_rate", "0.25"])
    save_config(config, tmp_path / "resolved.yaml")
    again = parse_config(["--config", str(tmp_path / "resolved.yaml")])
    assert again.training.learning_rate == 0.25
    assert again.model == config.model and again.data == config.data and again.augment == config.augment


def test_threshold_rule_from_yaml_and_command_line(tmp_path, caplog):
    """decision_threshold_rule is a run setting: default target_fpr=0.05, set in YAML, overridden on the CLI,
    and a bad rule stops train.py before any data is read."""
    assert parse_config(["--config", DEMO]).run.decision_threshold_rule == "target_fpr=0.05"
    cfg = tmp_path / "rule.yaml"
    cfg.write_text("hidden_sizes: [4]\ndepths: [1]\ndecision_threshold_rule: max_accuracy\n")
    assert parse_config(["--config", str(cfg)]).run.decision_threshold_rule == "max_accuracy"
    config = parse_config(["--config", str(cfg), "--decision_threshold_rule", "target_fpr=0.01"])
    assert config.run.decision_threshold_rule == "target_fpr=0.01"
    from conftest import load_script

    argv = ["--config", str(cfg), "--decision_threshold_rule", "fpr=5%", "--data_dir", str(tmp_path / "none"),
            "--output_dir", str(tmp_path / "out")]
    assert load_script("train").main(argv) == 2
    assert "decision_threshold_rule" in caplog.text and not (tmp_path / "out" / "manifest.csv").exists()
