"""Run configuration: dataclasses parsed from YAML with command-line overrides.

`parse_config(argv, default_config)` reads `--config FILE` (YAML; `default_config` when the flag is absent:
scripts/train.py passes the repository's `configs/demo.yaml`), takes its values as defaults, then applies
`--key value` overrides from the command line. A key that no dataclass
knows is an error in both places, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from modeling.labels import DEFAULT_THRESHOLD_RULE
from modeling.processing import IMAGENET_MEAN, IMAGENET_STD, PROCESSOR_KINDS

logger = logging.getLogger(__name__)

STEM_INITS = ("stock", "highpass")
LAYER_INITS = ("stock", "fan_in")
SELF_FAKE_PROCESSING = ("matched", "all")  # modeling.augment.self_fakes, "The processing rule"
CLASS_WEIGHTINGS = ("balanced", "none")


class ConfigError(ValueError):
    """A configuration problem; the message names the file or key and the fix."""


@dataclass
class ModelArguments:
    """Which network to train and how its inputs are preprocessed."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Pretrained checkpoint (name or folder); gets a new 2-way head. "
                  "Leave empty to build a random-init ConvNext from hidden_sizes/depths."},
    )
    hidden_sizes: list[int] | None = field(default=None, metadata={"help": "Random init: channels per stage."})
    depths: list[int] | None = field(default=None, metadata={"help": "Random init: blocks per stage."})
    patch_size: int = field(default=4, metadata={"help": "Random init: stem stride (smaller keeps fine traces)."})
    layer_scale_init_value: float = field(default=1e-6, metadata={"help": "Random init: ConvNeXt layer scale."})
    drop_path_rate: float = field(default=0.0, metadata={"help": "Stochastic depth rate."})
    stem_init: str = field(
        default="stock",
        metadata={"help": f"Random init: the stem's initial weights, one of {STEM_INITS} ('highpass': a forensic "
                  "high-pass filter bank, see modeling/model.py)."},
    )
    layer_init: str = field(
        default="stock",
        metadata={"help": f"Random init: the initial weights of the blocks' and downsampling layers' convolutions, one "
                  f"of {LAYER_INITS} ('fan_in': N(0, layer_init_gain^2 / fan_in), see modeling/model.py; 'stock': "
                  "transformers' N(0, 0.02))."},
    )
    layer_init_gain: float = field(default=1.414, metadata={"help": "fan_in layer init: the gain (sqrt 2: He)."})
    stem_highpass_gain: float = field(default=16.0, metadata={"help": "highpass stem: gain of the zero-sum atoms."})
    stem_weight_std: float = field(default=0.2, metadata={"help": "highpass stem: std of the stem weights."})
    processor: str = field(default="crop", metadata={"help": f"Preprocessing, one of {PROCESSOR_KINDS}."})
    image_size: int = field(default=200, metadata={"help": "Side of the square model input."})
    image_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))

    def __post_init__(self) -> None:
        random_init = self.hidden_sizes is not None or self.depths is not None
        if self.model_name_or_path and random_init:
            raise ConfigError("set model_name_or_path (pretrained) or hidden_sizes+depths (random init), not both")
        if not self.model_name_or_path and not (self.hidden_sizes and self.depths):
            raise ConfigError("set model_name_or_path, or both hidden_sizes and depths for a random-init ConvNext")
        if random_init and len(self.hidden_sizes or []) != len(self.depths or []):
            raise ConfigError(f"hidden_sizes {self.hidden_sizes} and depths {self.depths} need one entry per stage")
        if self.stem_init not in STEM_INITS:
            raise ConfigError(f"stem_init must be one of {STEM_INITS}, got {self.stem_init!r}")
        if self.model_name_or_path and self.stem_init != "stock":
            raise ConfigError("stem_init is for random init; a pretrained model keeps its stem (set stem_init: stock)")
        if self.layer_init not in LAYER_INITS:
            raise ConfigError(f"layer_init must be one of {LAYER_INITS}, got {self.layer_init!r}")
        if self.model_name_or_path and self.layer_init != "stock":
            raise ConfigError("layer_init is for random init; a pretrained model keeps its weights (set layer_init: "
                              "stock)")
        if self.processor not in PROCESSOR_KINDS:
            raise ConfigError(f"processor must be one of {PROCESSOR_KINDS}, got {self.processor!r}")


