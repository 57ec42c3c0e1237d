"""The two class names in id order, and how a score becomes one of them.

Every consumer (config, dataset, metrics, predictor) reads the names here. A score is P(ai); an
image is called ai when P(ai) >= the model's `decision_threshold` (stored in config.json by
calibration; 0.5 for a model that was never calibrated).

Another binary detector (labels `artificial`/`human`, `FAKE`/`REAL`, ...) is read through a `LabelMap`:
its AI class is named by the caller (`ai_label`) or inferred from the label names, and its scores are
P(that class), so every model is measured on the same yardstick.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LABEL_NAMES: tuple[str, ...] = ("real", "ai")
ID2LABEL: dict[int, str] = dict(enumerate(LABEL_NAMES))
LABEL2ID: dict[str, int] = {name: i for i, name in ID2LABEL.items()}
AI_LABEL_ID: int = LABEL2ID["ai"]
DEFAULT_THRESHOLD = 0.5
# the operating point chosen on validation: at most 5% of real images called ai. It depends only on the
# real images, so it does not move with which generators training happened to see (max_accuracy does)
DEFAULT_THRESHOLD_RULE = "target_fpr=0.05"


def decision_threshold(config: Any) -> float:
    """The model config's stored threshold on P(ai); 0.5 for a model that was never calibrated."""
    value = getattr(config, "decision_threshold", None)
    return DEFAULT_THRESHOLD if value is None else float(value)


# --------------------------------------------------------------------------- other detectors' label names

# words that name one side of a binary detector's labels, for models not trained by this package
AI_WORDS = frozenset({"ai", "artificial", "fake", "fakes", "generated", "synthetic", "machine", "deepfake", "aigc"})
REAL_WORDS = frozenset({"real", "reals", "human", "authentic", "natural", "genuine", "photo", "photograph", "camera"})
NEGATIONS = frozenset({"not", "non", "no"})  # "not_ai", "non-real": never guess which side those mean


class LabelMapError(ValueError):
    """A model's labels cannot be mapped to ai/real: not two classes, ambiguous, or `ai_label` names none."""


@dataclass(frozen=True)
class LabelMap:
    """Which class of a binary detector is the AI side: scores are P(that class), labels become ai/real."""

    names: tuple[str, ...]  # the model's own label names, in id order
    ai_id: int
    inferred: bool  # from the label names; else given as `ai_label`

    @property
    def real_id(self) -> int:
        return 1 - self.ai_id

    @property
    def is_own(self) -> bool:
        """True for this package's labels (real=0, ai=1): the only folders whose ONNX exports are used."""
        return self.names == LABEL_NAMES

    def label(self, class_id: int) -> str:
        """The package's name ("ai"/"real") of one of the model's classes."""
        return "ai" if int(class_id) == self.ai_id else "real"

    def describe(self) -> str:
        """`ai = 'artificial' (id 0), real = 'human' (id 1), inferred from the label names`."""
        how = "inferred from the label names" if self.inferred else "given by ai_label"
        return (f"ai = {self.names[self.ai_id]!r} (id {self.ai_id}), real = {self.names[self.real_id]!r} "
                f"(id {self.real_id}), {how}")


def label_words(name: str) -> set[str]:
    """`AI-generated` -> {ai, generated}; `RealArt` -> {real, art}: camelCase and punctuation split."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(name))
    return set(re.findall(r"[a-z0-9]+", spaced.lower()))


def label_side(name: str) -> str | None:
    """"ai", "real", or None when the name says neither, both, or is negated."""
    words = label_words(name)
    is_ai, is_real = bool(words & AI_WORDS), bool(words & REAL_WORDS)
    if words & NEGATIONS or is_ai == is_real:
        return None
    return "ai" if is_ai else "real"


def _names_in_order(id2label: Mapping[Any, str]) -> tuple[str, ...]:
    """The label names by id; ids must be 0..n-1 (config.json stores them as strings)."""
    labels = {int(k): str(v) for k, v in (id2label or {}).items()}
    if sorted(labels) != list(range(len(labels))):
        raise LabelMapError(f"labels {labels} are not numbered 0..{len(labels) - 1}")
    return tuple(labels[i] for i in range(len(labels)))


def _given_ai_id(names: tuple[str, ...], ai_label: str | int) -> int:
    """The id `ai_label` names: a label name (exact, else case-insensitive), or the id itself."""
    text = str(ai_label)
    if text in names:
        return names.index(text)
    folded = [i for i, name in enumerate(names) if name.casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    if text.isdigit() and int(text) < len(names):
        return int(text)
    raise LabelMapError(f"ai_label {text!r} is none of the model's labels {list(names)}")


def label_map(id2label: Mapping[Any, str], ai_label: str | int | None = None) -> LabelMap:
    """Map a binary detector's labels to ai/real: `ai_label` names the AI class, else the names decide.

    The names decide only when exactly one of them names the AI side (AI_WORDS) and the other the real
    side (REAL_WORDS); anything else is refused rather than guessed, since a swapped map inverts every score.
    """
    names = _names_in_order(id2label)
    if len(names) != 2:
        raise LabelMapError(f"labels {list(names)}: {len(names)} classes; this is not a real/ai detector "
                            "(a binary image classifier is needed)")
    if ai_label is not None:
        return LabelMap(names, _given_ai_id(names, ai_label), inferred=False)
    sides = [label_side(name) for name in names]
    if sorted(sides, key=str) != ["ai", "real"]:
        said = ", ".join(f"{name!r}: {side or 'neither'}" for name, side in zip(names, sides, strict=True))
        raise LabelMapError(f"cannot tell which label is the AI side ({said}); name it with ai_label / --ai_label")
    return LabelMap(names, sides.index("ai"), inferred=True)
