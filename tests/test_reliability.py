"""Issue 5: bad files, skipped images, interruption and resume, cross-split duplicates.

The interrupted runs are real `scripts/train.py` subprocesses (SIGTERM to the whole process group,
SIGKILL after a checkpoint); both start together to share their import time, and resume in-process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import load_script
from PIL import Image
from tiny_model import TinyModelTester

from modeling.config import parse_config
from modeling.data.dedup import drop_cross_split_duplicates
from modeling.data.demo import DemoSpec, make_demo_data
from modeling.data.manifest import load_manifest
from modeling.data.validation import check_image_file, drop_bad_files, exclude_paths, load_bad_files, validate_files
from modeling.images import ImageLoadError
from modeling.processing import build_image_processor
from modeling.training.batches import BatchTransform
from modeling.training.callbacks import StopOnSignal, last_complete_checkpoint
from modeling.training.data import prepare_manifest
from modeling.training.run import train
from modeling.training.trainer import collate_counting_skips

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 4
SAVE_STEPS = 2
BROKEN = "zz_broken/img000000.jpg"  # a truncated JPEG, alone in its source, so always in train


def jpeg_bytes(seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def tiny_args(data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """A seconds-long CPU run on the demo config; every test run differs only by `extra`."""
    return TinyModelTester.train_argv(data_dir, output_dir,
        "--image_size", "32", "--train_crop_size", "32",
        "--num_train_epochs", str(EPOCHS), "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "32",
        "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", str(SAVE_STEPS),
        "--load_best_model_at_end", "false", "--logging_steps", "1", "--dataloader_num_workers", "1",
        "--validate_files", "false",  # let the broken file reach the data loader (defence in depth)
        *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data_with_broken_file(tmp_path_factory) -> Path:
    """Demo data plus a source holding one truncated JPEG; a one-image source always lands in train."""
    root = make_demo_data(tmp_path_factory.mktemp("reliability") / "data", DemoSpec(images_per_source=8), False)
    broken = root / "zz_broken"
    broken.mkdir()
    data = jpeg_bytes(0, 64)
    (broken / "img000000.jpg").write_bytes(data[: len(data) // 2])
    (broken / "metadata.csv").write_text("image_path,target,category\nimg000000.jpg,0,broken\n")
    return root


def trainer_state(folder: Path) -> dict:
    return json.loads((folder / "trainer_state.json").read_text())


def logged_steps(state: dict) -> list[int]:
    return [entry["step"] for entry in state["log_history"] if "loss" in entry]


# --------------------------------------------------------------------------- validation


def test_check_image_file_reasons(tmp_path: Path, monkeypatch) -> None:
    good = jpeg_bytes(1)
    (tmp_path / "good.jpg").write_bytes(good)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "noise.jpg").write_bytes(b"this is not an image at all")
    Image.new("CMYK", (8, 8)).save(tmp_path / "cmyk.tif")
    Image.new("I;16", (8, 8), 40000).save(tmp_path / "deep.png")  # 16-bit: the pipeline scales it

    assert check_image_file(tmp_path / "good.jpg") is None
    assert check_image_file(tmp_path / "deep.png") is None
    assert check_image_file(tmp_path / "absent.jpg")[0] == "missing"
    assert check_image_file(tmp_path / "empty.jpg")[0] == "empty"
    assert check_image_file(tmp_path / "cut.jpg")[0] == "truncated"
    assert check_image_file(tmp_path / "noise.jpg")[0] == "unreadable"
    assert check_image_file(tmp_path / "cmyk.tif") is None

    # every mode Pillow decodes converts today; a conversion failure must still be classified as such
    def refuse_cmyk(image):
        if image.mode == "CMYK":
            raise ImageLoadError("conversion from CMYK not supported")
        return image

    monkeypatch.setattr("modeling.data.validation.load_image", refuse_cmyk)
    reason, detail = check_image_file(tmp_path / "cmyk.tif")
    assert reason == "unsupported_mode" and "CMYK" in detail


def test_validation_counts_per_source_in_parallel_and_excludes(tmp_path: Path) -> None:
    good, rows = jpeg_bytes(2), []
    for i in range(600):  # above the in-process threshold: exercises the process pool
        source = "a" if i % 2 else "b"
        name = f"{source}/img{i:04d}.jpg"
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(good if i not in (7, 8) else good[:100])
        rows.append((name, 0, source, "", "train", False))
    rows.append(("a/missing.jpg", 0, "a", "", "test", False))
    manifest = pd.DataFrame(rows, columns=["path", "label", "source", "category", "split", "heldout"])

    report = validate_files(manifest["path"], tmp_path, manifest["source"], workers=2, progress=False)
    assert report.checked == 601
    assert sorted(report.bad["path"]) == ["a/img0007.jpg", "a/missing.jpg", "b/img0008.jpg"]
    assert report.per_source.loc["a", "bad"] == 2 and report.per_source.loc["b", "bad"] == 1
    assert report.per_source.loc["a", "checked"] == 301 and report.per_source.loc["a", "missing"] == 1

    cleaned = drop_bad_files(manifest, tmp_path, tmp_path / "bad.csv", workers=2, progress=False)
    assert len(cleaned) == 598 and not cleaned["path"].isin(report.bad["path"]).any()
    assert sorted(pd.read_csv(tmp_path / "bad.csv")["reason"]) == ["missing", "truncated", "truncated"]
    # the list from scripts/validate_data.py excludes the same rows without checking again (--exclude_files)
    assert exclude_paths(manifest, load_bad_files(tmp_path / "bad.csv"), "listed").equals(cleaned)


def test_validate_data_script(data_with_broken_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bad.csv"
    rc = load_script("validate_data").main(
        ["--data_dir", str(data_with_broken_file), "--output", str(out), "--no_progress"]
    )
    assert rc == 1
    assert list(pd.read_csv(out)["path"]) == [BROKEN]
    assert "zz_broken" in capsys.readouterr().out


# --------------------------------------------------------------------------- dedup


def test_duplicates_across_splits_are_removed_from_evaluation(tmp_path: Path) -> None:
    contents = {name: jpeg_bytes(i) for i, name in enumerate("abcdefgh")}
    contents["val_copy_of_a"] = contents["a"]  # train -> validation leak
    contents["test_copy_of_b"] = contents["b"]  # train -> test leak
    contents["test_copy_of_c"] = contents["c"]  # validation -> test leak
    contents["train_copy_of_d"] = contents["d"]  # two copies inside train: kept
    splits = {"a": "train", "b": "train", "d": "train", "train_copy_of_d": "train", "e": "train",
              "c": "validation", "val_copy_of_a": "validation", "f": "validation",
              "test_copy_of_b": "test", "test_copy_of_c": "test", "g": "test", "h": "test"}  # fmt: skip
    for name, data in contents.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
    manifest = pd.DataFrame(
        [(f"{n}.jpg", 0, "s", "", split, False) for n, split in splits.items()],
        columns=["path", "label", "source", "category", "split", "heldout"],
    )
    cleaned, report = drop_cross_split_duplicates(manifest, tmp_path, tmp_path / "dedup.json", progress=False)

    removed = set(manifest["path"]) - set(cleaned["path"])
    assert removed == {"val_copy_of_a.jpg", "test_copy_of_b.jpg", "test_copy_of_c.jpg"}
    assert report["removed"] == {"validation": 1, "test": 2} and report["removed_total"] == 3
    assert report["within_split_duplicates"]["train"] == 1
    stored = json.loads((tmp_path / "dedup.json").read_text())
    assert stored["removed_total"] == 3
    assert {r["path"]: r["duplicate_of"] for r in stored["removed_files"]}["test_copy_of_c.jpg"] == "c.jpg"


def test_training_manifest_drops_bad_files_and_leaks(data_with_broken_file: Path, tmp_path: Path) -> None:
    """prepare_manifest's cleaning: the truncated file is listed and excluded, and a test file with a
    training file's bytes leaves test, with the count in dedup.json."""
    root = Path(shutil.copytree(data_with_broken_file, tmp_path / "data"))
    before = prepare_manifest(parse_config(tiny_args(root, tmp_path / "a", "--dedup", "false")), tmp_path / "a")
    leaked = before[(before["split"] == "test") & ~before["heldout"]]["path"].iloc[0]
    original = before[(before["split"] == "train") & (before["path"] != BROKEN)]["path"].iloc[0]
    (root / leaked).write_bytes((root / original).read_bytes())  # splits depend on paths, not bytes

    after = prepare_manifest(parse_config(tiny_args(root, tmp_path / "b", "--validate_files", "true")), tmp_path / "b")
    assert set(before["path"]) - set(after["path"]) == {leaked, BROKEN}
    assert set(load_manifest(tmp_path / "b" / "manifest.csv")["path"]) == set(after["path"])
    bad = pd.read_csv(tmp_path / "b" / "bad_files.csv")
    assert bad[["path", "reason"]].values.tolist() == [[BROKEN, "truncated"]]
    stored = json.loads((tmp_path / "b" / "dedup.json").read_text())
    assert stored["removed"] == {"validation": 0, "test": 1}
    assert stored["removed_files"] == [
        {"path": leaked, "split": "test", "duplicate_of": original, "duplicate_split": "train"}
    ]


