"""Evaluate a trained model folder, or compare several detectors: metrics, per-source rates, predictions, plots.

    python scripts/evaluate.py --model outputs/demo --data_dir data/demo --robustness
    python scripts/evaluate.py --model outputs/demo --stress     # real photos after camera/sharing processing
    python scripts/evaluate.py --model outputs/demo --data_dir my_images --no_manifest   # real/ and ai/ folders
    python scripts/evaluate.py --model outputs/demo --model hub_or_folder::artificial --data_dir data/demo \
        --output_dir comparison         # several detectors on the same images: one table and one ROC plot
    accelerate launch --multi_gpu --num_processes 2 scripts/evaluate.py --model outputs/demo   # sharded, gathered
    (CPU only: prefix ACCELERATE_USE_CPU=1 to run the same processes on gloo)

By default the images are the `--split` (test) rows of the model folder's own manifest.csv, under
the data_dir recorded at training time; results go to <model>/eval (the folder the model card reads),
or <model>/eval_<name> for other data. `--calibrate` first fits the temperature and threshold on the
manifest's validation rows and re-saves the model (for folders trained before calibration existed).

Any binary image classifier can be evaluated or compared: its AI class is named by --ai_label (or
MODEL::AI_LABEL), else inferred from its label names; without a stored `decision_threshold` it uses 0.5.
With several --model, every model scores the same images (the split of the first model folder that has
its own manifest.csv, an explicit --manifest, or every image under --data_dir with --no_manifest); each
model's full evaluation goes to <output_dir>/<model name>/ and the side-by-side comparison.csv,
comparison.md, comparison_roc.png and comparison_roc_log.png to <output_dir> (default ./comparison).
predictions.csv gets what each file claims about its origin (C2PA state, signed source type, unsigned
claims) and metrics.json a per-label count of it, beside the scores and never in them (--no_provenance).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

if __name__ == "evaluate":
    # `python scripts/<any>.py` puts scripts/ first on sys.path, so `import evaluate` (the Hugging Face metrics
    # library, used by modeling.metrics) finds this file. Hand that import over to the library and stop here.
    _saved, _here = sys.path[:], Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    try:
        del sys.modules[__name__]
        sys.modules[__name__] = importlib.import_module("evaluate")
    finally:
        sys.path[:] = _saved
    # the rest of this file still runs (harmlessly); `import evaluate` returns the library from sys.modules

from modeling.extras import requires_extra

with requires_extra("train", "scripts/evaluate.py"):
    from accelerate import Accelerator

    from modeling.augment.camera import KINDS
    from modeling.calibration import DEFAULT_RULE
    from modeling.data.index import DataError
    from modeling.data.selection import resolve_eval_data
    from modeling.evaluation.compare import (
        ModelSpec,
        comparison_data,
        format_comparison,
        parse_model_specs,
        run_comparison,
    )
    from modeling.evaluation.evaluate import SCORING_BACKENDS, calibrate_folder, format_summary, run_evaluation
    from modeling.run_folder import EVAL_DIR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, action="append", metavar="MODEL[::AI_LABEL]",
                        help="Model folder written by training, a Hub repo id, or any binary image classifier. "
                             "Repeat to compare several on the same images; MODEL::AI_LABEL names a model's AI class.")
    parser.add_argument("--ai_label", action="append", metavar="NAME",
                        help="The model's label of its AI class (e.g. artificial, FAKE); with several --model, one "
                             "per --model in order ('auto': inferred). Default: inferred from the label names, "
                             "refused when they do not say.")
    parser.add_argument("--no_provenance", action="store_true",
                        help="Do not read what the files claim about their origin (C2PA, XMP, generator text).")
    parser.add_argument("--trust_anchors", metavar="PEM", help="Root certificates whose C2PA signers count as trusted.")
    parser.add_argument("--data_dir", help="Image root (default: the data_dir in the model's training_config.yaml).")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--manifest", help="A manifest.csv to take the rows from (default: <model>/manifest.csv).")
    source.add_argument("--no_manifest", action="store_true", help="Score every image under --data_dir.")
    parser.add_argument("--layout", default="auto", help="With --no_manifest: auto, artifact or folder.")
    parser.add_argument("--split", default="test", help="Manifest split to score (train, validation, test, all).")
    parser.add_argument("--output_dir", help="Where to write (default: <model>/eval, or <model>/eval_<data name>; "
                                             "with several --model: ./comparison).")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes.")
    parser.add_argument("--backend", choices=SCORING_BACKENDS, default="auto",
                        help="What scores the images: auto takes the folder's checked fp32 ONNX export on one CPU "
                             "process (the same scores as torch within its check, faster), else torch.")
    parser.add_argument("--robustness", action="store_true", help="Also score JPEG/downscale/blur/WebP copies.")
    parser.add_argument("--stress", nargs="*", metavar="KIND", default=None,
                        help="The real-photo stress test: every image after each camera and sharing processing kind "
                        f"({', '.join(KINDS)}); optionally only the named kinds. False-positive rates per kind go "
                        "to stress.csv and metrics.json.")
    parser.add_argument("--calibrate", action="store_true",
                        help="Fit temperature and threshold on the validation rows first and re-save the model.")
    parser.add_argument("--threshold_rule", default=DEFAULT_RULE, help="max_accuracy or target_fpr=<rate>.")
    return parser


def default_output_dir(args: argparse.Namespace) -> Path:
    """<model>/eval for the model's own test split (what the card reads); a separate folder otherwise."""
    model = Path(args.model)
    if args.output_dir:
        return Path(args.output_dir)
    if args.no_manifest:
        return model / f"eval_{Path(args.data_dir or 'data').resolve().name}"
    if args.manifest:
        return model / f"eval_{Path(args.manifest).stem}_{args.split}"
    return model / (EVAL_DIR if args.split == "test" else f"eval_{args.split}")


