"""What reading provenance costs: per file alone, and in `Detector.predict` with it on and off, side by side.

    python scripts/benchmark.py provenance                          # 128 files, ConvNeXt-Tiny-sized, 3 rounds
    python scripts/benchmark.py provenance --num_images 32 --rounds 1   # a quick look
    python scripts/benchmark.py provenance --model outputs/demo      # a trained folder instead
    (a tiny model folder makes the pass decode-bound, as on a GPU: the case where a worker's extra work shows most)

The files are the predict benchmark's photo-like JPEGs (128x128 to 1024x768, every size in every kind from 32
files on), a quarter of each kind of provenance: plain, C2PA-signed (the tests' offline CA and `c2pa.Builder`,
tests/provenance_files.py), an XMP IPTC DigitalSourceType, and PNGs with AUTOMATIC1111 parameters. Printed:

- per kind, `read_provenance` alone (median CPU ms a file, one thread, files in the page cache) beside decoding
  and processing the same file (`load_image` + the saved processor), the work it runs next to in a worker;
- `Detector.predict` over all files with provenance on and off, one runner shared, in alternating rounds:
  steady images/s, whole pass, CPU ms an image, and the on/off ratio per round.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image, PngImagePlugin
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from benchmarks.predict import IMAGE_SIZES, build_tiny_sized_model, time_pass, write_images
from modeling.images import load_image
from modeling.inference.images import default_num_workers
from modeling.inference.predictor import Detector
from modeling.inference.runners import TorchRunner
from modeling.processing import process_image
from modeling.provenance import read_provenance

logger = logging.getLogger(__name__)

KINDS = ("plain", "c2pa_signed", "xmp_iptc", "png_parameters")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num_images", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="Passes per setting, alternating; the best is shown.")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=None, help="Decode workers (default: the predictor's).")
    parser.add_argument("--image_size", type=int, default=200, help="Processor crop size of the random model.")
    parser.add_argument("--reads", type=int, default=20, help="Timed reads of each file for the per-file figures.")
    parser.add_argument("--model", help="A model folder instead of the ConvNeXt-Tiny-sized random one.")
    parser.add_argument("--seed", type=int, default=0)


def _signing_helpers() -> tuple[Callable, Callable, str]:
    """The tests' offline PKI and signer (tests/provenance_files.py), so benchmark and tests sign alike."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from provenance_files import A1111, AI, EMAIL_PROTECTION, make_pki, sign_jpeg, xmp_packet

    pki = make_pki(EMAIL_PROTECTION)
    xmp = xmp_packet("", f'Iptc4xmpExt:DigitalSourceType="{AI}"')
    return (lambda data: sign_jpeg(data, pki)), (lambda: xmp), A1111


