"""The release: the model card (rendered with model-index), and the push and the download through the real
huggingface_hub client talking HTTP to a local Hub (tests/hub_server.py); no client method is replaced.

huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_HUB_DISABLE_XET once, when it is imported (and CI
exports HF_HUB_OFFLINE=1), so the user's round trip runs in fresh processes whose environment points at the
local Hub: `scripts/push_to_hub.py` pushes, then `pipeline(model=repo_id)` and `Detector.from_pretrained(repo_id)`
download and score (`client` below). The package's own functions are tested in this process, with those
import-time values set on `huggingface_hub.constants` as the environment would have set them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import load_script
from hub_server import LocalHub, serve
from huggingface_hub import ModelCard, constants

from modeling.release import hub
from modeling.run_folder import RunFolder

FAKE_TOKEN = "hf_tEsTtOkEnNeVeRlOgGeD0123456789"  # user "someone", who pushes
OTHER_TOKEN = "hf_0tHeRuSeRtOkEnNeVeRlOgGeD98765"  # a valid token of another user
UNKNOWN_TOKEN = "hf_uNkNoWnToKeNtHeHuBnEvErIsSuEd00"  # a token the Hub never issued
HUB_USERS = {FAKE_TOKEN: "someone", OTHER_TOKEN: "other"}
ATTEMPT_TOKENS = {"owner": FAKE_TOKEN, "other": OTHER_TOKEN, "unknown": UNKNOWN_TOKEN, "anonymous": None}
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT = "RESULT "  # marks the client's JSON line among the libraries' logs


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
def local_hub() -> Iterator[LocalHub]:
    """A local Hub on a free port with users "someone" (FAKE_TOKEN) and "other"; stopped after the test."""
    running = LocalHub(HUB_USERS)
    with serve(running):
        yield running


def point_client_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """This process's huggingface_hub as if imported with HF_ENDPOINT=url, online, without Xet, logged in."""
    monkeypatch.setattr(constants, "ENDPOINT", url)  # HfApi() reads it when created
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # CI's HF_HUB_OFFLINE=1, frozen at import
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # hf_xet is installed: uploads would go over Xet
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)


