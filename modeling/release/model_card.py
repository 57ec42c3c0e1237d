"""The model card: README.md in a model folder, written from what the folder holds and nothing else.

It reads config.json, training_config.yaml, run_info.json (package version and commit), manifest.csv,
calibration.json and the test evaluation in eval/ (names: `modeling.run_folder`), so a card
can be rebuilt from a downloaded folder. Its `model-index` metadata carries the test figures on
the seen generators, and on held-out (unseen) generators as a result of its own.

The prose is the Jinja template model_card_template.md beside this module, rendered by huggingface_hub's
`ModelCard.from_template`; this module reads the folder and hands the template figures and tables
(`card_fields`), and the YAML metadata (`card_data`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from modeling.metrics import ECE_BINS, REPORT_KEYS, SECTIONS
from modeling.run_folder import (
    CALIBRATION,
    CARD,
    EVAL_DIR,
    MANIFEST,
    MODEL_CONFIG,
    PER_SOURCE,
    PLOTS,
    ROBUSTNESS,
    RUN_INFO,
    STRESS,
    RunFolder,
)

logger = logging.getLogger(__name__)

ARTIFACT_DATASET = "awsaf49/artifact-dataset"  # its Kaggle id; users download it themselves
TEMPLATE = Path(__file__).with_name("model_card_template.md")  # package data: setup.cfg ships it in the wheel


class CardError(RuntimeError):
    """The folder is not a trained model folder."""


@dataclass
class CardInputs:
    """Everything the card reports, read from the model folder (None where a file is absent)."""

    model_dir: Path
    config: dict[str, Any]
    training: dict[str, Any]
    run_info: dict[str, Any]
    calibration: dict[str, Any] | None
    metrics: dict[str, Any] | None
    per_source: pd.DataFrame | None
    robustness: pd.DataFrame | None
    manifest_counts: pd.DataFrame | None
    stress: pd.DataFrame | None = None


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, keep_default_na=False, na_values=[""]) if path.is_file() else None


def _manifest_counts(path: Path) -> pd.DataFrame | None:
    """Images per (source, label) and split: the per-source caps as they came out."""
    if not path.is_file():
        return None
    manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    manifest["label"] = manifest["label"].map({"0": "real", "1": "ai"})
    counts = manifest.pivot_table(index=["source", "label"], columns="split", values="path", aggfunc="count",
                                  fill_value=0)
    columns = [s for s in ("train", "validation", "test") if s in counts.columns]  # the manifest's split order
    return counts[columns].reset_index().sort_values(["label", "source"], ascending=[False, True])


def read_card_inputs(model_dir: str | Path) -> CardInputs:
    run = RunFolder(model_dir)
    config = run.read_json(MODEL_CONFIG)
    if config is None:
        raise CardError(f"{run / MODEL_CONFIG} not found: is {model_dir} a trained model folder?")
    return CardInputs(
        model_dir=run.root,
        config=config,
        training=run.training_config(),
        run_info=run.read_json(RUN_INFO) or {},
        calibration=run.read_json(CALIBRATION),
        metrics=run.metrics(),
        per_source=_read_csv(run.eval_dir / PER_SOURCE),
        robustness=_read_csv(run.eval_dir / ROBUSTNESS),
        manifest_counts=_manifest_counts(run / MANIFEST),
        stress=_read_csv(run.eval_dir / STRESS),
    )


# --------------------------------------------------------------------------- the card


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _data_kind(inputs: CardInputs) -> str:
    """"demo" (the generated demo data, as the run recorded), "folder" (real/ and ai/ folders) or "artifact"."""
    if inputs.run_info.get("demo_data") or inputs.training.get("demo_data"):
        return "demo"
    return "folder" if inputs.training.get("layout") == "folder" else "artifact"


def _dataset_name(inputs: CardInputs) -> tuple[str, str]:
    """(model-index dataset type, name)."""
    return {
        "demo": ("synthetic-demo", "Synthetic demo data (modeling/data/demo.py)"),
        "folder": ("imagefolder", "Custom real/ and ai/ image folders"),
        "artifact": ("artifact", "ArtiFact"),
    }[_data_kind(inputs)]


def _eval_results(inputs: CardInputs) -> list[EvalResult]:
    """Test accuracy and ROC-AUC on the seen generators (the headline), and on unseen ones apart."""
    metrics = inputs.metrics or {}
    dataset_type, dataset_name = _dataset_name(inputs)
    splits = {"test": metrics.get("seen") or metrics.get("all") or {}, "test_unseen": metrics.get("unseen") or {}}
    return [
        EvalResult(
            task_type="image-classification", task_name="AI-generated image detection",
            dataset_type=dataset_type, dataset_name=dataset_name, dataset_split=split,
            metric_type=key, metric_name=name, metric_value=round(float(section[key]), 4),
        )
        for split, section in splits.items()
        for key, name in (("accuracy", "Accuracy"), ("roc_auc", "ROC-AUC"))
        if section.get(key) is not None
    ]


def card_data(inputs: CardInputs, model_name: str) -> ModelCardData:
    """Hub metadata: licence, base model, dataset, test results (see `_eval_results`)."""
    kind = _data_kind(inputs)
    return ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        base_model=inputs.training.get("model_name_or_path") or None,
        datasets=[ARTIFACT_DATASET] if kind == "artifact" else None,
        tags=["ai-generated-image-detection", "convnext", "image-forensics"] + ([kind] if kind == "artifact" else []),
        metrics=["accuracy", "roc_auc"],
        eval_results=_eval_results(inputs) or None,
    )


TRAINING_KEYS = (
    "model_name_or_path", "hidden_sizes", "depths", "patch_size", "layer_scale_init_value", "processor", "image_size",
    "train_crop_size", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "learning_rate", "weight_decay", "lr_scheduler_type", "warmup_steps", "hflip_prob", "jpeg_prob", "jpeg_quality",
    "blur_prob", "blur_sigma", "rescale_prob", "grayscale_prob", "stem_init", "stem_highpass_gain", "stem_weight_std",
    "layer_init", "layer_init_gain", "self_fake_prob", "self_fake_region", "self_fake_resample_prob",
    "self_fake_processing", "self_fake_learned_prob", "class_weighting", "fp16", "seed",
)

# The values below fill TEMPLATE. Each section's function returns the same keys whatever the folder holds (None
# where a file is absent), so the template's conditionals see every name. Jinja reads `x.key` as getattr first:
# keys of the nested dicts must not be dict method names (items, values, keys, get, ...).


def _summary_fields(inputs: CardInputs) -> dict[str, Any]:
    """The model, its calibration as folded into config.json, its preprocessing and the run that made it."""
    cfg, training, info = inputs.config, inputs.training, inputs.run_info
    threshold = cfg.get("decision_threshold")
    return {
        "hidden_sizes": cfg.get("hidden_sizes"),
        "depths": cfg.get("depths"),
        "patch_size": cfg.get("patch_size"),
        "base_model": training.get("model_name_or_path") or None,
        "decision_threshold": None if threshold is None else f"{threshold:.4f}",  # None: not calibrated
        "decision_threshold_rule": cfg.get("decision_threshold_rule"),
        "calibration_temperature": f"{cfg.get('calibration_temperature') or 1.0:.3f}",
        "calibration_bias": f"{cfg.get('calibration_bias') or 0.0:+.3f}",
        "processor": training.get("processor", "crop"),
        "image_size": training.get("image_size"),
        "provenance": {k: info.get(k) for k in ("package_version", "git_commit", "transformers", "torch")}
        if info else None,
    }


def _limitation_fields(inputs: CardInputs) -> dict[str, Any]:
    """The measured side of two limitations: the unseen-generator gap and the robustness ROC-AUCs."""
    metrics = inputs.metrics or {}
    unseen, seen = metrics.get("unseen"), metrics.get("seen", {})
    gap = None
    if unseen and unseen.get("recall") is not None:
        gap = {"recall_unseen": _fmt(unseen["recall"]), "recall_seen": _fmt(seen.get("recall")),
               "roc_auc_unseen": _fmt(unseen.get("roc_auc")), "roc_auc_seen": _fmt(seen.get("roc_auc"))}
    return {"unseen_gap": gap, "robustness_roc_auc": _robustness_roc_auc(inputs.robustness)}


def _robustness_roc_auc(table: pd.DataFrame | None) -> dict[str, Any] | None:
    """ROC-AUC on the original test images and on each degraded copy (None: no robustness evaluation)."""
    if table is None or table.empty:
        return None
    by_name = table.set_index("degradation")
    degraded = [(name, _fmt(float(by_name.loc[name, "roc_auc"]))) for name in by_name.index if name != "original"]
    original = _fmt(float(by_name.loc["original", "roc_auc"])) if "original" in by_name.index else "n/a"
    return {"original": original, "degraded": degraded}


def _quota(n: Any) -> Any:
    """A subset size as configured; None where the run took all images (0 or negative)."""
    return None if not n or int(n) <= 0 else n


def _data_fields(inputs: CardInputs) -> dict[str, Any]:
    """Where the images came from, how the subset and the split were drawn, and what came out."""
    t = inputs.training
    counts = inputs.manifest_counts
    return {
        "data_kind": _data_kind(inputs),
        "data_dir": t.get("data_dir"),
        "num_real": _quota(t.get("num_real")),
        "num_ai": _quota(t.get("num_ai")),
        "max_per_source": t.get("max_per_source"),
        "validation_fraction": t.get("validation_fraction"),
        "test_fraction": t.get("test_fraction"),
        "data_seed": t.get("data_seed") or t.get("seed"),
        "holdout_generators": list(t.get("holdout_generators") or []),
        "manifest_table": None if counts is None else markdown_table(counts),
    }


def _training_fields(inputs: CardInputs) -> dict[str, Any]:
    """The settings that shape the model, as training resolved them."""
    rows = [(k, str(inputs.training[k])) for k in TRAINING_KEYS if k in inputs.training]  # exact values, e.g. 5e-05
    return {"training_table": markdown_table(pd.DataFrame(rows, columns=["setting", "value"])) if rows else None}


def _operating_point(metrics: dict[str, Any]) -> dict[str, Any]:
    """The decision threshold's consequences: what users of the label get."""
    point = metrics.get("operating_point") or {}
    unseen = point.get("detection_rate_unseen")
    return {
        "threshold": _fmt(metrics.get("decision_threshold")),
        "rule": metrics.get("decision_threshold_rule"),
        "false_positive_rate_real": _fmt(point.get("false_positive_rate_real")),
        "detection_rate_seen": _fmt(point.get("detection_rate_seen")),
        "detection_rate_unseen": None if unseen is None else _fmt(unseen),
    }