@dataclass
class DataArguments:
    """Where the images are and which of them a run uses."""

    data_dir: str = field(default="data/demo", metadata={"help": "ArtiFact root, or a folder with real/ and ai/."})
    layout: str = field(default="auto", metadata={"help": "auto, artifact or folder."})
    manifest: str | None = field(default=None, metadata={"help": "Reuse a saved manifest.csv instead of sampling."})
    num_real: int = field(default=100_000, metadata={"help": "Real images in the subset (<= 0: all)."})
    num_ai: int = field(default=100_000, metadata={"help": "AI images in the subset (<= 0: all)."})
    max_per_source: int | None = field(default=None, metadata={"help": "Cap per source folder (<= 0: no cap)."})
    validation_fraction: float = field(default=0.1)
    test_fraction: float = field(default=0.1)
    holdout_generators: list[str] = field(
        default_factory=list,
        metadata={"help": "Sources kept out of training entirely (unseen-generator test); 'none' for none."},
    )
    demo_data: bool = field(default=False, metadata={"help": "Generate the demo dataset in data_dir if absent."})
    demo_images_per_source: int = field(default=400)
    validate_files: bool = field(
        default=True,
        metadata={"help": "Check every selected file (missing, truncated, unreadable mode) and exclude bad ones; "
                  "the list goes to bad_files.csv in output_dir."},
    )
    exclude_files: str | None = field(
        default=None, metadata={"help": "CSV with a 'path' column (scripts/validate_data.py output) to exclude."}
    )
    dedup: bool = field(
        default=True,
        metadata={"help": "Remove exact duplicates (same bytes) of training images from validation/test; "
                  "counts in dedup.json beside manifest.csv."},
    )
    preparation_workers: int | None = field(
        default=None, metadata={"help": "Processes/threads for validation and hashing (default: all cores)."}
    )

    def __post_init__(self) -> None:
        if self.max_per_source is not None and self.max_per_source <= 0:
            self.max_per_source = None  # like num_real/num_ai <= 0 (all): lets the CLI lift a YAML cap
        if [name.lower() for name in self.holdout_generators] == ["none"]:
            self.holdout_generators = []  # `--holdout_generators none` lifts a YAML list from the command line


