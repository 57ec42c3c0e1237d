"""Batch detection over files: the predictor that `scripts/predict.py`, the web demo, benchmarks and
user code share.

    from modeling import Detector       # or: from modeling.predictor import Detector
    detector = Detector.from_pretrained("outputs/demo")          # backend="auto": fastest available
    for row in detector.predict(["photos/", "more/*.png"]):      # files, folders (recursive), globs
        print(row.path, row.label, row.score_ai, row.error)

Every input gets one row, in input order: a file that cannot be decoded gets `error` and no score.
Each row also carries what the file claims about its origin (`row.provenance`: C2PA manifest, XMP,
generator text; `modeling.provenance`), read in the decode workers beside the pixels and never part of
the score (`provenance=False` skips it).

Any binary `AutoModelForImageClassification` is a detector here: its AI class is named by `ai_label`
or inferred from the label names (`modeling.labels.label_map`), `score_ai` is P(that class), and the
row's `label` is "ai" or "real" whatever the model calls them.

Backends (`modeling.inference.runners`; `Detector.backend_name` says which one runs) are picked
fastest first among those that keep fp32's verdicts: a checked int8 ONNX export, a checked fp32 ONNX export,
then torch fp32; torch bf16 only when asked for. An export is used only while its record matches the weights.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from modeling.images import ImageLoadError, load_image
from modeling.inference.images import (
    InputItem,
    PixelBatch,
    collate_pixels,
    default_num_workers,
    expand_inputs,
    pixel_batches,
)
from modeling.inference.runners import OnnxRunner, TorchRunner
from modeling.labels import LabelMap, LabelMapError, decision_threshold, label_map
from modeling.metrics import ai_scores
from modeling.processing import process_image
from modeling.provenance import Provenance, read_provenance
from modeling.run_folder import ONNX_FILES, RunFolder
from modeling.system import cpu_has_native_bf16

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.onnx", "*.md"]
DEFAULT_CROPS = 1  # crops per image larger than the model input: one already separates (docs/results.md, multi-crop)


class ModelLoadError(RuntimeError):
    """The model folder or repo cannot be used: missing, unreadable, or not a real/ai detector."""


@dataclass(frozen=True)
class PredictionRow:
    """One output row per input. `label`/`score_ai` are None exactly when `error` says why; `provenance`
    is what the file claims about its origin (None where it was not read), beside the score, never in it."""

    path: str
    label: str | None
    score_ai: float | None
    error: str | None = None
    provenance: Provenance | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat columns: path, label, score_ai, error, then the `provenance_*` columns where it was read."""
        row = {"path": self.path, "label": self.label, "score_ai": self.score_ai, "error": self.error}
        return {**row, **(self.provenance.to_dict() if self.provenance is not None else {})}

    def to_record(self) -> dict[str, Any]:
        """As `to_dict`, with provenance one nested object (lists kept as lists): for JSON lines."""
        row = {"path": self.path, "label": self.label, "score_ai": self.score_ai, "error": self.error}
        if self.provenance is not None:
            row["provenance"] = {**asdict(self.provenance), "summary": self.provenance.summary}
        return row



