"""Score image files, folders (recursive) and globs with a trained detector: one row per input.

    python scripts/predict.py --model outputs/demo photos/ --output scores.csv
    python scripts/predict.py --model outputs/demo 'shots/**/*.png' one.jpg --output scores.jsonl --threshold 0.7
    python scripts/predict.py --model user/artifact-detector img.webp          # a Hub repo; CSV to stdout
    python scripts/predict.py --model path/to/other_detector --ai_label artificial photos/   # any binary classifier
    accelerate launch --num_processes 4 scripts/predict.py --model M big_folder/ --output scores.csv   # 4 GPUs

Rows: path, label (real/ai), score_ai (P(ai)), error (why a file got no score), then what the file
claims about its origin, beside the score and never in it: the `provenance_*` columns (C2PA state,
source type, generator, signer, unsigned claims, a one-line summary; JSONL: one nested `provenance`
object). "none found" means no claim, not a real photo. --no_provenance leaves them out;
--trust_anchors PEM names the root certificates whose C2PA signers count as trusted.
The label uses the model's calibrated `decision_threshold` (0.5 for a model without one) unless
--threshold is given. Any binary image classifier works: --ai_label names its AI class, else it is
inferred from the label names (refused when they do not say). With no --backend, the fastest
usable backend that keeps fp32's verdicts is picked (int8 ONNX if exported and checked, fp32 ONNX,
then torch fp32; bf16 only with --precision bf16) and named on stderr. Exit status: 0 when at least one
input was scored (failures are reported in their rows), 1 when none could be read, 2 when the model cannot be
loaded.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from modeling.inference.images import expand_inputs
from modeling.inference.predictor import (
    BACKENDS,
    DEFAULT_CROPS,
    PRECISIONS,
    Detector,
    ModelLoadError,
    PredictionRow,
)
from modeling.inference.processes import Processes
from modeling.provenance import Provenance

FIELDS = ["path", "label", "score_ai", "error"]
PROVENANCE_FIELDS = list(Provenance("").to_dict())
logger = logging.getLogger("predict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="Model folder written by training, or a Hub repo id.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="Image files, folders (recursive) or globs.")
    parser.add_argument("--output", help="out.csv or out.jsonl (default: CSV on stdout).")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=None, help="Decode processes (default: cores/2, >= 1).")
    parser.add_argument("--num_threads", type=int, default=None, help="Model threads (default: all cores).")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="torch: fp32/bf16; onnx: fp32/int8 (default: the fastest usable one).")
    parser.add_argument("--threshold", type=float, default=None, help="P(ai) >= T means ai (default: the model's).")
    parser.add_argument("--crops", type=int, default=DEFAULT_CROPS,
                        help="Native-resolution crops per image larger than the model input, logits averaged "
                             "(default: %(default)s; 1 = the processor's center crop, as pipeline() does).")
    parser.add_argument("--ai_label", default=None, metavar="NAME",
                        help="The model's label of its AI class (e.g. artificial, FAKE); default: inferred from "
                             "the label names, refused when ambiguous.")
    parser.add_argument("--no_provenance", action="store_true",
                        help="Do not read what the files claim about their origin (C2PA, XMP, generator text).")
    parser.add_argument("--trust_anchors", metavar="PEM", default=None,
                        help="Root certificates whose C2PA signers count as trusted (default: none, so a valid "
                             "signature reads 'valid, untrusted signer').")
    parser.add_argument("--no_progress", action="store_true")
    return parser


class RowWriter:
    """CSV or JSON-lines rows, chosen by the output file's extension; CSV has the provenance columns when read."""

    def __init__(self, stream: IO[str], fmt: str, provenance: bool = True):
        self.stream = stream
        self.fmt = fmt
        if fmt == "csv":
            self.csv = csv.DictWriter(stream, fieldnames=FIELDS + (PROVENANCE_FIELDS if provenance else []))
            self.csv.writeheader()

    def write(self, row: PredictionRow) -> None:
        if self.fmt == "csv":
            self.csv.writerow({k: "" if v is None else v for k, v in row.to_dict().items()})
        else:
            self.stream.write(json.dumps(row.to_record()) + "\n")