@dataclass
class AugmentArguments:
    """Training-time robustness augmentations (CNNDetection-style blur + JPEG, flips, rescaling)."""

    train_crop_size: int | None = field(default=None, metadata={"help": "Random crop side; default: image_size."})
    hflip_prob: float = 0.5
    rescale_prob: float = 0.1
    rescale_range: list[float] = field(default_factory=lambda: [0.75, 1.25])
    blur_prob: float = 0.1
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])
    jpeg_prob: float = 0.1
    jpeg_quality: list[int] = field(default_factory=lambda: [65, 95])
    grayscale_prob: float = 0.05
    # self-made fakes (modeling.augment.self_fakes): a real training image -> random decoder -> ai
    self_fake_prob: float = field(
        default=0.0, metadata={"help": "P(a real training image becomes a self-made fake, labelled ai)."}
    )
    self_fake_jpeg_prob: float = field(
        default=1.0, metadata={"help": "With self-fakes on: P(final JPEG save) (which images: self_fake_processing)."}
    )
    self_fake_jpeg_quality: list[int] = field(default_factory=lambda: [65, 100])
    self_fake_factors: list[int] = field(default_factory=lambda: [2, 4, 8], metadata={"help": "Decoder scales."})
    self_fake_hf_restore: list[float] = field(
        default_factory=lambda: [0.0, 1.0], metadata={"help": "Share of the original's fine detail put back."}
    )
    self_fake_region: int = field(
        default=0, metadata={"help": "Work on a random window of this side (0: the whole image); >= the train crop."}
    )
    self_fake_resample_prob: float = field(
        default=0.0, metadata={"help": "With self-fakes on: P(resize by a random scale after the decoder, before the "
                                       "save), as ArtiFact resized both classes (which images: self_fake_processing)."}
    )
    self_fake_resample_range: list[float] = field(
        default_factory=lambda: [0.77, 1.25], metadata={"help": "Scales of that resize (ArtiFact: 200/side)."}
    )
    self_fake_learned_prob: float = field(
        default=0.0, metadata={"help": "Share of the self-fakes made by small autoencoders fitted on the run's "
                               "own real training images (modeling/augment/learned_decoder.py); the rest by the "
                               "hand-made family."}
    )
    self_fake_learned_archs: list[str] = field(
        default_factory=lambda: ["nearest_conv"],
        metadata={"help": "Decoder architectures of the learned family: nearest_conv, bilinear_conv, transposed_conv, "
                  "pixel_shuffle (one autoencoder per architecture and latent stride)."},
    )
    self_fake_learned_factors: list[int] = field(
        default_factory=lambda: [4], metadata={"help": "Latent strides of the learned family (2, 4, 8)."}
    )
    self_fake_learned_steps: int = field(default=300, metadata={"help": "Fitting steps of each autoencoder."})
    self_fake_learned_images: int = field(
        default=256, metadata={"help": "At most this many real training images to fit them on (a seeded draw)."}
    )
    self_fake_learned_hf_restore: list[float] | None = field(
        default=None, metadata={"help": "Share of the fine detail put back into the learned decoders' fakes "
                                "(default: self_fake_hf_restore); [0, 0] keeps what the decoder leaves."}
    )
    self_fake_learned_cache: str | None = field(
        default=None, metadata={"help": "Folder for the fitted decoders, reused when the images and settings "
                                "match (default: learned_decoders/ in output_dir)."}
    )
    camera_prob: float = field(
        default=0.0,
        metadata={"help": "P(a training image, real or ai, goes through one camera/sharing processing kind: digital "
                  "zoom, night mode, HDR, skin smoothing, re-share, screenshot, other size, thumbnail, portrait "
                  "blur; its label stays)."},
    )
    camera_kinds: list[str] = field(
        default_factory=list, metadata={"help": "Which kinds (names in modeling/augment/camera.py); empty: all."}
    )
    camera_subject_windows: bool = field(
        default=False,
        metadata={"help": "With self_fake_region windows: an ai training image's window of a kind that wipes part "
                  "of the frame (portrait blur) is centred on the part left sharp, where its trace survives; a "
                  "real's window sits anywhere."},
    )
    camera_validation: bool = field(
        default=False,
        metadata={"help": "The validation split also holds a processed copy of each image (kinds in turn, draws of "
                  "their own), so checkpoint choice, calibration and the threshold see processed reals."},
    )
    self_fake_processing: str = field(
        default="matched",
        metadata={"help": "Which images besides the self-fakes get that resize and save: 'matched' (true ai "
                  "images none, the reals that stay real the self-fakes' share of the ai class) or 'all'."},
    )

    def __post_init__(self) -> None:
        for name in ("hflip_prob", "rescale_prob", "blur_prob", "jpeg_prob", "grayscale_prob", "self_fake_prob",
                     "self_fake_jpeg_prob", "self_fake_resample_prob", "self_fake_learned_prob", "camera_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        for name in ("rescale_range", "blur_sigma", "jpeg_quality", "self_fake_jpeg_quality", "self_fake_hf_restore",
                     "self_fake_resample_range", "self_fake_learned_hf_restore"):
            lo_hi = getattr(self, name)
            if lo_hi is None:
                continue
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ConfigError(f"{name} must be [low, high], got {lo_hi}")
        if self.self_fake_processing not in SELF_FAKE_PROCESSING:
            raise ConfigError(f"self_fake_processing must be one of {SELF_FAKE_PROCESSING}, got "
                              f"{self.self_fake_processing!r}")


