"""The model card: README.md in a model folder, written from what the folder holds and nothing else.

It reads config.json, training_config.yaml, run_info.json (package version and commit), manifest.csv,
calibration.json and the test evaluation in eval/ (names: `modeling.run_folder`), so a card
can be rebuilt from a downloaded folder. Its `model-index` metadata carries the test figures on
the seen generators, and on held-out (unseen) generators as a result of its own.
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
    RunFolder,
)

logger = logging.getLogger(__name__)

ARTIFACT_DATASET = "awsaf49/artifact-dataset"  # its Kaggle id; users download it themselves


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


def _summary_section(inputs: CardInputs, model_name: str, repo_id: str) -> str:
    cfg = inputs.config
    threshold = cfg.get("decision_threshold")
    arch = (f"hidden sizes {cfg.get('hidden_sizes')}, depths {cfg.get('depths')}, stem patch size "
            f"{cfg.get('patch_size')}")
    base = inputs.training.get("model_name_or_path") or "random initialisation"
    lines = [
        f"# {model_name}",
        "",
        "Tells AI-generated images from real photographs. A stock `ConvNextForImageClassification` "
        f"({arch}; started from {base}) with two labels, `real` and `ai`, and the image processor it was "
        "trained with. Loads with plain `transformers`, no remote code.",
        "",
    ]
    if threshold is not None:
        lines.append(
            f"Scores are calibrated: a temperature of {cfg.get('calibration_temperature') or 1.0:.3f} and a prior "
            f"shift of {cfg.get('calibration_bias') or 0.0:+.3f} on the logit gap, fitted on the "
            "validation split, are folded into the classifier head, so the `pipeline` score is the calibrated "
            f"P(ai). The decision threshold is **{threshold:.4f}** (rule `{cfg.get('decision_threshold_rule')}`, "
            "chosen on validation), stored in `config.json` as `decision_threshold`."
        )
    else:
        lines.append("Scores are not calibrated; the decision threshold is 0.5.")
    lines += [
        "",
        "## How to use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'detector = pipeline("image-classification", model="{repo_id}")',
        'scores = {r["label"]: r["score"] for r in detector("photo.jpg")}',
        "threshold = getattr(detector.model.config, \"decision_threshold\", 0.5)",
        'print("ai" if scores["ai"] >= threshold else "real", round(scores["ai"], 3))',
        "```",
        "",
        "Preprocessing comes from `preprocessor_config.json` (the one used in training); "
        + _processor_sentence(inputs),
        "",
        _provenance(inputs),
    ]
    return "\n".join(lines)


def _provenance(inputs: CardInputs) -> str:
    info = inputs.run_info
    if not info:
        return "Made by the artifact-detector package (no run_info.json in this folder)."
    commit = info.get("git_commit") or "not a git checkout"
    return (f"Made by artifact-detector {info.get('package_version')} (commit {commit}) with transformers "
            f"{info.get('transformers')} and torch {info.get('torch')}.")


def _processor_sentence(inputs: CardInputs) -> str:
    processor = inputs.training.get("processor", "crop")
    size = inputs.training.get("image_size")
    if processor == "crop":
        return (f"it takes a {size}x{size} center crop at the image's native resolution (zero-padded when "
                "smaller), so only the central region of a large photo is looked at.")
    return f"it resizes the short side to {size} (antialiased) and center-crops."


def _limitations_section(inputs: CardInputs) -> str:
    lines = [
        "## Intended use",
        "",
        "- A signal for triage and research: which images deserve a closer look, how detectors behave per "
        "generator and under common degradations.",
        "- Not sole evidence for decisions about people (moderation, journalism, legal matters): a score is a "
        "statistical estimate, and the false-positive rate below is measured on the test sources only.",
        "",
        "## Limitations",
        "",
        "- It learns traces of the generators it was trained on. Generators that are new or absent from the "
        "training data can go undetected" + _unseen_clause(inputs) + ".",
        "- Re-compression, resizing and blur remove the high-frequency traces it relies on"
        + _robustness_clause(inputs) + ". Screenshots, photos of screens and heavily edited images are out of "
        "scope.",
        "- Partly generated images (inpainting, AI edits of a real photo) and non-photographic content (drawings, "
        "documents) were not evaluated.",
        "- Real images from sources unlike the training sources can be called ai more often than the per-source "
        "false-positive rates below suggest.",
    ]
    return "\n".join(lines)


def _unseen_clause(inputs: CardInputs) -> str:
    unseen = (inputs.metrics or {}).get("unseen")
    if not unseen or unseen.get("recall") is None:
        return ""
    seen = inputs.metrics.get("seen", {})
    return (f": on held-out generators the detection rate was {_fmt(unseen['recall'])} against "
            f"{_fmt(seen.get('recall'))} on seen ones (ROC-AUC {_fmt(unseen.get('roc_auc'))} vs "
            f"{_fmt(seen.get('roc_auc'))})")


def _robustness_clause(inputs: CardInputs) -> str:
    table = inputs.robustness
    if table is None or table.empty:
        return " (no robustness evaluation in this folder)"
    by_name = table.set_index("degradation")
    parts = [f"{name}: ROC-AUC {_fmt(float(by_name.loc[name, 'roc_auc']))}"
             for name in by_name.index if name != "original"]
    original = _fmt(float(by_name.loc["original", "roc_auc"])) if "original" in by_name.index else "n/a"
    return f"; measured on the test images (original ROC-AUC {original}): " + ", ".join(parts)


def _data_section(inputs: CardInputs) -> str:
    t = inputs.training
    kind = _data_kind(inputs)
    if kind == "demo":
        intro = ("Synthetic demo data generated offline by `modeling/data/demo.py` (procedural scenes and textures "
                 "as real; the same kind of content passed through upsampling decoders as ai), made the ArtiFact "
                 "way (random square crop, resize to 200, JPEG 65-100 for both classes). **This is a demo model, "
                 "not a detector for real-world images.**")
    elif kind == "folder":
        intro = f"The user's own images under `{t.get('data_dir')}`, laid out as `real/` and `ai/` folders."
    else:
        intro = ("[ArtiFact](https://www.kaggle.com/datasets/awsaf49/artifact-dataset) (Rahman et al., ICIP 2023): "
                 "about 2.5M 200x200 JPEG images, 8 real sources and 25 generators, each image cropped, resized to "
                 "200 and JPEG-compressed at quality 65-100 whatever its class, so size and format carry no label.")

    def quota(n: Any) -> str:
        return "all" if not n or int(n) <= 0 else str(n)

    recipe = [
        f"- Subset: {quota(t.get('num_real'))} real and {quota(t.get('num_ai'))} ai images, each label's quota spread "
        f"evenly over its sources (a source short of its share gives all it has); "
        + (f"at most {t['max_per_source']} per source." if t.get("max_per_source") else "no per-source cap."),
        f"- Split seeded and stratified by source and label: validation {t.get('validation_fraction')}, "
        f"test {t.get('test_fraction')}; seed {t.get('data_seed') or t.get('seed')}.",
        "- Generators held out of training entirely (the unseen test): "
        f"{', '.join(t.get('holdout_generators') or []) or 'none'}.",
        "- The exact images are listed in `manifest.csv` in this repository.",
    ]
    lines = ["## Training data", "", intro, "", *recipe]
    if inputs.manifest_counts is not None:
        lines += ["", "Images per source and split:", "", markdown_table(inputs.manifest_counts)]
    return "\n".join(lines)


TRAINING_KEYS = (
    "model_name_or_path", "hidden_sizes", "depths", "patch_size", "layer_scale_init_value", "processor", "image_size",
    "train_crop_size", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "learning_rate", "weight_decay", "lr_scheduler_type", "warmup_steps", "hflip_prob", "jpeg_prob", "jpeg_quality",
    "blur_prob", "blur_sigma", "rescale_prob", "grayscale_prob", "stem_init", "stem_highpass_gain", "stem_weight_std",
    "layer_init", "layer_init_gain", "self_fake_prob", "self_fake_region", "self_fake_resample_prob",
    "self_fake_processing", "self_fake_learned_prob", "class_weighting", "fp16", "seed",
)


def _training_section(inputs: CardInputs) -> str:
    rows = [(k, str(inputs.training[k])) for k in TRAINING_KEYS if k in inputs.training]  # exact values, e.g. 5e-05
    lines = ["## Training configuration", ""]
    if rows:
        lines += [markdown_table(pd.DataFrame(rows, columns=["setting", "value"])), "",
                  "The full resolved configuration is `training_config.yaml` (reload it with `--config`)."]
    else:
        lines.append("No `training_config.yaml` in this folder.")
    return "\n".join(lines)


def _evaluation_section(inputs: CardInputs) -> str:
    m = inputs.metrics
    lines = ["## Evaluation", ""]
    if not m:
        lines.append("This folder holds no evaluation (`eval/metrics.json`); run `scripts/evaluate.py`.")
        return "\n".join(lines)
    sections = [s for s in SECTIONS if s in m]
    columns = {"metric": list(REPORT_KEYS), **{s: [m[s].get(k) for k in REPORT_KEYS] for s in sections}}
    table = pd.DataFrame(columns, dtype=object)  # object: counts stay integers
    lines += [
        f"Test data: {m.get('data')}. Thresholded figures use the decision threshold "
        f"{_fmt(m.get('decision_threshold'))}; recall is the detection rate of ai images, the false-positive rate "
        f"the share of real images called ai. ECE uses {ECE_BINS} equal-width bins of P(ai)."
        + (" *seen*: generators present in training; *unseen*: held-out generators against the same real "
           "images." if "unseen" in sections else ""),
        "",
        _operating_point(m),
        "",
        markdown_table(table),
    ]
    if inputs.per_source is not None:
        lines += ["", "### Per source", "", markdown_table(inputs.per_source)]
    if inputs.robustness is not None:
        lines += ["", "### Robustness", "",
                  "The same test images, degraded before preprocessing (JPEG re-save at quality 95/75/50, downscale "
                  "by 0.5, Gaussian blur sigma 1, WebP re-encode):", "", markdown_table(inputs.robustness)]
    figures = [f"![{title}]({EVAL_DIR}/{name})" for name, title in PLOTS.items()
               if (inputs.model_dir / EVAL_DIR / name).is_file()]
    if figures:
        lines += ["", "### Plots", "", *figures]
    return "\n".join(lines)


def _operating_point(metrics: dict[str, Any]) -> str:
    """The decision threshold's consequences in one sentence: what users of the label get."""
    point = metrics.get("operating_point") or {}
    text = (f"**Operating point** (threshold {_fmt(metrics.get('decision_threshold'))}, rule "
            f"`{metrics.get('decision_threshold_rule')}`): false-positive rate on real test images "
            f"{_fmt(point.get('false_positive_rate_real'))}, detection rate on seen generators "
            f"{_fmt(point.get('detection_rate_seen'))}")
    if point.get("detection_rate_unseen") is not None:
        text += f", on held-out (unseen) generators {_fmt(point['detection_rate_unseen'])}"
    return text + "."