def _evaluation_fields(inputs: CardInputs) -> dict[str, Any]:
    """The test evaluation in eval/: headline table, operating point, per-source and robustness tables, plots."""
    m = inputs.metrics
    fields: dict[str, Any] = {
        "test_data": None, "ece_bins": ECE_BINS, "unseen_evaluated": False, "operating_point": None,
        "metrics_table": None, "per_source_table": None, "robustness_table": None, "plots": [],
        **_false_accusation_fields(inputs),
    }
    if not m:
        return fields
    sections = [s for s in SECTIONS if s in m]
    columns = {"metric": list(REPORT_KEYS), **{s: [m[s].get(k) for k in REPORT_KEYS] for s in sections}}
    return {
        **fields,
        "test_data": m.get("data"),
        "unseen_evaluated": "unseen" in sections,
        "operating_point": _operating_point(m),
        "metrics_table": markdown_table(pd.DataFrame(columns, dtype=object)),  # object: counts stay integers
        "per_source_table": None if inputs.per_source is None else markdown_table(inputs.per_source),
        "robustness_table": None if inputs.robustness is None else markdown_table(inputs.robustness),
        "plots": [(title, f"{EVAL_DIR}/{name}") for name, title in PLOTS.items()
                  if (inputs.model_dir / EVAL_DIR / name).is_file()],
    }


