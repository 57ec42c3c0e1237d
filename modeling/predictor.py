"""Batch detection over files: the predictor that `scripts/predict.py`, benchmarks and user code share.

    from modeling.predictor import Detector
    detector = Detector.from_pretrained("outputs/demo")          # backend="auto": fastest available
    for row in detector.predict(["photos/", "more/*.png"]):      # files, folders (recursive), globs
        print(row.path, row.label, row.score_ai, row.error)

Pixels are exactly evaluation's: every file goes through `load_image` and the image processor saved
beside the weights (the same two calls `BatchTransform` makes), in DataLoader worker processes so
that decoding overlaps with the model. Every input gets one row, in input order: a file that cannot
be decoded gets `error` and no score, never a made-up one.

Backends (`Detector.backend_name` says which one runs):
- "torch-fp32": the saved model in PyTorch, channels-last.
- "torch-bf16": the same under CPU bf16 autocast, only where the CPU computes bf16 natively
  (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slower than fp32. The first batch is also
  run in fp32 and bf16 is dropped if the scores disagree by more than BF16_TOLERANCE.
- "onnx-fp32" / "onnx-int8": onnxruntime on the files `modeling.onnx_export` writes beside the
  weights; used only while its parity record matches the current weights.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import ImageFile
from torch.utils.data import DataLoader, Dataset
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from modeling.calibration import ai_scores, decision_threshold
from modeling.labels import ID2LABEL
from modeling.processing import ImageLoadError, load_image

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .gif .bmp .tif .tiff .avif .ppm .pgm .pbm".split()
)
BF16_TOLERANCE = 0.02  # max |score difference| bf16 vs fp32 on the first batch before bf16 is dropped
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
HUB_PATTERNS = ["*.json", "*.safetensors", "*.onnx", "*.md"]


class ModelLoadError(RuntimeError):
    """The model folder or repo cannot be used: missing, unreadable, or not a real/ai detector."""


@dataclass(frozen=True)
class PredictionRow:
    """One output row per input. `label`/`score_ai` are None exactly when `error` says why."""

    path: str
    label: str | None
    score_ai: float | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InputItem:
    """A file to score, or an input that resolved to nothing (with the reason)."""

    path: str
    error: str | None = None


def _has_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _folder_images(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def expand_inputs(inputs: Iterable[str | os.PathLike | InputItem]) -> list[InputItem]:
    """Files stay as given, folders become their image files (recursive, sorted), globs their matches.

    A file named explicitly is kept whatever its extension (its decode error will say what it is);
    folders keep only image extensions. Duplicates are scored once.
    """
    items: list[InputItem] = []
    for raw in inputs:
        if isinstance(raw, InputItem):
            items.append(raw)
            continue
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            found = _folder_images(path)
            items.extend(InputItem(p) for p in found)
            if not found:
                items.append(InputItem(text, f"{text}: folder holds no image files"))
        elif path.exists() or not _has_magic(text):
            items.append(InputItem(text) if path.exists() else InputItem(text, f"{text}: no such file or folder"))
        else:
            matches = sorted(glob.glob(text, recursive=True))
            for match in matches:
                items.extend(InputItem(p) for p in (_folder_images(Path(match)) if Path(match).is_dir() else [match]))
            if not matches:
                items.append(InputItem(text, f"{text}: pattern matched no files"))
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.path not in seen:
            seen.add(item.path)
            unique.append(item)
    return unique


# --------------------------------------------------------------------------- decoding


class ImageFiles(Dataset):
    """Index -> (index, pixel_values or None, error or None): decode + saved processor, as evaluation."""

    def __init__(self, paths: Sequence[str], processor: Any):
        self.paths = list(paths)
        self.processor = processor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        path = self.paths[i]
        try:
            image = load_image(path)
            return i, self.processor(image, return_tensors="pt")["pixel_values"][0], None
        except ImageLoadError as err:
            return i, None, str(err)
        except Exception as err:  # noqa: BLE001 - one odd file must not end a job over thousands
            return i, None, f"{path}: {type(err).__name__}: {err}"


@dataclass
class PixelBatch:
    """A collated batch: positions of all items, the stacked good ones, and the errors of the rest."""

    indices: list[int]
    good: list[int]
    pixel_values: torch.Tensor | None
    errors: dict[int, str]


def collate_pixels(items: list[tuple[int, torch.Tensor | None, str | None]]) -> PixelBatch:
    good = [(i, px) for i, px, _ in items if px is not None]
    return PixelBatch(
        indices=[i for i, _, _ in items],
        good=[i for i, _ in good],
        pixel_values=torch.stack([px for _, px in good]) if good else None,  # (N, C, H, W)
        errors={i: err for i, _, err in items if err is not None},
    )


def default_num_workers() -> int:
    """Decode workers: on a small CPU one worker overlaps decoding with the model without starving it."""
    return max(1, min(4, default_num_threads() // 2))


def pixel_batches(
    paths: Sequence[str], processor: Any, batch_size: int, num_workers: int
) -> Iterator[PixelBatch]:
    """Decoded, processed batches in input order; workers fork so they start without re-importing."""
    context = "fork" if num_workers > 0 and "fork" in torch.multiprocessing.get_all_start_methods() else None
    loader = DataLoader(
        ImageFiles(paths, processor),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_pixels,
        multiprocessing_context=context,
    )
    with _strict_truncation():
        yield from loader


@contextlib.contextmanager
def _strict_truncation() -> Iterator[None]:
    """A truncated JPEG must be an error row, not a grey-filled image scored as if it were whole."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    if previous:
        logger.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on; turning it off while predicting")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


