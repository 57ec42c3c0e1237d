"""The release: a model card written into the model folder, and a push of that folder to the Hub.

    python scripts/push_to_hub.py --model outputs/demo --repo_id USER/NAME [--private]

The card (huggingface_hub `ModelCard`, saved as README.md) is rebuilt from what the folder holds:
config.json, training_config.yaml, manifest.csv, calibration.json and the test evaluation in
`eval/`. Its `model-index` metadata carries test accuracy and ROC-AUC. The upload is an explicit
list of files (safetensors weights, configs, processor, card, evaluation files and plots): never
checkpoints, optimizer state or pickles.

The token comes only from the environment (`HF_TOKEN`) or `hf auth login`; this module never reads
it beyond checking that one exists, and never logs or writes it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, constants, get_token

from modeling import evaluation
from modeling.calibration import CALIBRATION_FILE
from modeling.config import ConfigError, RunConfig
from modeling.data import DataError
from modeling.demo_data import AI_SOURCES, REAL_SOURCES

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
WEIGHTS_FILE = "model.safetensors"
REQUIRED_FILES = ("config.json", WEIGHTS_FILE, "preprocessor_config.json")
UPLOAD_TOP_LEVEL = (
    "config.json", WEIGHTS_FILE, "preprocessor_config.json", CARD_FILE, CALIBRATION_FILE,
    "training_config.yaml", "manifest.csv", "all_results.json", "train_results.json",
    "validation_results.json", "test_results.json", "test_unseen_results.json",
)
UPLOAD_EVAL = ("metrics.json", "per_source.csv", "robustness.csv", "roc_curve.png", "reliability_diagram.png",
               "confusion_matrix.png", "per_source.png", "robustness.png")
PLOTS = {
    "roc_curve.png": "ROC curve",
    "reliability_diagram.png": "Reliability diagram",
    "confusion_matrix.png": "Confusion matrix",
    "per_source.png": "Per-source rates",
    "robustness.png": "Robustness",
}
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


class HubError(RuntimeError):
    """A push that cannot happen; the message says why and what to do. Nothing was changed."""


# --------------------------------------------------------------------------- reading the folder


@dataclass
class CardInputs:
    """Everything the card reports, read from the model folder (None where a file is absent)."""

    model_dir: Path
    config: dict[str, Any]
    training: dict[str, Any]
    calibration: dict[str, Any] | None
    metrics: dict[str, Any] | None
    per_source: pd.DataFrame | None
    robustness: pd.DataFrame | None
    manifest_counts: pd.DataFrame | None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


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
    columns = [s for s in ("train", "validation", "test") if s in counts.columns]
    return counts[columns].reset_index().sort_values(["label", "source"], ascending=[False, True])


def read_card_inputs(model_dir: str | Path) -> CardInputs:
    model_dir = Path(model_dir)
    config = _read_json(model_dir / "config.json")
    if config is None:
        raise HubError(f"{model_dir / 'config.json'} not found: is {model_dir} a trained model folder?")
    training_path = model_dir / evaluation.TRAINING_CONFIG
    eval_dir = model_dir / evaluation.DEFAULT_EVAL_DIR
    return CardInputs(
        model_dir=model_dir,
        config=config,
        training=(yaml.safe_load(training_path.read_text()) or {}) if training_path.is_file() else {},
        calibration=_read_json(model_dir / CALIBRATION_FILE),
        metrics=_read_json(eval_dir / "metrics.json"),
        per_source=_read_csv(eval_dir / "per_source.csv"),
        robustness=_read_csv(eval_dir / "robustness.csv"),
        manifest_counts=_manifest_counts(model_dir / evaluation.MODEL_MANIFEST),
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
    """"demo" (generated demo data), "folder" (the user's real/ and ai/ folders) or "artifact"."""
    sources = set() if inputs.manifest_counts is None else set(inputs.manifest_counts["source"])
    if inputs.training.get("demo_data") or (sources and sources <= set(REAL_SOURCES + AI_SOURCES)):
        return "demo"
    return "folder" if inputs.training.get("layout") == "folder" else "artifact"


def _dataset_name(inputs: CardInputs) -> tuple[str, str]:
    """(model-index dataset type, name)."""
    return {
        "demo": ("synthetic-demo", "Synthetic demo data (modeling/demo_data.py)"),
        "folder": ("imagefolder", "Custom real/ and ai/ image folders"),
        "artifact": ("artifact", "ArtiFact"),
    }[_data_kind(inputs)]


def card_data(inputs: CardInputs, model_name: str) -> ModelCardData:
    """Hub metadata; `model-index` holds test accuracy and ROC-AUC when the folder has an evaluation."""
    results = []
    overall = (inputs.metrics or {}).get("all") or {}
    dataset_type, dataset_name = _dataset_name(inputs)
    for key, name in (("accuracy", "Accuracy"), ("roc_auc", "ROC-AUC")):
        if overall.get(key) is not None:
            results.append(EvalResult(
                task_type="image-classification", task_name="AI-generated image detection",
                dataset_type=dataset_type, dataset_name=dataset_name, dataset_split="test",
                metric_type=key, metric_name=name, metric_value=round(float(overall[key]), 4),
            ))
    return ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["ai-generated-image-detection", "convnext", "image-forensics"]
        + (["artifact"] if _data_kind(inputs) == "artifact" else []),
        metrics=["accuracy", "roc_auc"],
        eval_results=results or None,
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
            f"Scores are calibrated: a temperature of {cfg.get('calibration_temperature') or 1.0:.3f}, fitted on the "
            "validation split, is folded into the classifier head, so the `pipeline` score is the calibrated "
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
    ]
    return "\n".join(lines)


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
        intro = ("Synthetic demo data generated offline by `modeling/demo_data.py` (procedural scenes and textures "
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
    "blur_prob", "blur_sigma", "rescale_prob", "grayscale_prob", "fp16", "seed",
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


METRIC_ROWS = ("n_images", "accuracy", "roc_auc", "average_precision", "f1", "precision", "recall",
               "false_positive_rate", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct", "ece", "ece_before_calibration", "brier")


def _evaluation_section(inputs: CardInputs) -> str:
    m = inputs.metrics
    lines = ["## Evaluation", ""]
    if not m:
        lines.append("This folder holds no evaluation (`eval/metrics.json`); run `scripts/evaluate.py`.")
        return "\n".join(lines)
    sections = [s for s in ("all", "seen", "unseen") if s in m]
    columns = {"metric": list(METRIC_ROWS), **{s: [m[s].get(k) for k in METRIC_ROWS] for s in sections}}
    table = pd.DataFrame(columns, dtype=object)  # object: counts stay integers
    lines += [
        f"Test data: {m.get('data')}. Thresholded figures use the decision threshold "
        f"{_fmt(m.get('decision_threshold'))}; recall is the detection rate of ai images, the false-positive rate "
        "the share of real images called ai. ECE uses 15 equal-width bins of P(ai)."
        + (" *seen*: generators present in training; *unseen*: held-out generators against the same real "
           "images." if "unseen" in sections else ""),
        "",
        markdown_table(table),
    ]
    if inputs.per_source is not None:
        lines += ["", "### Per source", "", markdown_table(inputs.per_source)]
    if inputs.robustness is not None:
        lines += ["", "### Robustness", "",
                  "The same test images, degraded before preprocessing (JPEG re-save at quality 95/75/50, downscale "
                  "by 0.5, Gaussian blur sigma 1, WebP re-encode):", "", markdown_table(inputs.robustness)]
    eval_dir = inputs.model_dir / evaluation.DEFAULT_EVAL_DIR
    figures = [f"![{title}]({evaluation.DEFAULT_EVAL_DIR}/{name})" for name, title in PLOTS.items()
               if (eval_dir / name).is_file()]
    if figures:
        lines += ["", "### Plots", "", *figures]
    return "\n".join(lines)


def _calibration_section(inputs: CardInputs) -> str:
    c = inputs.calibration
    lines = ["## Calibration", ""]
    if not c:
        lines.append("Not calibrated (no `calibration.json`).")
        return "\n".join(lines)
    lines += [
        f"Temperature scaling fitted on {c['n_images']} validation images: T = {c['temperature']:.3f}, folded into "
        "the classifier's weight and bias. Measured on that validation split:",
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
    path = Path(model_dir) / CARD_FILE
    build_model_card(model_dir, repo_id).save(path)
    logger.info("model card written to %s", path)
    return path


# --------------------------------------------------------------------------- the push


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub reads it once, at import)."""
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in TRUE_VALUES


def check_push_ready() -> None:
    """Raise HubError, before anything is written or sent, if a push cannot work."""
    if hub_offline():
        raise HubError("HF_HUB_OFFLINE=1 is set, so nothing can be pushed to the Hugging Face Hub; unset it "
                       "(and make sure the machine is online), then push again.")
    if get_token() is None:
        raise HubError("No Hugging Face token found: run `hf auth login` or set the HF_TOKEN environment "
                       "variable, then push again.")


def upload_files(model_dir: str | Path) -> list[str]:
    """The files that go up, relative to the folder: weights (safetensors only), configs, card, evaluation."""
    model_dir = Path(model_dir)
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise HubError(f"{model_dir} lacks {missing}: push a folder written by training "
                       "(weights as model.safetensors, with config.json and preprocessor_config.json).")
    names = [n for n in UPLOAD_TOP_LEVEL if (model_dir / n).is_file()]
    names += [f"{evaluation.DEFAULT_EVAL_DIR}/{n}" for n in UPLOAD_EVAL
              if (model_dir / evaluation.DEFAULT_EVAL_DIR / n).is_file()]
    return names


def push_model_folder(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    commit_message: str = "Upload AI-image detector",
) -> str:
    """Create the repo if needed, refresh the card with the repo id, upload the files; returns the repo URL.

    All checks run before any change: an offline machine, a missing token or an incomplete folder
    raise HubError and leave the folder as it was.
    """
    model_dir = Path(model_dir)
    upload_files(model_dir)
    check_push_ready()
    api = HfApi()  # the token is found by huggingface_hub itself (HF_TOKEN or `hf auth login`)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    repo_id = getattr(url, "repo_id", None) or repo_id
    write_model_card(model_dir, repo_id)
    files = upload_files(model_dir)
    logger.info("uploading %d files to %s: %s", len(files), repo_id, ", ".join(files))
    api.upload_folder(repo_id=repo_id, folder_path=str(model_dir), allow_patterns=files,
                      commit_message=commit_message)
    return str(url)


# --------------------------------------------------------------------------- the end of a training run


def disable_trainer_push(config: RunConfig) -> bool:
    """Take the push away from Trainer (it would create the repo at init, which fails offline) and
    check now, before hours of training, that the push at the end can work. Returns whether to push."""
    args = config.training
    push = bool(args.push_to_hub)
    args.push_to_hub = False
    if push:
        try:
            check_push_ready()
        except HubError as err:
            raise ConfigError(f"push_to_hub is set but {err}") from err
    return push


def finish_training(trainer: Any, config: RunConfig, output_dir: str | Path, push: bool) -> None:
    """After the final metrics: test evaluation files for the card, the card, and the optional push.

    A failed push is logged with the command that retries it; the local folder is complete either way.
    """
    output_dir = Path(output_dir)
    args = config.training
    trainer.accelerator.wait_for_everyone()  # every process loads the weights the main process saved
    robustness = bool(getattr(config.run, "evaluate_robustness", True))
    try:
        data = evaluation.resolve_eval_data(output_dir, data_dir=config.data.data_dir, split="test")
        evaluation.run_evaluation(
            output_dir, data, output_dir / evaluation.DEFAULT_EVAL_DIR, batch_size=args.per_device_eval_batch_size,
            num_workers=args.dataloader_num_workers, robustness=robustness, accelerator=trainer.accelerator,
        )
    except DataError as err:
        logger.warning("no test evaluation for the model card: %s", err)
    if not trainer.is_world_process_zero():
        return
    repo_id = args.hub_model_id or output_dir.resolve().name
    write_model_card(output_dir, repo_id if push else None)
    if push:
        try:
            url = push_model_folder(output_dir, repo_id, private=bool(args.hub_private_repo))
            logger.info("pushed to %s", url)
        except Exception as err:  # the run's results are on disk; say how to retry instead of losing them
            logger.error("push to the Hub failed (%s); the model folder %s is complete. Retry with: "
                         "python scripts/push_to_hub.py --model %s --repo_id %s", err, output_dir, output_dir, repo_id)