def output_format(output: str | None) -> str:
    if output is None or output.lower().endswith(".csv"):
        return "csv"
    if output.lower().endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise ValueError(f"--output must end in .csv or .jsonl, got {output!r}")


def summarize(rows: Iterable[PredictionRow], seconds: float) -> tuple[str, int]:
    """A one-paragraph summary and the number of rows scored."""
    rows = list(rows)
    labels = Counter(r.label for r in rows if r.error is None)
    errors = [r for r in rows if r.error is not None]
    scored = sum(labels.values())
    counts = ", ".join(f"{name}: {n}" for name, n in sorted(labels.items())) or "none"
    text = f"{len(rows)} inputs, {scored} scored ({counts}), {len(errors)} errors, {seconds:.1f} s"
    if scored:
        text += f" ({scored / seconds:.1f} images/s)"
    for row in errors[:10]:
        text += f"\n  error: {row.error}"
    if len(errors) > 10:
        text += f"\n  ... and {len(errors) - 10} more (see the error column)"
    return text + provenance_counts(rows), scored


def provenance_counts(rows: Sequence[PredictionRow]) -> str:
    """`\nprovenance (beside the score, never in it): C2PA none found: 3, invalid: 1; unsigned claims in 2 files`."""
    read = [row.provenance for row in rows if row.provenance is not None]
    if not read:
        return ""
    states = Counter(p.c2pa_state if not p.c2pa_state.startswith("error") else "error" for p in read)
    shown = ", ".join(f"{state}: {n}" for state, n in sorted(states.items()))
    claims = sum(bool(p.claims) for p in read)
    return f"\nprovenance (beside the score, never in it): C2PA {shown}; unsigned claims in {claims} file(s)"


def load_detector(args: argparse.Namespace, processes: Processes) -> Detector:
    return Detector.from_pretrained(
        args.model, backend=args.backend, precision=args.precision, threshold=args.threshold,
        batch_size=args.batch_size, num_workers=args.num_workers, crops=args.crops, device=processes.device,
        num_threads=args.num_threads or processes.cpu_threads(), ai_label=args.ai_label,
        provenance=not args.no_provenance, trust_anchors=args.trust_anchors,
    )


def write_rows(
    rows: Iterable[PredictionRow], output: str | None, fmt: str, progress: tqdm, provenance: bool = True
) -> list[PredictionRow]:
    """Rows to the output as they come (nothing scored is lost if the run stops); returns them."""
    written = []
    with ExitStack() as stack:
        stream = stack.enter_context(open(output, "w", newline="", encoding="utf-8")) if output else sys.stdout
        writer = RowWriter(stream, fmt, provenance)
        for row in rows:
            writer.write(row)
            written.append(row)
            progress.update()
    progress.close()
    return written


def run(args: argparse.Namespace) -> int:
    fmt = output_format(args.output)
    processes = Processes()  # one, or those of `accelerate launch`: each scores its share
    try:
        detector = load_detector(args, processes)
    except (ModelLoadError, ValueError) as err:
        logger.error("%s", err)
        return 2
    logger.info("backend: %s%s", detector.describe(),
                f" (process {processes.rank + 1} of {processes.world})" if processes.world > 1 else "")
    items = expand_inputs(args.paths)
    start = time.perf_counter()
    progress = tqdm(total=len(items), unit="img", disable=args.no_progress or not processes.is_main, file=sys.stderr)
    if processes.world == 1:
        rows = write_rows(detector.predict(items), args.output, fmt, progress, detector.provenance)
    else:
        try:
            rows = processes.gather(list(detector.predict(processes.share(items))))
        finally:
            processes.close()
        if not processes.is_main:
            return 0
        rows = write_rows(rows, args.output, fmt, progress, detector.provenance)
    text, scored = summarize(rows, time.perf_counter() - start)
    logger.info("%s%s", text, f"\nwrote {args.output}" if args.output else "")
    if not scored:
        logger.error("no input could be scored")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stderr)
    args = build_parser().parse_args(argv)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    try:
        return run(args)
    except ValueError as err:  # bad --output extension and the like
        logger.error("%s", err)
        return 2


if __name__ == "__main__":
    hf_logging.disable_progress_bar()  # no "Loading weights" bar before ours
    sys.exit(main())
