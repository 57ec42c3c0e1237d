"""Provenance beside the pixel score: `Detector`, predict.py (CSV and JSONL), evaluate.py and the demo table
report what each file claims about its origin, and the score is the same with and without it. Offline: the
files come from tests/provenance_files.py (a throwaway CA, c2pa-signed and tampered JPEGs, XMP and PNG text)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import load_script
from provenance_files import EMAIL_PROTECTION, FOLDER_STATES, make_pki, picture, write_provenance_folder
from tiny_model import TinyModelTester

from modeling.inference.predictor import Detector
from modeling.provenance.report import NO_PROVENANCE

pytest.importorskip("c2pa")

CLAIMS = {  # file -> the start of its one unsigned claim
    "xmp_iptc.jpg": "XMP DigitalSourceType: trainedAlgorithmicMedia (unsigned claim)",
    "parameters.png": "PNG parameters: Stable Diffusion (model sd_xl_base_1.0",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five provenance cases (see FOLDER_STATES), with the test CA at ../ca.pem."""
    return write_provenance_folder(tmp_path_factory.mktemp("provenance_predict") / "images", make_pki(EMAIL_PROTECTION))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny detector whose scores spread over (0, 1), so that a changed score would show."""
    folder = tmp_path_factory.mktemp("provenance_model")
    return TinyModelTester.save(folder, head_scale=30.0, layer_scale_init_value=1.0)


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return {Path(row["path"]).name: row for row in csv.DictReader(stream)}


def predict(model: Path, folder: Path, out: Path, *extra: str) -> int:
    args = ["--model", str(model), str(folder), "--output", str(out), "--no_progress", "--backend", "torch",
            "--precision", "fp32", *extra]
    return load_script("predict").main(args)


def assert_right_provenance(rows: dict[str, dict[str, str]], states: dict[str, str]) -> None:
    """Each file's state; the signed fields of both manifests; the unsigned claims; nothing for the plain photo."""
    assert {name: row["provenance_c2pa_state"] for name, row in rows.items()} == states
    for name in ("signed_ai.jpg", "tampered_ai.jpg"):  # an invalid manifest still says what it claimed
        assert rows[name]["provenance_source_type"] == "trainedAlgorithmicMedia"
        assert rows[name]["provenance_generator"] == "test-generator 1.0"
    assert "dataHash.mismatch" in rows["tampered_ai.jpg"]["provenance_status_codes"]
    assert rows["tampered_ai.jpg"]["provenance_summary"].startswith("Manifest invalid: the file was changed")
    for name, claim in CLAIMS.items():
        assert rows[name]["provenance_claims"].startswith(claim) and rows[name]["provenance_source_type"] == ""
    plain = rows["plain_photo.jpg"]
    assert (plain["provenance_claims"], plain["provenance_summary"]) == ("", NO_PROVENANCE)
    assert not any("real" in value.lower() for key, value in plain.items() if key.startswith("provenance_"))


@pytest.mark.parametrize("num_workers", ["0", "1"])  # 1: read in a forked decode worker (its own c2pa context)
def test_predict_csv_gives_each_file_its_provenance_and_the_same_score(model, folder, tmp_path, num_workers):
    """The issue's done-when: signed, tampered, XMP-tagged, PNG-parameters and plain files, scores unchanged."""
    assert predict(model, folder, tmp_path / "with.csv", "--num_workers", num_workers) == 0
    assert predict(model, folder, tmp_path / "without.csv", "--num_workers", num_workers, "--no_provenance") == 0
    with_provenance, without = read_csv(tmp_path / "with.csv"), read_csv(tmp_path / "without.csv")
    assert_right_provenance(with_provenance, FOLDER_STATES)
    assert list(next(iter(without.values()))) == ["path", "label", "score_ai", "error"]
    for name, row in with_provenance.items():
        assert (row["score_ai"], row["label"], row["error"]) == (
            without[name]["score_ai"], without[name]["label"], without[name]["error"]), name
    assert len({row["score_ai"] for row in without.values()}) >= 4  # four pictures (tampered_ai is signed_ai's)