STRESS_COLUMNS = {  # stress.csv column -> the card's heading
    "kind": "real photos after", "n_real": "reals", "false_positive_rate": "called ai at the threshold",
    "false_positive_rate_at_1pct": "called ai at the 1% point", "detection_rate": "ai images found (same processing)",
}


def _false_accusation_fields(inputs: CardInputs) -> dict[str, Any]:
    """The stress test in eval/stress.csv: per processing kind, the share of real photos called ai."""
    table, stress = inputs.stress, (inputs.metrics or {}).get("stress") or {}
    if table is None or table.empty:
        return {"false_accusations_table": None, "false_accusations_point": None, "worst_false_accusation": None}
    shown = table[list(STRESS_COLUMNS)].rename(columns=STRESS_COLUMNS)
    shown.iloc[:, 0] = shown.iloc[:, 0].replace({"none": "no processing"})
    worst = stress.get("worst_kind")
    return {
        "false_accusations_table": markdown_table(shown),
        "false_accusations_point": _fmt(stress.get("threshold_at_1pct")),
        "worst_false_accusation": None if worst is None else {
            "kind": worst, "rate": _fmt(stress.get("worst_false_positive_rate"))},
    }


def _calibration_fields(inputs: CardInputs) -> dict[str, Any]:
    """The fit recorded in calibration.json, with the validation figures before and after it."""
    c = inputs.calibration
    if not c:
        return {"calibration": None}
    table = pd.DataFrame({
        "": ["ECE", "Brier score", "NLL"],
        "before": [c["ece_before"], c["brier_before"], c["nll_before"]],
        "after": [c["ece_after"], c["brier_after"], c["nll_after"]],
    })
    return {"calibration": {
        "n_images": c["n_images"],
        "temperature": f"{c['temperature']:.3f}",
        "bias": f"{c.get('bias', 0.0):+.3f}",
        "table": markdown_table(table),
        "decision_threshold": f"{c['decision_threshold']:.4f}",
        "decision_threshold_rule": c["decision_threshold_rule"],
    }}


def card_fields(inputs: CardInputs, model_name: str, repo_id: str) -> dict[str, Any]:
    """Every value the template uses: figures formatted, tables rendered, None where the folder lacks a file."""
    return {
        "model_name": model_name,
        "repo_id": repo_id,
        **_summary_fields(inputs),
        **_limitation_fields(inputs),
        **_data_fields(inputs),
        **_training_fields(inputs),
        **_evaluation_fields(inputs),
        **_calibration_fields(inputs),
    }


def build_model_card(model_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The card for a model folder; `repo_id` goes into the usage snippet (default: the folder path)."""
    inputs = read_card_inputs(model_dir)
    model_name = (repo_id or Path(model_dir).resolve().name).split("/")[-1]
    fields = card_fields(inputs, model_name, repo_id or str(model_dir))
    return ModelCard.from_template(card_data(inputs, model_name), template_path=str(TEMPLATE), **fields)


def write_model_card(model_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write README.md into the model folder (also done at the end of every training)."""
    path = Path(model_dir) / CARD
    build_model_card(model_dir, repo_id).save(path)
    logger.info("model card written to %s", path)
    return path
