"""The test evaluation scored by torch and by the folder's checked fp32 ONNX export, side by side on the same rows.

    python scripts/benchmark.py evaluate --model outputs/demo            # the test split with the stress test
    python scripts/benchmark.py evaluate --model outputs/demo --rounds 2 --no_stress

`run_evaluation` with `backend="torch"` and `backend="onnx"` in alternating rounds on one process (the end of
training's evaluation, and evaluate.py's default on one CPU process, takes ONNX when the folder has a checked
export). Printed per backend: the wall time of its best round; then the ONNX/torch time ratio, and whether the
two give the same verdicts (predictions.csv and, with the stress test, every processed copy) with the largest
score difference. Outputs go to a temporary folder; the model folder is only read.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modeling.data.selection import resolve_eval_data
from modeling.evaluation.evaluate import EvalResult, run_evaluation
from modeling.run_folder import STRESS_PREDICTIONS, RunFolder

BACKENDS = ("torch", "onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="outputs/demo", help="A trained folder with a checked fp32 ONNX export.")
    parser.add_argument("--data_dir", default=None, help="Image root (default: the one the model was trained on).")
    parser.add_argument("--rounds", type=int, default=1, help="Passes per backend, alternating; the best is shown.")
    parser.add_argument("--no_stress", action="store_true", help="Score the test split only, without the stress test.")
    parser.add_argument("--batch_size", type=int, default=64)


def _scored(result: EvalResult) -> pd.DataFrame:
    """Every scored row: the plain test images, then each processed copy of the stress test."""
    parts = [result.predictions.assign(kind="none")]
    if STRESS_PREDICTIONS in result.long_predictions:
        long = result.long_predictions[STRESS_PREDICTIONS]
        parts.append(long[long["kind"] != "none"])
    return pd.concat(parts, ignore_index=True)[["path", "kind", "score_ai", "predicted"]]


def run(args: argparse.Namespace) -> int:
    reason = RunFolder(args.model).usable_onnx("fp32")
    if reason is not None:
        print(f"{args.model}: no usable fp32 ONNX export ({reason}); run scripts/export_onnx.py --model {args.model}")
        return 2
    data = resolve_eval_data(args.model, args.data_dir, split="test")
    best = dict.fromkeys(BACKENDS, float("inf"))
    rows: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for backend in BACKENDS:
                start = time.perf_counter()
                result = run_evaluation(args.model, data, Path(tmp) / f"{backend}{i}", batch_size=args.batch_size,
                                        stress=not args.no_stress, stress_balanced=True, backend=backend,
                                        provenance=False)
                best[backend] = min(best[backend], time.perf_counter() - start)
                rows[backend] = _scored(result)
    torch_rows, onnx_rows = rows["torch"], rows["onnx"]
    same_rows = torch_rows[["path", "kind"]].equals(onnx_rows[["path", "kind"]])
    gap = float(np.abs(torch_rows["score_ai"] - onnx_rows["score_ai"]).max()) if same_rows else float("nan")
    agree = float((torch_rows["predicted"] == onnx_rows["predicted"]).mean()) if same_rows else float("nan")
    print(f"model {args.model}: {len(torch_rows)} scored images ({data.description}), best of {args.rounds} round(s)")
    for backend in BACKENDS:
        print(f"  {backend:<6} {best[backend]:7.1f} s")
    print(f"  onnx / torch time {best['onnx'] / best['torch']:.2f}; same verdicts on {agree:.4f} of the images, "
          f"max |score diff| {gap:.2e}")
    return 0 if same_rows else 1
