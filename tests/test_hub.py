"""The release: the model card (rendered with model-index), and the push with every Hub call intercepted."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import load_script
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.hf_api import RepoUrl

from modeling.config import ConfigError, parse_config
from modeling.release import hub, model_card
from modeling.run_folder import RunFolder
from modeling.training.run import publish, take_push_from_trainer

FAKE_TOKEN = "hf_tEsTtOkEnNeVeRlOgGeD0123456789"


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def model_copy(tiny_trained_model: Path, tmp_path: Path) -> Path:
    """The trained folder plus things that must never be uploaded."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_trained_model, folder)
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"state")
    (folder / "training_args.bin").write_bytes(b"pickle")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    return folder


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """Intercept HfApi: nothing reaches the network; the calls are recorded."""
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", kwargs))
        return SimpleNamespace(commit_url="https://huggingface.co/commit")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(HfApi, "create_commit", lambda *a, **k: pytest.fail("unexpected create_commit"))
    # the "online" case: CI exports HF_HUB_OFFLINE=1, which huggingface_hub froze into its constants at import
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return calls


def test_card_written_by_training_renders_model_index(tiny_trained_model: Path) -> None:
    card = ModelCard.load(tiny_trained_model / "README.md")
    metrics = json.loads((tiny_trained_model / "eval" / "metrics.json").read_text())
    results = {(r.dataset_split, r.metric_type): r for r in card.data.eval_results}
    # the headline is the seen generators' test split; held-out generators are a result of their own
    assert set(results) == {(split, key) for split in ("test", "test_unseen") for key in ("accuracy", "roc_auc")}
    sections = {"test": "seen", "test_unseen": "unseen"}
    for (split, key), result in results.items():
        assert result.metric_value == pytest.approx(metrics[sections[split]][key], abs=1e-4)
        assert result.task_type == "image-classification"
    assert results["test", "accuracy"].dataset_type == "synthetic-demo"  # demo data is not called ArtiFact
    assert card.data.base_model is None and card.data.datasets is None  # random init, generated data
    assert card.data.pipeline_tag == "image-classification" and card.data.library_name == "transformers"
    text = card.text
    for section in ("## How to use", "## Intended use", "## Limitations", "## Training data",
                    "## Training configuration", "## Evaluation", "### Per source", "### Robustness",
                    "## Calibration", 'pipeline("image-classification"'):
        assert section in text, section
    calibration = json.loads((tiny_trained_model / "calibration.json").read_text())
    assert f"{calibration['ece_before']:.4f} | {calibration['ece_after']:.4f}" in text
    for row in pd.read_csv(tiny_trained_model / "eval" / "per_source.csv").itertuples():
        assert f"| {row.source} | {row.label} |" in text
    for image in ("eval/roc_curve.png", "eval/reliability_diagram.png", "eval/robustness.png"):
        assert f"]({image})" in text and (tiny_trained_model / image).is_file()
    assert "model_link.txt" not in text


def test_push_uploads_weights_processor_card_and_evaluation(model_copy: Path, hub_calls, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    url = hub.push_model_folder(model_copy, "someone/tiny-detector", private=True,
                                before_upload=lambda repo_id: model_card.write_model_card(model_copy, repo_id))
    assert url == "https://huggingface.co/someone/tiny-detector"
    (name, create), (name2, upload) = hub_calls
    assert (name, name2) == ("create_repo", "upload_folder")
    assert create["repo_id"] == "someone/tiny-detector" and create["private"] is True and create["exist_ok"]
    files = set(upload["allow_patterns"])
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "calibration.json",
            "manifest.csv", "training_config.yaml", "eval/metrics.json", "eval/per_source.csv",
            "eval/roc_curve.png", "eval/robustness.csv"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) or f.startswith("checkpoint") for f in files)
    assert all((model_copy / f).is_file() for f in files)
    assert upload["folder_path"] == str(model_copy) and upload["repo_id"] == "someone/tiny-detector"
    # the card now names the repo in its snippet, and the token is nowhere
    card = (model_copy / "README.md").read_text()
    assert 'model="someone/tiny-detector"' in card
    assert FAKE_TOKEN not in caplog.text and FAKE_TOKEN not in card


def test_push_offline_fails_clearly_and_changes_nothing(model_copy: Path, hub_calls, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = folder_digest(model_copy)
    with pytest.raises(hub.HubError, match="HF_HUB_OFFLINE=1"):
        hub.push_model_folder(model_copy, "someone/tiny-detector")
    assert hub_calls == [] and folder_digest(model_copy) == before
    script = load_script("push_to_hub")
    assert script.main(["--model", str(model_copy), "--repo_id", "someone/tiny-detector"]) == 2
    assert folder_digest(model_copy) == before


def test_push_without_token_says_how_to_log_in(model_copy: Path, hub_calls, monkeypatch) -> None:
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(hub.HubError, match="hf auth login"):
        hub.push_model_folder(model_copy, "someone/tiny-detector")
    assert hub_calls == []


def test_push_refuses_folder_without_safetensors(model_copy: Path, hub_calls) -> None:
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(hub.HubError, match="model.safetensors"):
        hub.push_model_folder(model_copy, "someone/tiny-detector")
    assert hub_calls == []


def test_dry_run_lists_files_and_prints_card(model_copy: Path, hub_calls, capsys) -> None:
    before = folder_digest(model_copy)
    assert load_script("push_to_hub").main(["--model", str(model_copy), "--repo_id", "me/x", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "model.safetensors" in out and "model-index" in out and 'model="me/x"' in out
    assert "optimizer.pt" not in out
    assert hub_calls == [] and folder_digest(model_copy) == before


def test_training_push_checked_before_training_and_done_at_the_end(model_copy: Path, hub_calls, monkeypatch) -> None:
    argv = ["--config", str(model_copy / "training_config.yaml"), "--push_to_hub", "true",
            "--hub_model_id", "someone/run", "--output_dir", str(model_copy)]
    # offline: the run stops at once with a config error, before Trainer would try to create the repo
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="push_to_hub is set but HF_HUB_OFFLINE"):
        take_push_from_trainer(parse_config(argv).training)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    config = parse_config(argv)
    assert take_push_from_trainer(config.training) is True
    assert config.training.push_to_hub is False  # Trainer itself never pushes
    publish(config, RunFolder(model_copy), push=True)  # the run's last step: card, then push
    assert [name for name, _ in hub_calls] == ["create_repo", "upload_folder"]
    assert hub_calls[0][1]["repo_id"] == "someone/run"
    assert 'model="someone/run"' in (model_copy / "README.md").read_text()