def resolve_model_dir(model: str | os.PathLike) -> Path:
    """A local folder as is; anything else is taken as a Hub repo id and downloaded (cached)."""
    path = Path(model)
    if path.is_dir():
        return path
    if path.exists() or str(model).startswith((".", "/")) or str(model).count("/") > 1:
        raise ModelLoadError(f"{model}: not a model folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model), allow_patterns=HUB_PATTERNS))
    except Exception as err:  # noqa: BLE001 - offline, missing repo, auth: all mean "cannot load"
        raise ModelLoadError(f"{model}: not a local folder and not downloadable from the Hub ({err})") from err


def check_labels(config: Any, where: Path, ai_label: str | int | None = None) -> LabelMap:
    """Which class is the AI side (scores are P(that class)); a model that is not a binary detector, or
    whose labels do not say which side is AI without `ai_label`, is refused."""
    try:
        return label_map(config.id2label, ai_label)
    except LabelMapError as err:
        raise ModelLoadError(f"{where}: {err}") from err


def _onnx_choice(model_dir: Path, kind: str) -> tuple[Path, str] | str:
    """(file, kind) of a usable ONNX export, or the reason there is none."""
    reason = RunFolder(model_dir).usable_onnx(kind)
    return (model_dir / ONNX_FILES[kind], kind) if reason is None else reason


def _pick_backend(model_dir: Path, backend: str, precision: str, device: str) -> tuple[str, str, Path | None]:
    """(backend, precision, onnx file), fastest first among the verdict-safe ones: checked int8 ONNX > checked fp32
    ONNX > torch fp32. bf16 only when asked for: its scores move by up to ~0.02 and turn verdicts near the threshold
    (0.6% of a demo test set on a native-bf16 CPU, docs/results.md, "Calibration and verdicts").

    That is the measured speed order on CPUs (docs/results.md, "Prediction speed"); GPUs use torch.
    """
    if backend not in BACKENDS or precision not in PRECISIONS:
        raise ValueError(f"backend must be one of {BACKENDS} and precision one of {PRECISIONS}")
    if (backend, precision) in (("torch", "int8"), ("onnx", "bf16")):
        raise ValueError(f"{backend} does not offer {precision}: torch has fp32/bf16, onnx fp32/int8")
    if backend == "torch" or (backend == "auto" and (device != "cpu" or precision == "bf16")):
        if precision == "bf16" and device == "cpu" and not cpu_has_native_bf16():
            logger.warning("this CPU has no native bf16 (avx512_bf16/amx): bf16 is emulated and slower than fp32")
        return "torch", "bf16" if precision == "bf16" else "fp32", None
    reasons = []
    for kind in ["int8", "fp32"] if precision == "auto" else [precision]:
        choice = _onnx_choice(model_dir, kind)
        if not isinstance(choice, str):
            return "onnx", kind, choice[0]
        reasons.append(choice)
    if backend == "onnx":
        raise ModelLoadError(f"no usable ONNX model: {'; '.join(reasons)}. Run scripts/export_onnx.py --model DIR")
    logger.info("no usable ONNX export (%s): using torch; `python scripts/export_onnx.py --model %s --quantize "
                "int8` makes CPU prediction about 2x faster", "; ".join(reasons), model_dir)
    return "torch", "fp32", None


def _backend_for(
    model_dir: Path, backend: str, precision: str, device: str, labels: LabelMap
) -> tuple[str, str, Path | None]:
    """`_pick_backend` for this package's folders; another detector runs on torch (ONNX exports are checked
    against this package's own weights and labels only)."""
    if labels.is_own:
        return _pick_backend(model_dir, backend, precision, device)
    if backend == "onnx":
        raise ModelLoadError(f"{model_dir}: ONNX is used only for this package's model folders; use backend torch")
    return _pick_backend(model_dir, "torch", "fp32" if precision == "int8" else precision, device)


class Detector:
    """The saved detector with its saved processor, a backend, a threshold, and batch settings."""

    def __init__(
        self,
        runner: TorchRunner | OnnxRunner,
        processor: Any,
        config: Any,
        model_dir: Path,
        threshold: float | None = None,
        batch_size: int = 16,
        num_workers: int | None = None,
        crops: int = DEFAULT_CROPS,
        labels: LabelMap | None = None,
        provenance: bool = True,
        trust_anchors: str | os.PathLike | None = None,
    ):
        self.runner = runner
        self.processor = processor
        self.config = config
        self.model_dir = model_dir
        self.labels = labels or check_labels(config, model_dir)
        self.provenance = provenance
        self.trust_anchors = trust_anchors if provenance else None
        if provenance:
            check_provenance_setup(self.trust_anchors)
        self.threshold = decision_threshold(config) if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        if crops < 1:
            raise ValueError(f"crops must be >= 1, got {crops}")
        self.crops = crops

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike,
        backend: str = "auto",
        precision: str = "auto",
        threshold: float | None = None,
        batch_size: int = 16,
        num_workers: int | None = None,
        num_threads: int | None = None,
        device: str | None = None,
        crops: int = DEFAULT_CROPS,
        ai_label: str | int | None = None,
        provenance: bool = True,
        trust_anchors: str | os.PathLike | None = None,
    ) -> Detector:
        """Load a model folder (or Hub repo) written by training, or any binary image classifier;
        `backend="auto"` picks the fastest.

        num_threads: compute threads (default: all cores; sets torch's global count for torch).
        crops: native-resolution crops per image larger than the model input, their logits averaged
        (`modeling.processing.process_image`); 1 is the processor's single center crop.
        ai_label: the model's name (or id) of its AI class; None infers it from the label names.
        provenance: read each file's provenance beside its score; trust_anchors: a PEM file of root
        certificates whose C2PA signers count as trusted.
        """
        if backend not in BACKENDS or precision not in PRECISIONS:
            raise ValueError(f"backend must be one of {BACKENDS} and precision one of {PRECISIONS}")
        model_dir = resolve_model_dir(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            config = AutoConfig.from_pretrained(str(model_dir))
            labels = check_labels(config, model_dir, ai_label)
            processor = AutoImageProcessor.from_pretrained(str(model_dir))
            kind, precision, onnx_file = _backend_for(model_dir, backend, precision, device, labels)
            if kind == "onnx":
                runner: TorchRunner | OnnxRunner = OnnxRunner(onnx_file, precision, num_threads)
            else:
                if num_threads:
                    torch.set_num_threads(num_threads)
                net = AutoModelForImageClassification.from_pretrained(str(model_dir), use_safetensors=True)
                runner = TorchRunner(net, bf16=precision == "bf16", device=device)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{model}: cannot load the model ({err})") from err
        return cls(runner, processor, config, model_dir, threshold, batch_size, num_workers, crops, labels,
                   provenance, trust_anchors)

    @property
    def backend_name(self) -> str:
        return self.runner.name

    def describe(self) -> str:
        where = getattr(self.runner, "path", None) or self.model_dir
        labels = "" if self.labels.is_own else f"; labels: {self.labels.describe()}"
        return (
            f"{self.backend_name} ({where}), threshold {self.threshold:g}, batch {self.batch_size}, "
            f"{self.num_workers} decode worker(s), {self.crops} crop(s) per large image{labels}"
        )

    def _label(self, score: float) -> str:
        return "ai" if score >= self.threshold else "real"

    def score_batch(self, batch: PixelBatch, paths: Sequence[str]) -> list[PredictionRow]:
        """Rows for one collated batch, in its order; non-finite model output is an error, not a score."""
        scored: dict[int, PredictionRow] = {}
        if batch.pixel_values is not None:
            # at most batch_size crops per model call: 16 images x 16 crops in one call took 22 GB
            chunks = batch.pixel_values.split(self.batch_size)
            logits = np.concatenate([self.runner(chunk) for chunk in chunks])  # (crops of the batch, num_labels)
            per_image = np.split(logits, np.cumsum(batch.crop_counts)[:-1])
            mean_logits = np.stack([crops.mean(axis=0) for crops in per_image])  # mean of the crops' logits
            scores = ai_scores(mean_logits, self.labels.ai_id)
            for i, score in zip(batch.good, scores, strict=True):
                if np.isfinite(score):
                    scored[i] = PredictionRow(paths[i], self._label(float(score)), float(score))
                else:
                    scored[i] = PredictionRow(paths[i], None, None, f"{paths[i]}: model output is not finite")
        rows = [scored.get(i) or PredictionRow(paths[i], None, None, batch.errors[i]) for i in batch.indices]
        return [replace(row, provenance=batch.provenance.get(i)) for i, row in zip(batch.indices, rows, strict=True)]

    def _scored_batches(self, batches: Iterable[PixelBatch], paths: Sequence[str]) -> Iterator[list[PredictionRow]]:
        """Rows of each batch, in order; up to the runner's `concurrent_runs` batches are scored at once."""
        parallel = getattr(self.runner, "concurrent_runs", 1)
        if parallel <= 1:
            yield from (self.score_batch(batch, paths) for batch in batches)
            return
        with ThreadPoolExecutor(parallel, thread_name_prefix="detector") as pool:  # runs release the GIL
            in_flight: deque[Future[list[PredictionRow]]] = deque()
            for batch in batches:
                in_flight.append(pool.submit(self.score_batch, batch, paths))
                if len(in_flight) >= parallel:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()

    def predict(self, inputs: Iterable[str | os.PathLike | InputItem]) -> Iterator[PredictionRow]:
        """One row per input file, in input order (see `expand_inputs` for folders and globs)."""
        items = expand_inputs(inputs)
        readable = [item.path for item in items if item.error is None]
        pending = iter(items)
        batches = pixel_batches(readable, self.processor, self.batch_size, self.num_workers, self.crops,
                                self.provenance, self.trust_anchors)
        for rows in self._scored_batches(batches, readable):
            for row in rows:
                for item in pending:  # emit inputs that resolved to nothing where they were given
                    if item.error is None:
                        break
                    yield PredictionRow(item.path, None, None, item.error)
                yield row
        for item in pending:
            yield PredictionRow(item.path, None, None, item.error)

    def predict_images(self, images: Sequence[Any]) -> list[PredictionRow]:
        """Score in-memory inputs (PIL images, bytes, paths) in this process: for demos and notebooks."""
        rows = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            names = [getattr(im, "filename", None) or f"<image {start + k}>" for k, im in enumerate(chunk)]
            items = []
            for k, image in enumerate(chunk):
                provenance = self._provenance_of(image)
                try:
                    pixels = process_image(self.processor, load_image(image), self.crops)
                    items.append((k, pixels, None, provenance))
                except ImageLoadError as err:
                    items.append((k, None, str(err), provenance))
            rows.extend(self.score_batch(collate_pixels(items), names))
        return rows

    def _provenance_of(self, image: Any) -> Provenance | None:
        """An in-memory input's provenance, from the bytes or file behind it (a decoded image has only its
        filename); None when provenance is off or there is no file to read."""
        source = file_source(image)
        return read_provenance(source, self.trust_anchors) if self.provenance and source is not None else None


def file_source(image: Any) -> str | os.PathLike | bytes | None:
    """The file bytes or path behind an input of `load_image`, or None (a PIL image made in memory)."""
    if isinstance(image, dict):
        return image.get("bytes") or image.get("path")
    if isinstance(image, (str, os.PathLike, bytes)):
        return image
    return getattr(image, "filename", None) or None


def check_provenance_setup(trust_anchors: str | os.PathLike | None) -> None:
    """A missing or unusable trust-anchor file is a setup mistake: raise (ValueError) before any file is read.

    Reading an empty input also imports c2pa once here, so decode workers forked later start with it.
    """
    try:
        read_provenance(b"", trust_anchors)
    except OSError as err:
        raise ValueError(f"trust anchors {trust_anchors}: {err}") from err