# --------------------------------------------------------------------------- hardware


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux); empty where /proc/cpuinfo is absent."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True where bf16 matmuls run in hardware (AVX-512 BF16 / AMX); emulated bf16 is slower than fp32."""
    flags = cpu_flags()
    if flags:
        return bool(NATIVE_BF16_FLAGS & flags)
    capability = torch.backends.cpu.get_cpu_capability().upper()  # non-Linux: e.g. "AVX512_BF16"?
    return "BF16" in capability or "AMX" in capability


def default_num_threads() -> int:
    """The cores this process may use (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- backends


class TorchRunner:
    """pixel_values -> (N, num_labels) float32 logits with the PyTorch model."""

    def __init__(self, model: torch.nn.Module, bf16: bool = False, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)  # oneDNN's fast conv layout
        self.bf16 = bf16
        self._checked = not bf16

    @property
    def name(self) -> str:
        return "torch-bf16" if self.bf16 else "torch-fp32"

    def _forward(self, pixel_values: torch.Tensor, bf16: bool) -> np.ndarray:
        pixel_values = pixel_values.to(self.device, memory_format=torch.channels_last)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)
        with torch.inference_mode(), autocast:
            return self.model(pixel_values=pixel_values).logits.float().cpu().numpy()

    def __call__(self, pixel_values: torch.Tensor) -> np.ndarray:
        logits = self._forward(pixel_values, self.bf16)
        if not self._checked:  # first batch: bf16 must agree with fp32, else drop it
            self._checked = True
            reference = self._forward(pixel_values, False)
            gap = float(np.nanmax(np.abs(ai_scores(logits) - ai_scores(reference))))
            if not gap <= BF16_TOLERANCE:
                logger.warning("bf16 scores differ from fp32 by %.4f (> %s): using fp32", gap, BF16_TOLERANCE)
                self.bf16 = False
                return reference
        return logits


def onnx_session(path: str | Path, num_threads: int | None = None):
    """An onnxruntime CPU session; threads do not spin, so they leave the cores to the decode workers."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads or default_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


MAX_CONCURRENT_RUNS = 8