def model_specs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[ModelSpec]:
    """The --model / --ai_label pairs; `args.model` becomes the first model (what the one-model path reads)."""
    try:
        specs = parse_model_specs(args.model, args.ai_label)
    except ValueError as err:
        parser.error(str(err))
    if args.calibrate and (len(specs) > 1 or specs[0].ai_label):
        parser.error("--calibrate re-saves one of this package's model folders: give one --model and no --ai_label")
    args.model = specs[0].model
    return specs


def compare(args: argparse.Namespace, specs: list[ModelSpec], common: dict) -> int:
    """Several models on the same images: each one's full evaluation, then the side-by-side table and ROC plot."""
    data = comparison_data([spec.model for spec in specs], args.data_dir, args.manifest, args.split,
                           use_model_manifest=not args.no_manifest, layout=args.layout)
    out = Path(args.output_dir or "comparison")
    table, _ = run_comparison(
        specs, data, out, robustness=args.robustness, stress=False if args.stress is None else (args.stress or True),
        provenance=not args.no_provenance, trust_anchors=args.trust_anchors, **common,
    )
    if common["accelerator"].is_main_process:
        print(f"data: {data.description}\n\n{format_comparison(table)}\n\nfiles in {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    parser = build_parser()
    args = parser.parse_args(argv)
    specs = model_specs(parser, args)
    accelerator = Accelerator()
    common = dict(batch_size=args.batch_size, num_workers=args.num_workers, accelerator=accelerator)
    origin = dict(ai_label=specs[0].ai_label, provenance=not args.no_provenance, trust_anchors=args.trust_anchors,
                  backend=args.backend)
    try:
        if len(specs) > 1:
            return compare(args, specs, common)
        if args.calibrate:
            val = resolve_eval_data(args.model, args.data_dir, args.manifest, split="validation")
            report = calibrate_folder(args.model, val, args.threshold_rule, **common)
            if report and accelerator.is_main_process:
                print(f"calibrated: T={report.temperature:.4f}, ECE {report.ece_before:.4f} -> {report.ece_after:.4f}, "
                      f"threshold {report.decision_threshold:.4f} ({report.decision_threshold_rule})")
        data = resolve_eval_data(
            args.model, args.data_dir, args.manifest, args.split, use_model_manifest=not args.no_manifest,
            layout=args.layout,
        )
        result = run_evaluation(
            args.model, data, default_output_dir(args), robustness=args.robustness,
            stress=False if args.stress is None else (args.stress or True), **common, **origin
        )
    except (DataError, ValueError) as err:
        logging.getLogger("evaluate").error("%s", err)
        return 2
    if accelerator.is_main_process:
        print(format_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