@dataclass
class RunArguments:
    """Project-level switches that are neither model, data nor Trainer settings."""

    keep_checkpoints: bool = field(
        default=False, metadata={"help": "Keep checkpoint-* folders (optimizer state) after a successful run."}
    )
    evaluate_robustness: bool = field(
        default=True,
        metadata={"help": "Run the robustness sweep (JPEG, downscale, blur, WebP) in the end-of-training evaluation."},
    )
    evaluate_stress: bool = field(
        default=True,
        metadata={"help": "Run the real-photo stress test (false-positive rates after camera and sharing processing) "
                  "in the end-of-training evaluation."},
    )
    stress_balanced: bool = field(
        default=False,
        metadata={"help": "That stress test on every real test image and as many ai ones (a seeded draw) instead "
                  "of every test image: the same false-positive rates at less cost (scripts/evaluate.py --stress "
                  "scores all)."},
    )
    stress_ai_ratio: float = field(
        default=1.0,
        metadata={"help": "With stress_balanced: ai images per real one in that stress test (its detection rates are "
                  "a sample; its false-positive rates keep every real image)."},
    )
    export_onnx: bool = field(
        default=True,
        metadata={"help": "End of training: write the checked ONNX fp32 and int8 models beside the weights (the "
                  "CPU fast path predict.py picks by itself; needs the `onnx` extra)."},
    )
    export_int8: bool = field(
        default=True,
        metadata={"help": "With export_onnx: also the static int8 model, kept only where its verdicts match fp32's "
                  "(false: fp32 ONNX only, the int8 step's time saved)."},
    )
    class_weighting: str = field(
        default="balanced",
        metadata={"help": "Training loss weights per label: 'balanced' (each label weighs half, from the training "
                  "split's counts after self-made fakes) or 'none' (every image the same)."},
    )
    source_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of training's auxiliary source loss: a throw-away head names each training image's "
                  "source (real, each ai folder, self-fakes), so features for every generator are rewarded from the "
                  "first step; 0: off. One process only. Not saved with the model."},
    )
    decision_threshold_rule: str = field(
        default=DEFAULT_THRESHOLD_RULE,
        metadata={"help": "How the decision threshold on P(ai) is chosen on validation: 'max_accuracy', or "
                  "'target_fpr=<rate>' (the lowest threshold whose false-positive rate on real images is <= rate)."},
    )
    kind_fpr_bound: float = field(
        default=0.10,
        metadata={"help": "With camera_validation and target_fpr: the threshold also keeps every processing kind's "
                  "95% upper confidence bound of its false-positive rate on validation reals at most this (a kind's "
                  "rate is an estimate from its few reals); 1: off."},
    )

    def __post_init__(self) -> None:
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ConfigError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}")
        if self.source_loss_weight < 0:
            raise ConfigError(f"source_loss_weight must be >= 0 (0: off), got {self.source_loss_weight}")
        if not 0 < self.kind_fpr_bound <= 1:
            raise ConfigError(f"kind_fpr_bound must be in (0, 1] (1: off), got {self.kind_fpr_bound}")
        if not self.stress_ai_ratio > 0:
            raise ConfigError(f"stress_ai_ratio must be > 0 (ai images per real one), got {self.stress_ai_ratio}")


CONFIG_CLASSES = (ModelArguments, DataArguments, AugmentArguments, RunArguments, TrainingArguments)


@dataclass
class RunConfig:
    model: ModelArguments
    data: DataArguments
    augment: AugmentArguments
    run: RunArguments
    training: TrainingArguments
    config_path: Path

    def to_flat_dict(self) -> dict[str, Any]:
        """Every resolved value under its own key: reloadable with `--config` (tokens are masked)."""
        flat: dict[str, Any] = {}
        for part in (self.model, self.data, self.augment, self.run):
            flat.update(dataclasses.asdict(part))
        flat.update(self.training.to_dict())  # to_dict masks *_token fields
        return {k: v for k, v in flat.items() if not k.endswith("_token") or v is None}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping is a ConfigError naming the path."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(values).__name__}")
    return values


def _check_known(keys: Sequence[str], known: set[str], where: str) -> None:
    unknown = [k for k in keys if k not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{where}: unknown key(s) {', '.join(hints)}")


def parse_config(argv: Sequence[str] | None = None, default_config: str | Path | None = None) -> RunConfig:
    """YAML values become the parser's defaults; command-line `--key value` pairs override them."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None if default_config is None else str(default_config))
    ns, rest = pre.parse_known_args(argv)
    if ns.config is None:
        raise ConfigError("no --config given: pass a YAML file, e.g. --config configs/demo.yaml (the demo recipe in "
                          "the repository) or a run's training_config.yaml")
    values = load_yaml(ns.config)

    parser = HfArgumentParser(CONFIG_CLASSES)
    parser.add_argument("--config", default=ns.config, help="YAML file with the run's settings.")
    known = {a.dest for a in parser._actions} - {"help", "config"}
    _check_known(list(values), known, str(ns.config))
    for action in parser._actions:
        if action.dest in values:
            action.required = False  # the YAML supplied it
    parser.set_defaults(**values)
    flags = [a.split("=", 1)[0][2:] for a in rest if a.startswith("--")]
    option_names = {s[2:] for a in parser._actions for s in a.option_strings}
    _check_known(flags, option_names, "command line")
    try:
        *parts, _ = parser.parse_args_into_dataclasses(args=list(rest))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{ns.config}: {err}") from err
    model, data, augment, run, training = parts
    return RunConfig(model, data, augment, run, training, Path(ns.config))


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the resolved configuration (reloadable with --config) as YAML."""
    with open(path, "w") as f:
        yaml.safe_dump(config.to_flat_dict(), f, sort_keys=True)
