"""The run folder: the one owner of its file names, and the reader of what a run recorded there.

A training run writes one self-contained folder; evaluation, export, prediction, the model card
and the push all read it. Every file name lives here, so no module spells `manifest.csv` itself:

    config.json + model.safetensors   the model (calibrated: temperature folded in, threshold in config)
    preprocessor_config.json          the one preprocessing path
    training_config.yaml              every resolved setting (reload with --config)
    run_info.json                     package version, git commit, library versions
    manifest.csv                      the exact images and splits (bad_files.csv, dedup.json beside it)
    calibration.json                  temperature and threshold, with the figures before and after
    {split}_results.json              final metrics per split (Trainer's format); all_results.json
    eval/                             the test evaluation: metrics.json, predictions, plots
    model.onnx, model_int8.onnx       the CPU fast path, valid while onnx_export.json matches the weights
    README.md                         the model card

Only the standard library and PyYAML (a transformers dependency): prediction imports this too.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

MODEL_CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PROCESSOR_CONFIG = "preprocessor_config.json"
TRAINING_CONFIG = "training_config.yaml"
MANIFEST = "manifest.csv"
BAD_FILES = "bad_files.csv"
DEDUP = "dedup.json"
CALIBRATION = "calibration.json"
RUN_INFO = "run_info.json"  # package version, git commit and library versions of the run
CARD = "README.md"
EVAL_DIR = "eval"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
PER_SOURCE = "per_source.csv"
ROBUSTNESS = "robustness.csv"
ROBUSTNESS_PREDICTIONS = "robustness_predictions.csv"
LEARNED_DECODERS = "learned_decoders"  # the fitted self-fake decoders of the run (a cache, not published)
STRESS = "stress.csv"  # the real-photo stress test: false-positive rates after camera and sharing processing
STRESS_PREDICTIONS = "stress_predictions.csv"
ONNX_FILES = {"fp32": "model.onnx", "int8": "model_int8.onnx"}
ONNX_RECORD = "onnx_export.json"
TRAINER_PICKLE = "training_args.bin"  # Trainer's pickled arguments: removed, training_config.yaml replaces it
PLOTS = {
    "roc_curve.png": "ROC curve",
    "roc_curve_log.png": "ROC curve, low false-positive rates (log scale)",
    "reliability_diagram.png": "Reliability diagram",
    "confusion_matrix.png": "Confusion matrices",
    "per_source.png": "Per-source rates",
    "robustness.png": "Robustness",
    "stress.png": "False accusations after camera and sharing processing",
}
REQUIRED = (MODEL_CONFIG, WEIGHTS, PROCESSOR_CONFIG)
# what a release carries: safetensors weights, configs, card, records, evaluation; never checkpoints or pickles
PUBLISHED = (
    *REQUIRED, CARD, CALIBRATION, RUN_INFO, TRAINING_CONFIG, MANIFEST, *ONNX_FILES.values(), ONNX_RECORD,
    "all_results.json", "train_results.json", "validation_results.json", "test_results.json",
    "test_unseen_results.json",
)
PUBLISHED_EVAL = (METRICS, PER_SOURCE, ROBUSTNESS, STRESS, *PLOTS)


def results_file(split: str) -> str:
    """`{split}_results.json`, the name `Trainer.save_metrics` gives a split's final metrics."""
    return f"{split}_results.json"


class RunFolder:
    """Paths inside one run folder and what the run recorded there (None where a file is absent)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def eval_dir(self) -> Path:
        return self.root / EVAL_DIR

    def training_config(self) -> dict[str, Any]:
        """The resolved settings of the run ({} for a folder not written by training)."""
        path = self.root / TRAINING_CONFIG
        return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}

    def data_dir(self) -> str | None:
        """The data_dir the run was trained on."""
        return self.training_config().get("data_dir")

    def read_json(self, name: str) -> dict[str, Any] | None:
        path = self.root / name
        return json.loads(path.read_text()) if path.is_file() else None

    def write_json(self, name: str, values: dict[str, Any]) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2) + "\n")
        return path

    def metrics(self) -> dict[str, Any] | None:
        """The test evaluation (eval/metrics.json)."""
        return self.read_json(f"{EVAL_DIR}/{METRICS}")

    def missing_model_files(self) -> list[str]:
        return [name for name in REQUIRED if not (self.root / name).is_file()]

    def published_files(self) -> list[str]:
        """The files a release uploads, relative to the folder, as far as they exist."""
        names = [n for n in PUBLISHED if (self.root / n).is_file()]
        return names + [f"{EVAL_DIR}/{n}" for n in PUBLISHED_EVAL if (self.eval_dir / n).is_file()]

    # ------------------------------------------------------------------ the ONNX export record

    def onnx_record(self) -> dict[str, Any]:
        return self.read_json(ONNX_RECORD) or {}

    def write_onnx_record(self, record: dict[str, Any]) -> None:
        self.write_json(ONNX_RECORD, record)

    def weights_sha256(self) -> str:
        """Hash of every safetensors file: what an ONNX export was checked against."""
        files = sorted(self.root.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{self.root}: no *.safetensors weights")
        return _hash_files(tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files))

    def usable_onnx(self, kind: str) -> str | None:
        """None when the `kind` ("fp32"/"int8") export may be used with these weights, else why not."""
        path = self.root / ONNX_FILES[kind]
        if not path.is_file():
            return f"{path.name} not found"
        entry = self.onnx_record().get(kind) or {}
        if not entry.get("passed"):
            return f"{path.name} has no passing check in {ONNX_RECORD}"
        if entry.get("weights_sha256") != self.weights_sha256():
            return f"{path.name} was exported from other weights (re-export it)"
        return None


@functools.lru_cache(maxsize=16)
def _hash_files(stats: tuple[tuple[str, int, int], ...]) -> str:
    """Cached on (path, size, mtime): loading a detector checks the hash more than once."""
    digest = hashlib.sha256()
    for path, _, _ in stats:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()