@pytest.fixture
def hub_in_process(local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> LocalHub:
    point_client_at(monkeypatch, local_hub.base_url)
    return local_hub


# --------------------------------------------------------------------------- the user's round trip, in fresh processes


def hub_env(url: str, home: Path) -> dict[str, str]:
    """A fresh process's environment for the local Hub, logged in as "someone": read by huggingface_hub at import.
    HF_HOME is the test's, so no user cache or token is read or written; no HF_* variable of this process leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_HOME=str(home),
               HF_HUB_DISABLE_PROGRESS_BARS="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
               HF_TOKEN=FAKE_TOKEN,
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "tests"), str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600)


def push_with_script(model: Path, repo_id: str, url: str, home: Path, *extra: str) -> str:
    """`python scripts/push_to_hub.py` as a user runs it; returns its output (stdout + stderr)."""
    done = run(["scripts/push_to_hub.py", "--model", str(model), "--repo_id", repo_id, *extra], hub_env(url, home))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def download_and_score(repo_id: str, images: list[Path], url: str, home: Path,
                       attempts: list[str]) -> tuple[dict, str]:
    """Run `client` in a fresh process; returns its results per attempt and its whole output."""
    code = "import sys, test_hub; test_hub.client(sys.argv[1], sys.argv[2].split(','), sys.argv[3:])"
    done = run(["-c", code, repo_id, ",".join(attempts), *map(str, images)], hub_env(url, home))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    line = next(line for line in done.stdout.splitlines() if line.startswith(RESULT))
    return json.loads(line.removeprefix(RESULT)), output


def client(repo_id: str, attempts: list[str], images: list[str]) -> None:
    """In the fresh process: for each attempt (a token from ATTEMPT_TOKENS, or none), load `repo_id` from the Hub
    with transformers' pipeline and with the package's Detector, score `images`, print P(ai) or the error."""
    from transformers import pipeline

    from modeling import Detector

    results = {}
    for attempt in attempts:  # huggingface_hub reads HF_TOKEN at every request
        os.environ.pop("HF_TOKEN", None)
        if ATTEMPT_TOKENS[attempt] is not None:
            os.environ["HF_TOKEN"] = ATTEMPT_TOKENS[attempt]
        result: dict = {}
        try:
            scored = pipeline("image-classification", model=repo_id)(images, top_k=2)
            result["pipeline"] = [next(s["score"] for s in scores if s["label"] == "ai") for scores in scored]
        except Exception as err:  # noqa: BLE001 - the error is the result
            result["pipeline_error"] = f"{type(err).__name__}: {err}"
        try:
            detector = Detector.from_pretrained(repo_id, num_workers=0)
            result["detector"] = [row.score_ai for row in detector.predict(images)]
            result["model_dir"] = str(detector.model_dir)
        except Exception as err:  # noqa: BLE001
            result["detector_error"] = f"{type(err).__name__}: {err}"
        results[attempt] = result
    print(RESULT + json.dumps(results), flush=True)


@pytest.fixture(scope="module")
def sample_images(tiny_trained_model: Path) -> list[Path]:
    """A few of the demo images the tiny model was trained on, real and generated."""
    images = sorted((tiny_trained_model.parent / "data").rglob("*.jpg"))
    return images[:: max(1, len(images) // 4)][:4]


@pytest.fixture(scope="module")
def local_scores(tiny_trained_model: Path, sample_images: list[Path]) -> dict[str, list[float]]:
    """P(ai) of the sample images from the model loaded from its local folder, both ways."""
    from transformers import pipeline

    from modeling import Detector

    scored = pipeline("image-classification", model=str(tiny_trained_model))([str(p) for p in sample_images], top_k=2)
    detector = Detector.from_pretrained(tiny_trained_model, num_workers=0)
    return {"pipeline": [next(s["score"] for s in scores if s["label"] == "ai") for scores in scored],
            "detector": [row.score_ai for row in detector.predict([str(p) for p in sample_images])]}


def assert_no_token(*texts: str | bytes) -> None:
    for text in texts:
        for token in (FAKE_TOKEN, OTHER_TOKEN, UNKNOWN_TOKEN):
            assert (token.encode() if isinstance(text, bytes) else token) not in text


@pytest.mark.slow
def test_push_then_pipeline_and_detector_download_from_the_hub(
        model_copy: Path, local_hub: LocalHub, tmp_path: Path, sample_images: list[Path], local_scores: dict) -> None:
    repo_id = "someone/tiny-detector"
    home = tmp_path / "hf_home"
    pushed = push_with_script(model_copy, repo_id, local_hub.base_url, home)
    assert f"to {local_hub.base_url}/{repo_id}" in pushed
    # exactly the published files went up, byte for byte: no checkpoint, no pickle (.gitattributes is the Hub's own)
    uploaded = local_hub.files(repo_id)
    published = RunFolder(model_copy).published_files()
    assert set(uploaded) - {".gitattributes"} == set(published)
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "eval/metrics.json"} <= set(
        published)
    assert all(uploaded[name] == (model_copy / name).read_bytes() for name in published)
    assert not any(name.endswith((".bin", ".pt", ".pth")) or name.startswith("checkpoint") for name in uploaded)
    assert {"model.safetensors", "eval/roc_curve.png"} <= local_hub.lfs_paths(repo_id)  # weights went through LFS
    assert not local_hub.repos[repo_id].private
    # the card was validated by the Hub before the upload, and its snippet names the repo
    assert ("POST", "/api/validate-yaml", 200) in local_hub.requests
    card = uploaded["README.md"].decode()
    assert f'pipeline("image-classification", model="{repo_id}")' in card
    assert ModelCard(card).data.eval_results  # the model-index survived the trip

    results, output = download_and_score(repo_id, sample_images, local_hub.base_url, home, ["anonymous", "owner"])
    for attempt in ("anonymous", "owner"):  # a public repo needs no token
        assert results[attempt]["pipeline"] == pytest.approx(local_scores["pipeline"], abs=1e-5), results[attempt]
        assert results[attempt]["detector"] == pytest.approx(local_scores["detector"], abs=1e-5)
        downloaded = Path(results[attempt]["model_dir"])  # in the test's own cache, as the Hub served it
        assert downloaded.is_relative_to(home.resolve())
        assert (downloaded / "model.safetensors").read_bytes() == (model_copy / "model.safetensors").read_bytes()
    assert_no_token(pushed, output, *uploaded.values(), *local_hub.lfs_objects.values())


@pytest.mark.slow
def test_private_repo_is_refused_without_the_owners_token(
        model_copy: Path, local_hub: LocalHub, tmp_path: Path, sample_images: list[Path], local_scores: dict) -> None:
    repo_id = "someone/private-detector"
    home = tmp_path / "hf_home"
    pushed = push_with_script(model_copy, repo_id, local_hub.base_url, home, "--private")
    assert local_hub.repos[repo_id].private
    attempts = ["other", "unknown", "anonymous", "owner"]  # refusals first, while the cache is empty
    results, output = download_and_score(repo_id, sample_images, local_hub.base_url, home, attempts)
    refusals = {"other": "Repository Not Found", "anonymous": "Repository Not Found",
                "unknown": "Invalid credentials in Authorization header"}
    for attempt, reason in refusals.items():
        result = results[attempt]
        assert "pipeline" not in result and "detector" not in result, result
        assert result["detector_error"].startswith("ModelLoadError: someone/private-detector: not a local folder")
        assert reason in result["detector_error"]
        assert repo_id in result["pipeline_error"]
    assert results["owner"]["detector"] == pytest.approx(local_scores["detector"], abs=1e-5)
    assert results["owner"]["pipeline"] == pytest.approx(local_scores["pipeline"], abs=1e-5)
    statuses = {status for method, path, status in local_hub.requests if path == f"/api/models/{repo_id}/revision/main"}
    assert {200, 401, 404} <= statuses
    assert_no_token(pushed, output)


# --------------------------------------------------------------------------- the card, and the package's checks


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


def test_push_offline_fails_clearly_and_sends_nothing(model_copy: Path, hub_in_process: LocalHub, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = folder_digest(model_copy)
    with pytest.raises(hub.HubError, match="HF_HUB_OFFLINE=1"):
        hub.push_model_folder(model_copy, "someone/tiny-detector")
    assert folder_digest(model_copy) == before
    script = load_script("push_to_hub")
    assert script.main(["--model", str(model_copy), "--repo_id", "someone/tiny-detector"]) == 2
    assert folder_digest(model_copy) == before
    assert hub_in_process.requests == []


def test_push_without_token_says_how_to_log_in(model_copy: Path, hub_in_process: LocalHub, monkeypatch,
                                               tmp_path: Path) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))  # not `hf auth login`-ed either
    with pytest.raises(hub.HubError, match="hf auth login"):
        hub.push_model_folder(model_copy, "someone/tiny-detector")
    assert hub_in_process.requests == []


def test_push_refuses_folder_without_safetensors(model_copy: Path, hub_in_process: LocalHub) -> None:
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(hub.HubError, match="model.safetensors"):
        hub.push_model_folder(model_copy, "someone/tiny-detector")
    assert hub_in_process.requests == []


def test_dry_run_lists_files_and_prints_card(model_copy: Path, hub_in_process: LocalHub, capsys) -> None:
    before = folder_digest(model_copy)
    assert load_script("push_to_hub").main(["--model", str(model_copy), "--repo_id", "me/x", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "model.safetensors" in out and "model-index" in out and 'model="me/x"' in out
    assert "optimizer.pt" not in out
    assert hub_in_process.requests == [] and folder_digest(model_copy) == before


def training_config(model_copy: Path):
    """The run's config with push_to_hub set, as `train.py --push_to_hub true --hub_model_id someone/run` parses it."""
    from modeling.config import parse_config  # imported here: keeps `import test_hub` light for `client`

    return parse_config(["--config", str(model_copy / "training_config.yaml"), "--push_to_hub", "true",
                         "--hub_model_id", "someone/run", "--output_dir", str(model_copy)])


def test_training_push_checked_before_training_and_done_at_the_end(
        model_copy: Path, hub_in_process: LocalHub, monkeypatch, caplog) -> None:
    from modeling.config import ConfigError
    from modeling.training.run import publish, take_push_from_trainer

    caplog.set_level(logging.DEBUG)
    # offline: the run stops at once with a config error, before Trainer would try to create the repo
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="push_to_hub is set but HF_HUB_OFFLINE"):
        take_push_from_trainer(training_config(model_copy).training)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    config = training_config(model_copy)
    assert take_push_from_trainer(config.training) is True
    assert config.training.push_to_hub is False  # Trainer itself never pushes
    assert hub_in_process.requests == []
    publish(config, RunFolder(model_copy), push=True)  # the run's last step: card, then push
    uploaded = hub_in_process.files("someone/run")
    assert set(uploaded) - {".gitattributes"} == set(RunFolder(model_copy).published_files())
    assert 'model="someone/run"' in uploaded["README.md"].decode()
    assert uploaded["README.md"] == (model_copy / "README.md").read_bytes()
    assert "push to the Hub failed" not in caplog.text
    assert_no_token(caplog.text, *uploaded.values())


def test_failed_push_keeps_the_folder_and_logs_the_retry_command(model_copy: Path, monkeypatch, caplog) -> None:
    from modeling.training.run import publish, take_push_from_trainer

    caplog.set_level(logging.DEBUG)
    down = LocalHub(HUB_USERS, fail_status=500)
    with serve(down) as url:
        point_client_at(monkeypatch, url)
        config = training_config(model_copy)
        assert take_push_from_trainer(config.training) is True
        publish(config, RunFolder(model_copy), push=True)  # must not raise: the run's results are on disk
        assert load_script("push_to_hub").main(["--model", str(model_copy), "--repo_id", "someone/run"]) == 1
    assert down.requests == [("POST", "/api/repos/create", 500)] * 2  # nothing after the refused create
    assert "push to the Hub failed" in caplog.text and "500" in caplog.text
    assert f"Retry with: python scripts/push_to_hub.py --model {model_copy} --repo_id someone/run" in caplog.text
    assert "the Hub refused the push" in caplog.text
    assert RunFolder(model_copy).missing_model_files() == [] and (model_copy / "README.md").is_file()
    assert_no_token(caplog.text)