def write_files(folder: Path, count: int, seed: int) -> dict[str, list[str]]:
    """kind -> paths: the predict benchmark's JPEGs, a quarter of them of each provenance kind."""
    sign, xmp, parameters = _signing_helpers()
    files: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for i, path in enumerate(write_images(folder, count, seed)):
        kind = KINDS[(i + i // len(IMAGE_SIZES)) % len(KINDS)]  # shifted each cycle of sizes: every kind gets all
        if kind == "c2pa_signed":
            Path(path).write_bytes(sign(Path(path).read_bytes()))
        elif kind == "xmp_iptc":
            Image.open(path).save(path, quality=90, xmp=xmp())
        elif kind == "png_parameters":
            info = PngImagePlugin.PngInfo()
            info.add_text("parameters", parameters)
            png = str(Path(path).with_suffix(".png"))
            Image.open(path).save(png, pnginfo=info)
            Path(path).unlink()
            path = png
        files[kind].append(path)
    return files


def _median_ms(work: Callable[[str], object], paths: list[str], reads: int) -> float:
    """Median over files of the mean CPU time of `reads` calls on one file, in ms (after one warm-up call).

    CPU time of this process, not wall time: other jobs on a shared machine do not move it much.
    """
    per_file = []
    for path in paths:
        work(path)
        start = time.process_time()
        for _ in range(reads):
            work(path)
        per_file.append(1000 * (time.process_time() - start) / reads)
    return statistics.median(per_file)


def per_file_costs(files: dict[str, list[str]], processor: object, reads: int) -> list[tuple[str, float, float]]:
    """(kind, provenance ms, decode + process ms) per kind of file."""
    decode = lambda path: process_image(processor, load_image(path))  # noqa: E731 - the worker's per-file work
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a decode worker; restored for the model afterwards
    try:
        return [(kind, _median_ms(read_provenance, paths, reads), _median_ms(decode, paths, max(1, reads // 4)))
                for kind, paths in files.items() if paths]
    finally:
        torch.set_num_threads(threads)


def detectors(model_dir: Path, batch_size: int, num_workers: int) -> dict[str, Detector]:
    """Provenance on and off over one torch runner (fp32), so the model's work is identical."""
    config = AutoConfig.from_pretrained(str(model_dir))
    processor = AutoImageProcessor.from_pretrained(str(model_dir))
    runner = TorchRunner(AutoModelForImageClassification.from_pretrained(str(model_dir), use_safetensors=True))
    common = dict(batch_size=batch_size, num_workers=num_workers)
    return {setting: Detector(runner, processor, config, model_dir, provenance=setting == "on", **common)
            for setting in ("off", "on")}


def format_report(costs: list[tuple[str, float, float]], passes: dict[str, list], count: int) -> str:
    lines = [f"{'file kind':<16} {'provenance CPU ms':>18} {'decode+process CPU ms':>22} {'share':>7}"]
    lines += [f"{kind:<16} {prov:>18.2f} {decode:>22.2f} {prov / decode:>7.1%}" for kind, prov, decode in costs]
    lines += ["", f"Detector.predict over {count} files (best of {len(passes['on'])} rounds):",
              f"{'provenance':<11} {'steady img/s':>13} {'whole pass s':>13} {'CPU ms/img':>11}"]
    for setting, timings in passes.items():
        best = max(timings, key=lambda t: t.steady_images_per_s)
        lines.append(f"{setting:<11} {best.steady_images_per_s:>13.2f} {best.arrivals[-1]:>13.2f} "
                     f"{1000 * best.cpu_s / len(best.arrivals):>11.1f}")
    ratios = [on.steady_images_per_s / off.steady_images_per_s for on, off in zip(passes["on"], passes["off"],
                                                                                   strict=True)]
    lines.append("on / off steady img/s per round: " + ", ".join(f"{r:.3f}" for r in ratios)
                 + f" (median {statistics.median(ratios):.3f})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    num_workers = default_num_workers() if args.num_workers is None else args.num_workers
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else Path(tmp) / "model"
        if not args.model:
            build_tiny_sized_model(model_dir, args.image_size, args.seed)
        files = write_files(Path(tmp) / "images", args.num_images, args.seed)
        paths = sorted(path for kind in KINDS for path in files[kind])
        made = detectors(model_dir, args.batch_size, num_workers)
        costs = per_file_costs(files, made["on"].processor, args.reads)
        passes: dict[str, list] = {"off": [], "on": []}
        for round_index in range(args.rounds):
            for setting, detector in made.items():
                timing = time_pass(lambda d=detector: d.predict(paths), len(paths), args.batch_size)
                passes[setting].append(timing)
                logger.info("round %d, provenance %s: %.2f images/s", round_index + 1, setting,
                            timing.steady_images_per_s)
    model = args.model or "ConvNeXt-Tiny-sized, random"
    print(f"{len(paths)} files, batch {args.batch_size}, {num_workers} decode worker(s), model {model}, torch fp32")
    print(format_report(costs, passes, len(paths)))
    return 0
