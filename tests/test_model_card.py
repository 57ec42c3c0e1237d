"""The model card's template: it renders for a folder that holds only the model, and Python gives it every
name it uses. The full card (model-index, every section) is checked on a trained folder in test_hub.py."""

from __future__ import annotations

import configparser
from pathlib import Path

import jinja2
import jinja2.meta
from huggingface_hub import ModelCard
from tiny_model import TinyModelTester

from modeling.release import model_card

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def test_card_without_evaluation_or_calibration_says_so(tmp_path: Path) -> None:
    folder = TinyModelTester.save(tmp_path / "model")  # weights and processor only: no eval/, no calibration
    card = ModelCard.load(model_card.write_model_card(folder, "someone/bare"))
    text = card.text
    assert card.data.eval_results is None and "model-index" not in card.content  # no figures to report
    for sentence in ("Scores are not calibrated; the decision threshold is 0.5.",
                     "This folder holds no evaluation (`eval/metrics.json`); run `scripts/evaluate.py`.",
                     "Not calibrated (no `calibration.json`).",
                     "blur remove the high-frequency traces it relies on (no robustness evaluation in this folder).",
                     "No `training_config.yaml` in this folder.",
                     "(no run_info.json in this folder)",
                     'model="someone/bare"'):
        assert sentence in text, sentence
    for absent in ("### Per source", "### Robustness", "### Plots", "Operating point", "Images per source"):
        assert absent not in text, absent
    assert "{{" not in text and "{%" not in text and "\n\n\n" not in text  # no template left, no empty blocks


def test_template_uses_only_names_python_gives(tmp_path: Path) -> None:
    """A misspelt name would render as nothing (huggingface_hub's jinja2.Template is not strict)."""
    inputs = model_card.read_card_inputs(TinyModelTester.save(tmp_path / "model"))
    given = set(model_card.card_fields(inputs, "bare", "someone/bare")) | {"card_data"}
    used = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(model_card.TEMPLATE.read_text()))
    assert used <= given, used - given


def test_template_ships_as_package_data() -> None:
    setup = configparser.ConfigParser()
    setup.read(SETUP_CFG)
    assert model_card.TEMPLATE.name in setup["options.package_data"]["modeling.release"].split()
