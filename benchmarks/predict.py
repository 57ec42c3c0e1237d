"""Batch prediction speed: pipeline("image-classification") vs the project's predictor, per backend.

    python scripts/benchmark.py predict                       # 256 JPEGs, ConvNeXt-Tiny, 3 rounds
    python scripts/benchmark.py predict --num_images 64 --rounds 1   # a quick look
    python scripts/benchmark.py predict --profile             # + where each ONNX model spends its time

Builds a ConvNeXt-Tiny-sized model (ConvNextConfig defaults, random init: speed does not depend on
the weights) with the project's image processor, writes JPEGs of mixed sizes, exports ONNX fp32 and
static int8, then times every method end to end from the files on disk, in rounds that alternate
between methods so that load from other processes on the machine hits all of them alike.

Steady-state images/s counts the images after the first batch, from the moment that batch's results
arrive to the last result: warm-up, worker start and model load are outside it. Model load, first
batch latency, whole-pass images/s and process start (interpreter + imports) are reported apart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, ConvNextConfig, ConvNextForImageClassification, pipeline

from modeling.inference import onnx_export

try:
    import resource
except ImportError:  # not on Windows: CPU time is then reported as nan
    resource = None
from modeling.inference.images import default_num_workers
from modeling.inference.predictor import Detector
from modeling.inference.runners import OnnxRunner, TorchRunner
from modeling.labels import ID2LABEL, LABEL2ID
from modeling.processing import build_image_processor
from modeling.run_folder import ONNX_FILES, RunFolder
from modeling.system import available_cores, cpu_flags, cpu_has_native_bf16

logger = logging.getLogger(__name__)

# (width, height): ArtiFact's 200x200, smaller than the crop, and camera-like sizes up to 1024x768
IMAGE_SIZES = [(128, 128), (200, 200), (256, 192), (320, 320), (512, 384), (640, 480), (800, 600), (1024, 768)]
METHODS = ("pipeline", "torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")
TARGET_RATIO = 2.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num_images", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=None, help="Predictor decode workers (default: auto).")
    parser.add_argument("--rounds", type=int, default=3, help="Passes per method; the best one is reported.")
    parser.add_argument("--image_size", type=int, default=200, help="Processor crop size.")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                        help="Default: all, with torch-bf16 only where the CPU has native bf16.")
    parser.add_argument("--work_dir", help="Keep the model and images here (default: a temporary folder).")
    parser.add_argument("--model", help="A trained model folder (copied; its ONNX exports used if checked) instead "
                        "of the ConvNeXt-Tiny-sized random model.")
    parser.add_argument("--output", help="Also write the results as JSON here.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="Also print where each ONNX model spends its time, per operator type (1 thread).")


# --------------------------------------------------------------------------- fixtures


def build_tiny_sized_model(model_dir: Path, image_size: int, seed: int) -> None:
    """ConvNeXt-Tiny's shape (hidden 96-768, depths 3-3-9-3) with random weights, and our processor."""
    torch.manual_seed(seed)
    config = ConvNextConfig(image_size=image_size, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
    ConvNextForImageClassification(config).save_pretrained(model_dir)
    build_image_processor("crop", image_size=image_size).save_pretrained(model_dir)


def write_images(folder: Path, count: int, seed: int) -> list[str]:
    """Photo-like JPEGs (smooth colour fields plus sensor-like noise) cycling through IMAGE_SIZES."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        width, height = IMAGE_SIZES[i % len(IMAGE_SIZES)]
        coarse = Image.fromarray(rng.integers(0, 256, (height // 32 + 2, width // 32 + 2, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
        pixels = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=int(rng.integers(75, 96)))
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """One pass over every image: arrival time of each result, relative to the call."""

    arrivals: list[float]
    batch_size: int
    cpu_s: float = float("nan")  # CPU seconds of this process and its decode workers over the whole pass

    @property
    def first_batch_s(self) -> float:
        return self.arrivals[min(self.batch_size, len(self.arrivals)) - 1]

    @property
    def steady_images_per_s(self) -> float:
        """Images after the first batch / time from the first batch's results to the last result."""
        first = min(self.batch_size, len(self.arrivals)) - 1
        span = self.arrivals[-1] - self.arrivals[first]
        return (len(self.arrivals) - 1 - first) / span if span > 0 else float("nan")

    @property
    def whole_images_per_s(self) -> float:
        return len(self.arrivals) / self.arrivals[-1]


def cpu_seconds() -> float:
    """User + system time of this process and of its children that have exited (joined decode workers)."""
    if resource is None:
        return float("nan")
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_pass(results: Callable[[], Iterable[object]], expected: int, batch_size: int) -> Timing:
    cpu, start = cpu_seconds(), time.perf_counter()
    arrivals = [time.perf_counter() - start for _ in results()]
    if len(arrivals) != expected:
        raise RuntimeError(f"expected {expected} results, got {len(arrivals)}")
    return Timing(arrivals, batch_size, cpu_seconds() - cpu)


@dataclass
class MethodResult:
    method: str
    load_s: float
    passes: list[Timing] = field(default_factory=list)

    def best(self) -> Timing:
        return max(self.passes, key=lambda t: t.steady_images_per_s)


def make_methods(
    model_dir: Path, methods: Sequence[str], batch_size: int, num_workers: int
) -> dict[str, tuple[float, Callable[[Sequence[str]], Iterable[object]]]]:
    """method -> (load seconds, function that scores a list of paths lazily)."""
    made = {}
    for method in methods:
        start = time.perf_counter()
        if method == "pipeline":
            pipe = pipeline(
                "image-classification",
                model=str(model_dir),
                batch_size=batch_size,
                device="cpu",
                model_kwargs={"use_safetensors": True},
            )
            # a generator input makes the pipeline stream its results (a list would return all at the end)
            made[method] = (time.perf_counter() - start, lambda paths, pipe=pipe: pipe(p for p in paths))
            continue
        config = AutoConfig.from_pretrained(str(model_dir))
        processor = AutoImageProcessor.from_pretrained(str(model_dir))
        backend, precision = method.split("-")
        if backend == "torch":
            net = ConvNextForImageClassification.from_pretrained(str(model_dir), use_safetensors=True)
            runner: TorchRunner | OnnxRunner = TorchRunner(net, bf16=precision == "bf16")
        else:
            runner = OnnxRunner(model_dir / ONNX_FILES[precision], precision, available_cores())
        detector = Detector(runner, processor, config, model_dir, batch_size=batch_size, num_workers=num_workers)
        made[method] = (time.perf_counter() - start, detector.predict)
    return made


def profile_operators(path: Path, pixel_values: np.ndarray, runs: int = 3) -> dict[str, float]:
    """CPU ms per image by operator type (onnxruntime's profiler, one thread, after one warm-up run).

    One thread makes the figures additive: they sum to the model's single-core cost per image.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: pixel_values}
        session.run(None, feed)
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    warm_up = min((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    timed_from = warm_up["ts"] + warm_up["dur"]
    per_op: dict[str, float] = {}
    for event in events:  # kernel events of the timed runs only
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time") and event["ts"] >= timed_from:
            op = event["args"]["op_name"]
            per_op[op] = per_op.get(op, 0.0) + event["dur"]
    scale = 1e-3 / (runs * len(pixel_values))  # us over the timed runs -> ms per image
    return dict(sorted(((op, us * scale) for op, us in per_op.items()), key=lambda kv: -kv[1]))


def format_profile(name: str, per_op: dict[str, float]) -> str:
    total = sum(per_op.values())
    shown = [f"{op} {ms:.1f} ({100 * ms / total:.0f}%)" for op, ms in per_op.items() if ms >= 0.005 * total]
    return f"{name}: {total:.1f} CPU ms/image in operators, 1 thread: " + ", ".join(shown)


def process_start_s(statement: str) -> float:
    """Seconds for a fresh interpreter to run `statement` (the imports a user's process pays first)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- report


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    isa = "AVX-512" if "avx512f" in cpu_flags() else "AVX2" if "avx2" in cpu_flags() else "?"
    return f"{name}, {available_cores()} cores, {isa}, native bf16: {'yes' if cpu_has_native_bf16() else 'no'}"


def format_table(results: dict[str, MethodResult], starts: dict[str, float]) -> str:
    base = results["pipeline"].best().steady_images_per_s if "pipeline" in results else None
    header = (
        f"{'method':<12} {'load s':>7} {'first batch s':>14} {'steady img/s':>13} {'whole-pass img/s':>17} "
        f"{'CPU ms/img':>11} {'vs pipeline':>12}"
    )
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        best = result.best()
        ratio = f"{best.steady_images_per_s / base:.2f}x" if base else "-"
        lines.append(
            f"{name:<12} {result.load_s:>7.1f} {best.first_batch_s:>14.1f} {best.steady_images_per_s:>13.1f} "
            f"{best.whole_images_per_s:>17.1f} {1000 * best.cpu_s / len(best.arrivals):>11.0f} {ratio:>12}"
        )
    lines.append("process start (python + imports): " + ", ".join(f"{k} {v:.1f} s" for k, v in starts.items()))
    return "\n".join(lines)


def round_ratios(results: dict[str, MethodResult]) -> dict[str, list[float]]:
    """Per round, each method's steady img/s over the pipeline's in the same round (adjacent in time)."""
    base = [t.steady_images_per_s for t in results["pipeline"].passes]
    return {
        name: [t.steady_images_per_s / b for t, b in zip(r.passes, base, strict=True)]
        for name, r in results.items()
        if name != "pipeline"
    }


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    methods = args.methods or [m for m in METHODS if m != "torch-bf16" or cpu_has_native_bf16()]
    num_workers = default_num_workers() if args.num_workers is None else args.num_workers
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        model_dir = work / "model"
        if args.model:  # a copy: the export below must not write into the user's folder
            shutil.copytree(args.model, model_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint-*"))
        else:
            build_tiny_sized_model(model_dir, args.image_size, args.seed)
        paths = write_images(work / "images", args.num_images, args.seed)
        export_s = prepare_onnx(model_dir, paths, methods) if not has_exports(model_dir, methods) else 0.0
        profiles = profile_exports(model_dir, paths, methods, args.batch_size) if args.profile else {}
        made = make_methods(model_dir, methods, args.batch_size, num_workers)
        results = {name: MethodResult(name, load_s) for name, (load_s, _) in made.items()}
        loads = [load_average()]
        for round_index in range(args.rounds):
            for name, (_, score) in made.items():
                timing = time_pass(lambda score=score: score(paths), len(paths), args.batch_size)
                results[name].passes.append(timing)
                logger.info("round %d %s: %.2f images/s", round_index + 1, name, timing.steady_images_per_s)
            loads.append(load_average())
    starts = {
        "predictor": process_start_s("import modeling.predictor"),
        "pipeline": process_start_s("import transformers.pipelines"),
    }
    print(setup_line(args, num_workers, export_s, loads))
    print(format_table(results, starts))
    for name, per_op in profiles.items():
        print(format_profile(name, per_op))
    if "pipeline" in results and len(results) > 1:
        ratios = round_ratios(results)
        for name, values in ratios.items():
            print(f"{name} / pipeline per round: {', '.join(f'{v:.2f}' for v in values)}")
        best = max((r for n, r in results.items() if n != "pipeline"), key=lambda r: r.best().steady_images_per_s)
        ratio = best.best().steady_images_per_s / results["pipeline"].best().steady_images_per_s
        print(f"\nbest: {best.method} at {ratio:.2f}x pipeline (target >= {TARGET_RATIO}x)")
    if args.output:
        payload = {n: {"load_s": r.load_s, "passes": [asdict(t) for t in r.passes]} for n, r in results.items()}
        record = {"cpu": cpu_name(), "results": payload, "start_s": starts, "load_average": loads}
        Path(args.output).write_text(json.dumps(record, indent=1))
    return 0


def setup_line(args: argparse.Namespace, num_workers: int, export_s: float, loads: list[str]) -> str:
    """What was measured on what: CPU, libraries, model, images, settings, machine load."""
    (w0, h0), (w1, h1) = IMAGE_SIZES[0], IMAGE_SIZES[-1]
    config = ConvNextConfig.from_pretrained(args.model) if args.model else ConvNextConfig()
    params = sum(p.numel() for p in ConvNextForImageClassification(config).parameters()) / 1e6
    what = f"{args.model} ({params:.2f}M params)" if args.model else f"ConvNeXt-Tiny-sized ({params:.0f}M params)"
    return (
        f"CPU: {cpu_name()}; torch {torch.__version__}, onnxruntime {onnx_export._ort_version()}\n"
        f"{what}, {args.image_size}x{args.image_size} center crop; "
        f"{args.num_images} JPEGs {w0}x{h0} to {w1}x{h1}; "
        f"batch {args.batch_size}; predictor: {num_workers} decode worker(s); best of {args.rounds} round(s); "
        f"ONNX export + int8 calibration {export_s:.0f} s (once per model)\n"
        f"load average (1/5/15 min) at start and after each round: {', '.join(loads)}\n"
    )


def profile_exports(model_dir: Path, paths: Sequence[str], methods: Sequence[str], batch_size: int) -> dict:
    """method -> operator profile, for the ONNX methods being timed (one batch of the benchmark's images)."""
    processor = AutoImageProcessor.from_pretrained(str(model_dir))
    batches, _ = onnx_export.load_pixels(paths, processor, limit=batch_size, batch_size=batch_size)
    pixels = torch.cat(batches).numpy()
    return {
        m: profile_operators(model_dir / ONNX_FILES[m.split("-")[1]], pixels)
        for m in methods
        if m.startswith("onnx")
    }


def has_exports(model_dir: Path, methods: Sequence[str]) -> bool:
    """Whether a model folder already carries usable exports for every ONNX method (training writes them)."""
    return all(RunFolder(model_dir).usable_onnx(m.split("-")[1]) is None for m in methods if m.startswith("onnx"))


def prepare_onnx(model_dir: Path, paths: Sequence[str], methods: Sequence[str]) -> float:
    """fp32 export (parity-checked on the benchmark images) and static int8 calibrated on 64 of them."""
    start = time.perf_counter()
    if any(m.startswith("onnx") for m in methods):
        images = onnx_export.CheckImages.unlabelled(paths[:128])
        record = onnx_export.export(model_dir, images, num_check=32)
        logger.info("fp32 ONNX parity: max |score diff| %.2e", record["fp32"]["max_abs_score_diff"])
    if "onnx-int8" in methods:
        processor = AutoImageProcessor.from_pretrained(str(model_dir))
        calibration, _ = onnx_export.load_pixels(paths[::2], processor, limit=64, batch_size=8)
        files = ONNX_FILES
        onnx_export.quantize_int8(model_dir / files["fp32"], model_dir / files["int8"], calibration)
    return time.perf_counter() - start