# --------------------------------------------------------------------------- skipped images


def test_collate_counts_skipped_images(tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(jpeg_bytes(3, 32))
    (tmp_path / "bad.jpg").write_bytes(b"broken")
    transform = BatchTransform(build_image_processor("crop", 32))
    out = transform({"image": [{"path": str(tmp_path / n), "bytes": None} for n in ("ok.jpg", "bad.jpg")],
                     "label": [0, 1]})  # fmt: skip
    batch = collate_counting_skips([{k: v[i] for k, v in out.items()} for i in range(2)])
    assert batch["num_skipped_images"] == 1
    assert batch["pixel_values"].shape == (1, 3, 32, 32) and batch["labels"].tolist() == [0]


# --------------------------------------------------------------------------- interruption


def test_stop_on_signal_requests_save_and_stop() -> None:
    class Control:
        should_save = should_training_stop = False
        should_evaluate = True

    class State:
        global_step = 7

    stopper = StopOnSignal()
    control = stopper.on_step_end(None, State(), Control())
    assert not control.should_save and stopper.stopped_at is None
    before = signal.getsignal(signal.SIGTERM)
    stopper.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs between bytecodes of the main thread
    finally:
        stopper.uninstall()
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back
    control = stopper.on_step_end(None, State(), Control())
    assert control.should_save and control.should_training_stop and not control.should_evaluate
    assert stopper.stopped_at == 7


def test_last_complete_checkpoint_skips_a_half_written_one(tmp_path: Path) -> None:
    for step, state in ((2, "{}"), (4, "{}"), (6, None), (8, '{"trunc')):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-10-tmp").mkdir()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert last_complete_checkpoint(tmp_path / "absent") is None


# --------------------------------------------------------------------------- real runs
# Two `scripts/train.py` subprocesses start together (their imports overlap) and are stopped after
# their first checkpoint, one by SIGTERM to its process group (as a scheduler does: DataLoader
# workers get it too), one by SIGKILL; both resume in-process. An uninterrupted in-process run with
# the same settings is the reference, and carries a fake Hub token to scan for.

FAKE_TOKEN = "hf_fakeReliabilityToken0123456789abcdef"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """2 shared cores: OpenMP threads that spin against other processes make a tiny step 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _has_checkpoint(out: Path) -> bool:
    """Quiet twin of last_complete_checkpoint for polling: a checkpoint whose state file parses."""
    for path in out.glob("checkpoint-*/trainer_state.json"):
        try:
            json.loads(path.read_text())
            return True
        except (OSError, ValueError):
            continue
    return False


@pytest.fixture(scope="module")
def killed_runs(data_with_broken_file: Path, tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("killed")
    runs = {kind: {"out": base / kind, "log": base / f"{kind}.log"} for kind in ("sigterm", "sigkill")}
    for run in runs.values():
        run["proc"] = _start(tiny_args(data_with_broken_file, run["out"]), run["log"])
    pending, deadline = set(runs), time.monotonic() + 300
    while pending and time.monotonic() < deadline:
        for kind in sorted(pending):
            run = runs[kind]
            if run["proc"].poll() is not None:
                pytest.fail(f"{kind} run ended before its first checkpoint:\n{run['log'].read_text()[-3000:]}")
            if _has_checkpoint(run["out"]):
                os.killpg(run["proc"].pid, signal.SIGTERM if kind == "sigterm" else signal.SIGKILL)
                pending.discard(kind)
        time.sleep(0.01)
    for run in runs.values():
        try:
            run["rc"] = run["proc"].wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(run["proc"].pid, signal.SIGKILL)
            run["rc"] = None
        run["output"] = run["log"].read_text()
        newest = last_complete_checkpoint(run["out"])
        run["history"] = trainer_state(Path(newest))["log_history"] if newest else []
    assert not pending, "no checkpoint within the time limit"
    return runs


@pytest.fixture(scope="module")
def reference_run(data_with_broken_file: Path, tmp_path_factory) -> dict:
    """The uninterrupted run; its logs (logging, stdout, stderr) are kept for the token scan."""
    out = tmp_path_factory.mktemp("reference") / "run"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    loggers = [logging.getLogger(), logging.getLogger("transformers")]
    levels = [logger.level for logger in loggers]
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(stream), redirect_stderr(stream):
        mp.setenv("HF_TOKEN", FAKE_TOKEN)
        for logger in loggers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        try:
            train(parse_config(tiny_args(data_with_broken_file, out, "--keep_checkpoints", "true",
                                         "--hub_token", FAKE_TOKEN)))  # fmt: skip
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.removeHandler(handler)
                logger.setLevel(level)
    return {"out": out, "output": stream.getvalue()}


def test_reference_run_skips_the_corrupted_file_and_counts_it(reference_run) -> None:
    out = reference_run["out"]
    manifest = load_manifest(out / "manifest.csv")
    assert manifest.loc[manifest["path"] == BROKEN, "split"].tolist() == ["train"]
    assert json.loads((out / "train_results.json").read_text())["skipped_images"] == EPOCHS  # once per epoch
    counts = [e["skipped_images"] for e in trainer_state(out)["log_history"] if "loss" in e]
    assert counts == sorted(counts) and counts[-1] == EPOCHS
    assert f"'skipped_images': {EPOCHS}" in reference_run["output"]  # the count is in the printed logs
    n_train = int((manifest["split"] == "train").sum())
    assert trainer_state(out)["global_step"] == EPOCHS * -(-n_train // 4)  # one step per batch


def test_hub_token_never_reaches_the_output_folder_or_logs(reference_run) -> None:
    assert "skipped_images" in reference_run["output"]  # the capture did see the run's logs
    assert FAKE_TOKEN not in reference_run["output"]
    files = [p for p in reference_run["out"].rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"training_config.yaml", "trainer_state.json", "training_args.bin"} <= names, names  # checkpoints kept
    leaks = [str(p) for p in files if FAKE_TOKEN.encode() in p.read_bytes()]
    assert not leaks, f"token found in {leaks}"


def test_sigterm_saves_a_checkpoint_and_resumes_explicitly(
    killed_runs, reference_run, data_with_broken_file: Path
) -> None:
    run = killed_runs["sigterm"]
    assert run["rc"] not in (0, None), "an interrupted run must stop, and not report success"
    assert "stopped by SIGTERM at step" in run["output"], run["output"][-3000:]
    stopped_at = int(run["output"].split("stopped by SIGTERM at step ")[1].split(";")[0])
    checkpoint = run["out"] / f"checkpoint-{stopped_at}"
    assert trainer_state(checkpoint)["global_step"] == stopped_at  # saved on the signal itself
    assert not (run["out"] / "model.safetensors").exists()  # a stopped run leaves no "final" model

    train(parse_config(tiny_args(data_with_broken_file, run["out"], "--resume_from_checkpoint", str(checkpoint))))
    total = trainer_state(reference_run["out"])["global_step"]
    state = trainer_state(run["out"])
    assert 0 < stopped_at < total and state["global_step"] == total
    assert logged_steps(state) == list(range(1, total + 1))  # every step once: resumed, not restarted
    assert not list(run["out"].glob("checkpoint-*"))  # a finished run cleans up


def test_sigkill_resumes_automatically_from_newest_checkpoint(
    killed_runs, reference_run, data_with_broken_file: Path, caplog
) -> None:
    run = killed_runs["sigkill"]
    assert run["rc"] == -signal.SIGKILL
    newest = last_complete_checkpoint(run["out"])
    assert newest is not None and not (run["out"] / "model.safetensors").exists()
    resumed_from = trainer_state(Path(newest))["global_step"]

    caplog.set_level(logging.INFO)
    train(parse_config(tiny_args(data_with_broken_file, run["out"])))  # the same command, no flag
    assert f"resuming from {newest}" in caplog.text
    total = trainer_state(reference_run["out"])["global_step"]
    state = trainer_state(run["out"])
    assert 0 < resumed_from < total and state["global_step"] == total
    assert logged_steps(state) == list(range(1, total + 1))


def test_same_seed_same_first_losses_across_processes(killed_runs, reference_run) -> None:
    """Three processes, one seed: every loss logged before a kill equals the reference run's."""
    reference = {e["step"]: e["loss"] for e in trainer_state(reference_run["out"])["log_history"] if "loss" in e}
    for kind, run in killed_runs.items():
        first = {e["step"]: e["loss"] for e in run["history"] if "loss" in e}
        assert len(first) >= SAVE_STEPS, kind
        assert first == {step: reference[step] for step in first}, kind