class OnnxRunner:
    """pixel_values -> (N, num_labels) float32 logits with onnxruntime.

    The cores are used by running several batches at once (`concurrent_runs`, one onnxruntime thread
    each; `Detector.predict` keeps that many in flight) rather than by splitting each operator over
    threads: on 2 cores, 2 single-threaded runs measured 26-30 images/s against 21-26 for one
    2-thread run, because per-operator thread hand-offs cost 10-25% more CPU per image. A single
    call therefore runs on one core.
    """

    def __init__(self, path: str | Path, precision: str, num_threads: int | None = None):
        self.path = Path(path)
        self.precision = precision
        cores = num_threads or default_num_threads()
        self.concurrent_runs = max(1, min(cores, MAX_CONCURRENT_RUNS))
        self.session = onnx_session(path, max(1, cores // self.concurrent_runs))
        self.input_name = self.session.get_inputs()[0].name

    @property
    def name(self) -> str:
        return f"onnx-{self.precision}"

    def __call__(self, pixel_values: torch.Tensor) -> np.ndarray:
        feed = {self.input_name: pixel_values.numpy().astype(np.float32, copy=False)}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)


# --------------------------------------------------------------------------- loading


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


def check_labels(config: Any, where: Path) -> None:
    """Scores are P(label 1); refuse a model whose labels are not exactly real=0, ai=1."""
    labels = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    if labels != ID2LABEL:
        raise ModelLoadError(f"{where}: labels {labels} are not {ID2LABEL}; this is not a real/ai detector")


def _onnx_choice(model_dir: Path, kind: str) -> tuple[Path, str] | str:
    """(file, kind) of a usable ONNX export, or the reason there is none."""
    from modeling import onnx_export  # local import: onnx_export imports this module

    reason = onnx_export.usable_export(model_dir, kind)
    return (model_dir / onnx_export.ONNX_FILES[kind], kind) if reason is None else reason


def _pick_backend(model_dir: Path, backend: str, precision: str, device: str) -> tuple[str, str, Path | None]:
    """(backend, precision, onnx file), fastest first: int8 ONNX > native bf16 > fp32 ONNX > torch fp32.

    That is the measured speed order on CPUs (README, "Batch prediction"); GPUs use torch.
    """
    if backend not in BACKENDS or precision not in PRECISIONS:
        raise ValueError(f"backend must be one of {BACKENDS} and precision one of {PRECISIONS}")
    if (backend, precision) in (("torch", "int8"), ("onnx", "bf16")):
        raise ValueError(f"{backend} does not offer {precision}: torch has fp32/bf16, onnx fp32/int8")
    native_bf16 = device == "cpu" and cpu_has_native_bf16()
    if backend == "torch" or (backend == "auto" and (device != "cpu" or precision == "bf16")):
        bf16 = precision == "bf16" or (precision == "auto" and native_bf16)
        if precision == "bf16" and device == "cpu" and not native_bf16:
            logger.warning("this CPU has no native bf16 (avx512_bf16/amx): bf16 is emulated and slower than fp32")
        return "torch", "bf16" if bf16 else "fp32", None
    reasons = []
    for kind in ["int8", "fp32"] if precision == "auto" else [precision]:
        if backend == "auto" and precision == "auto" and kind == "fp32" and native_bf16:
            return "torch", "bf16", None  # native bf16 beats fp32 ONNX
        choice = _onnx_choice(model_dir, kind)
        if not isinstance(choice, str):
            return "onnx", kind, choice[0]
        reasons.append(choice)
    if backend == "onnx":
        raise ModelLoadError(f"no usable ONNX model: {'; '.join(reasons)}. Run scripts/export_onnx.py --model DIR")
    logger.info("no usable ONNX export (%s): using torch", "; ".join(reasons))
    return "torch", "fp32", None


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
    ):
        self.runner = runner
        self.processor = processor
        self.config = config
        self.model_dir = model_dir
        self.threshold = decision_threshold(config) if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers

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
    ) -> Detector:
        """Load a model folder (or Hub repo) written by training; `backend="auto"` picks the fastest.

        num_threads: compute threads (default: all cores; sets torch's global count for torch).
        """
        if backend not in BACKENDS or precision not in PRECISIONS:
            raise ValueError(f"backend must be one of {BACKENDS} and precision one of {PRECISIONS}")
        model_dir = resolve_model_dir(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            config = AutoConfig.from_pretrained(str(model_dir))
            check_labels(config, model_dir)
            processor = AutoImageProcessor.from_pretrained(str(model_dir))
            kind, precision, onnx_file = _pick_backend(model_dir, backend, precision, device)
            if kind == "onnx":
                runner: TorchRunner | OnnxRunner = OnnxRunner(onnx_file, precision, num_threads)
            else:
                if num_threads:
                    torch.set_num_threads(num_threads)
                net = AutoModelForImageClassification.from_pretrained(str(model_dir), use_safetensors=True)
                runner = TorchRunner(net, bf16=precision == "bf16", device=device)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{model}: cannot load the model ({err})") from err
        return cls(runner, processor, config, model_dir, threshold, batch_size, num_workers)

    @property
    def backend_name(self) -> str:
        return self.runner.name

    def describe(self) -> str:
        where = getattr(self.runner, "path", None) or self.model_dir
        return (
            f"{self.backend_name} ({where}), threshold {self.threshold:g}, batch {self.batch_size}, "
            f"{self.num_workers} decode worker(s)"
        )

    def _label(self, score: float) -> str:
        return self.config.id2label[1] if score >= self.threshold else self.config.id2label[0]

    def score_batch(self, batch: PixelBatch, paths: Sequence[str]) -> list[PredictionRow]:
        """Rows for one collated batch, in its order; non-finite model output is an error, not a score."""
        scored: dict[int, PredictionRow] = {}
        if batch.pixel_values is not None:
            scores = ai_scores(self.runner(batch.pixel_values))
            for i, score in zip(batch.good, scores, strict=True):
                if np.isfinite(score):
                    scored[i] = PredictionRow(paths[i], self._label(float(score)), float(score))
                else:
                    scored[i] = PredictionRow(paths[i], None, None, f"{paths[i]}: model output is not finite")
        return [scored.get(i) or PredictionRow(paths[i], None, None, batch.errors[i]) for i in batch.indices]

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
        batches = pixel_batches(readable, self.processor, self.batch_size, self.num_workers)
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
                try:
                    pixels = self.processor(load_image(image), return_tensors="pt")["pixel_values"][0]
                    items.append((k, pixels, None))
                except ImageLoadError as err:
                    items.append((k, None, str(err)))
            rows.extend(self.score_batch(collate_pixels(items), names))
        return rows