def _calibration_section(inputs: CardInputs) -> str:
    c = inputs.calibration
    lines = ["## Calibration", ""]
    if not c:
        lines.append("Not calibrated (no `calibration.json`).")
        return "\n".join(lines)
    lines += [
        f"Temperature and prior shift fitted on {c['n_images']} validation images: T = {c['temperature']:.3f}, "
        f"shift {c.get('bias', 0.0):+.3f} on the ai - real logit gap, folded into the classifier's weight and bias. "
        "Measured on that validation split:",
        "",
        markdown_table(pd.DataFrame({
            "": ["ECE", "Brier score", "NLL"],
            "before": [c["ece_before"], c["brier_before"], c["nll_before"]],
            "after": [c["ece_after"], c["brier_after"], c["nll_after"]],
        })),
        "",
        f"Decision threshold {c['decision_threshold']:.4f} by rule `{c['decision_threshold_rule']}` "
        "(`max_accuracy`: best validation accuracy; `target_fpr=r`: lowest threshold whose validation "
        "false-positive rate is at most r).",
    ]
    return "\n".join(lines)


def _reproduce_section(inputs: CardInputs) -> str:
    data_dir = inputs.training.get("data_dir", "DATA_DIR")
    return "\n".join([
        "## Reproduce",
        "",
        "```bash",
        "accelerate launch scripts/train.py --config training_config.yaml --manifest manifest.csv "
        f"--data_dir {data_dir}",
        f"python scripts/evaluate.py --model MODEL_DIR --data_dir {data_dir} --robustness",
        "```",
    ])


def build_model_card(model_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The card for a model folder; `repo_id` goes into the usage snippet (default: the folder path)."""
    inputs = read_card_inputs(model_dir)
    model_name = (repo_id or Path(model_dir).resolve().name).split("/")[-1]
    data = card_data(inputs, model_name)
    body = "\n\n".join([
        _summary_section(inputs, model_name, repo_id or str(model_dir)),
        _limitations_section(inputs),
        _data_section(inputs),
        _training_section(inputs),
        _evaluation_section(inputs),
        _calibration_section(inputs),
        _reproduce_section(inputs),
    ])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def write_model_card(model_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write README.md into the model folder (also done at the end of every training)."""
    path = Path(model_dir) / CARD
    build_model_card(model_dir, repo_id).save(path)
    logger.info("model card written to %s", path)
    return path