def test_trust_anchors_make_the_signer_trusted_and_jsonl_nests_provenance(model, folder, tmp_path, caplog):
    caplog.set_level("INFO")
    out = tmp_path / "out.jsonl"
    assert predict(model, folder, out, "--num_workers", "0", "--trust_anchors", str(folder.parent / "ca.pem")) == 0
    records = {Path(r["path"]).name: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert {name: r["provenance"]["c2pa_state"] for name, r in records.items()} == {
        **FOLDER_STATES, "signed_ai.jpg": "trusted"}
    signed = records["signed_ai.jpg"]["provenance"]
    assert signed["summary"].endswith(", trusted signer") and signed["claims"] == []
    assert records["parameters.png"]["provenance"]["claims"][0].startswith(CLAIMS["parameters.png"])
    assert "C2PA invalid: 1, none found: 3, trusted: 1; unsigned claims in 2 file(s)" in caplog.text


def test_a_missing_trust_anchor_file_is_refused_before_any_work(model, folder, tmp_path, caplog):
    assert predict(model, folder, tmp_path / "x.csv", "--trust_anchors", str(tmp_path / "none.pem")) == 2
    assert "none.pem" in caplog.text and not (tmp_path / "x.csv").exists()
    with pytest.raises(ValueError, match="trust anchors"):
        Detector.from_pretrained(model, trust_anchors=tmp_path / "none.pem")


def test_detector_rows_and_in_memory_inputs(model, folder):
    detector = Detector.from_pretrained(model, num_workers=0)
    rows = {Path(r.path).name: r for r in detector.predict([folder])}
    assert rows["signed_ai.jpg"].provenance.c2pa_state == "valid, untrusted signer"
    assert rows["signed_ai.jpg"].to_dict()["provenance_source_type"] == "trainedAlgorithmicMedia"
    signed = folder / "signed_ai.jpg"
    from_path, from_bytes, made_in_memory = detector.predict_images([str(signed), signed.read_bytes(), picture(4)])
    assert from_path.provenance == from_bytes.provenance == rows["signed_ai.jpg"].provenance
    assert from_path.score_ai == pytest.approx(rows["signed_ai.jpg"].score_ai, abs=1e-6)
    assert made_in_memory.provenance is None  # no file behind it: nothing to read, nothing made up
    off = Detector.from_pretrained(model, num_workers=0, provenance=False)
    assert all(row.provenance is None for row in off.predict([folder]))
    assert set(off.predict_images([str(signed)])[0].to_dict()) == {"path", "label", "score_ai", "error"}


def test_evaluation_has_provenance_columns_and_a_per_label_summary(model, folder, tmp_path, capsys):
    """A real/ + ai/ folder: predictions.csv gets state, source type and claims; metrics.json counts them per label."""
    data = tmp_path / "data"
    for label, names in {"ai": ["signed_ai.jpg", "tampered_ai.jpg", "parameters.png"],
                         "real": ["xmp_iptc.jpg", "plain_photo.jpg"]}.items():
        (data / label).mkdir(parents=True)
        for name in names:
            shutil.copy(folder / name, data / label / name)
    out = tmp_path / "eval"
    args = ["--model", str(model), "--data_dir", str(data), "--no_manifest", "--output_dir", str(out)]
    assert load_script("evaluate").main(args) == 0
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    states = dict(zip(predictions["path"].map(lambda p: Path(p).name), predictions["provenance_c2pa_state"],
                      strict=True))
    assert states == FOLDER_STATES
    signed = predictions[predictions["path"].str.endswith("signed_ai.jpg")].iloc[0]
    assert signed["provenance_source_type"] == "trainedAlgorithmicMedia"
    summary = json.loads((out / "metrics.json").read_text())["provenance"]
    assert summary["ai"] == {"n_images": 3, "c2pa": {"invalid": 1, "none found": 1, "valid, untrusted signer": 1},
                             "source_types": {"trainedAlgorithmicMedia": 2}, "with_unsigned_claims": 1}
    assert summary["real"] == {"n_images": 2, "c2pa": {"none found": 2}, "source_types": {},
                               "with_unsigned_claims": 1}
    printed = capsys.readouterr().out
    assert "provenance (what the files claim" in printed and "ai (3 images): C2PA invalid 1" in printed
    assert load_script("evaluate").main([*args, "--output_dir", str(tmp_path / "off"), "--no_provenance"]) == 0
    plain = pd.read_csv(tmp_path / "off" / "predictions.csv")
    assert not any(c.startswith("provenance") for c in plain.columns)
    assert plain["score_ai"].tolist() == pytest.approx(predictions["score_ai"].tolist(), abs=1e-12)


def test_the_provenance_benchmark_reports_both_settings(model, capsys):
    """`python scripts/benchmark.py provenance`, shrunk: every file kind timed, predict with provenance on and off."""
    import argparse

    from benchmarks import provenance as benchmark

    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    args = parser.parse_args(["--model", str(model), "--num_images", "8", "--rounds", "1", "--reads", "1",
                              "--num_workers", "0", "--batch_size", "2"])
    assert benchmark.run(args) == 0
    printed = capsys.readouterr().out
    assert all(kind in printed for kind in benchmark.KINDS) and "on / off steady img/s per round: " in printed
