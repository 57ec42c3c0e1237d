"""The demo recipe over several seeds: does it learn the trace every time, and on data it was not tuned on?

    python scripts/benchmark.py demo --seeds 5                       # configs/demo.yaml, seeds 0..4, data/demo
    python scripts/benchmark.py demo --seeds 5 --dataset outside     # the same recipe on the outside set
    python scripts/benchmark.py demo --seeds 5 --dataset resampled   # demo content, ArtiFact's full crop/resize
    python scripts/benchmark.py demo --seeds 5 --dataset blind       # another tuning set
    python scripts/benchmark.py demo --seeds 5 --dataset sealed      # the held-out set: never tuned on
    python scripts/benchmark.py demo --seeds 5 -- --self_fake_prob 0 # an ablation: overrides after --

The data is generated once (data/demo; data/outside, data/blind or data/sealed from the modules of those
names, sets made differently from the demo's and from each other; which one is used for what:
docs/recipe.md; or data/demo_resampled: the demo's sources with ArtiFact's real finish, a crop of 160..min(W, H)
resized to 200, so every trace is resampled as in ArtiFact); then each seed is one fresh
`scripts/train.py` process, timed from start to exit like a user's run. Printed per seed: test
ROC-AUC on the seen generators and on the held-out one, the first step whose validation ROC-AUC
reaches 0.9, wall time; then min / median / max. The seed sets the initialisation, the augmentation
stream and the split. Everything goes under --output_dir (a folder per seed and benchmark.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import DEMO_CONFIG, TRAIN_SCRIPT
from benchmarks.sets import HELD_OUT, SETS
from modeling.config import parse_config
from modeling.data.demo import DEMO_DATA_DIR, DemoSpec, demo_data_exists, make_demo_data
from modeling.data.generated import set_exists, write_set
from modeling.inference.predictor import Detector
from modeling.run_folder import EVAL_DIR, METRICS, PER_SOURCE, PREDICTIONS, RunFolder, results_file

SET_IMAGES_PER_SOURCE = 300  # the evaluation sets' size (per AI source), seed 0
RESAMPLED_DIR = Path("data/demo_resampled")
# ArtiFact's finish as ARTIFACT_FORMAT.md states it: a square side of 160..min(W, H), resized to 200;
# renders up to 260 px give scales 0.77..1.25 (the demo's 200..200 crop keeps native pixels)
RESAMPLED_SPEC = {"min_render": 200, "max_render": 260, "min_crop": 160, "max_crop": None}
LEARNED_AT = 0.9  # "steps to learn": the first evaluation at or above this validation ROC-AUC
COLUMNS = ("seen_roc_auc", "unseen_roc_auc", "steps_to_val_0.9", "wall_s", "threshold", "fpr_plain", "fpr_worst",
           "detect_seen", "scores_between", "backend_agree")
READABLE = (0.01, 0.99)  # a score strictly between these is one a person can read as a probability


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=5, help="Train with seeds 0..N-1.")
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--dataset", choices=("demo", "resampled", *SETS), default="demo")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="Training YAML (default: the demo's).")
    parser.add_argument("--output_dir", default="outputs/benchmark_demo")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then training overrides (--key value).")


def prepare_data(dataset: str, config: str, overrides: list[str]) -> list[str]:
    """Generate the data once; the training arguments that point a run at it."""
    if dataset in SETS:  # made differently from the demo's: trained on whole but for its evaluation-only sources
        spec = SETS[dataset]
        if not set_exists(spec, spec.root):
            write_set(spec, spec.root, SET_IMAGES_PER_SOURCE, seed=0)
        return ["--data_dir", str(spec.root), "--holdout_generators", *(HELD_OUT.get(dataset) or ["none"])]
    per_source = parse_config(["--config", config, *overrides]).data.demo_images_per_source
    if dataset == "resampled":
        if not demo_data_exists(RESAMPLED_DIR):
            make_demo_data(RESAMPLED_DIR, DemoSpec(images_per_source=per_source, **RESAMPLED_SPEC))
        return ["--data_dir", str(RESAMPLED_DIR)]
    if not demo_data_exists(DEMO_DATA_DIR):
        make_demo_data(DEMO_DATA_DIR, DemoSpec(images_per_source=per_source))
    return []


def _overrides(args: argparse.Namespace) -> list[str]:
    return [a for a in args.overrides if a != "--"]


def steps_to_learn(run: RunFolder) -> int | None:
    """The first global step whose validation ROC-AUC reached LEARNED_AT (None if none did)."""
    state = run.read_json("trainer_state.json") or {}
    hits = [e["step"] for e in state.get("log_history", []) if e.get("eval_roc_auc", 0) >= LEARNED_AT]
    return min(hits) if hits else None


def train_one(seed: int, args: argparse.Namespace, data_args: list[str]) -> dict[str, Any]:
    out = Path(args.output_dir) / f"seed_{seed}"
    shutil.rmtree(out, ignore_errors=True)  # a stale checkpoint would be resumed
    overrides = _overrides(args)
    # the learned decoders are fitted once per training split and settings, shared by the runs of this benchmark
    cache = ["--self_fake_learned_cache", str(Path(args.output_dir).parent / "learned_decoder_cache")]
    cmd = [sys.executable, str(TRAIN_SCRIPT), "--config", args.config, "--seed", str(seed),
           "--output_dir", str(out), *cache, *data_args, *overrides]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (Path(args.output_dir) / f"seed_{seed}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"seed {seed} failed (exit {done.returncode}); see {args.output_dir}/seed_{seed}.log")
    run = RunFolder(out)
    seen = run.read_json(results_file("test")) or {}
    unseen = run.read_json(results_file("test_unseen")) or {}
    return {"seed": seed, "seen_roc_auc": seen.get("test_roc_auc"), "unseen_roc_auc": unseen.get("test_unseen_roc_auc"),
            "steps_to_val_0.9": steps_to_learn(run), "wall_s": round(wall, 1), **verdict_figures(run)}


def verdict_figures(run: RunFolder) -> dict[str, Any]:
    """What a user of the run's verdicts gets: the stored threshold, false-positive rates on plain and on the worst
    processed reals (the stress test), the seen generators' detection rate, the share of test scores a person can
    read, and how often the default backend's verdict equals torch fp32's on the test images."""
    metrics = run.read_json(f"{EVAL_DIR}/{METRICS}") or {}
    stress = (metrics.get("stress") or {}).get("kinds", {})
    predictions = pd.read_csv(run.eval_dir / PREDICTIONS) if (run.eval_dir / PREDICTIONS).is_file() else None
    scores = predictions["score_ai"] if predictions is not None else pd.Series(dtype=float)
    return {
        "threshold": metrics.get("decision_threshold"),
        "fpr_plain": (stress.get("none") or {}).get("false_positive_rate"),
        "fpr_worst": metrics.get("stress", {}).get("worst_false_positive_rate"),
        "worst_kind": metrics.get("stress", {}).get("worst_kind"),
        "detect_seen": (metrics.get("operating_point") or {}).get("detection_rate_seen"),
        "scores_between": float(scores.between(*READABLE, inclusive="neither").mean()) if len(scores) else None,
        "backend_agree": backend_agreement(run, predictions),
        "stress": {kind: row.get("false_positive_rate") for kind, row in stress.items()},
        "real_sources": real_source_rates(run),
    }


def real_source_rates(run: RunFolder) -> dict[str, float]:
    """Each real test source's false-positive rate at the stored threshold (a held-out processed source of the
    hard-real set among them)."""
    path = run.eval_dir / PER_SOURCE
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    real = table[table["rate_name"] == "false_positive_rate"]
    return {str(row.source): float(row.rate) for row in real.itertuples()}


def backend_agreement(run: RunFolder, predictions: pd.DataFrame | None) -> float | None:
    """Share of the test images on which the default backend (`Detector`, backend auto) gives torch fp32's verdict."""
    if predictions is None or predictions.empty:
        return None
    data_dir = Path((run.training_config() or {}).get("data_dir", "."))
    paths = [str(data_dir / p) for p in predictions["path"]]
    verdicts = [[row.label for row in Detector.from_pretrained(run.root, backend=backend, precision=precision)
                 .predict(paths)]
                for backend, precision in (("auto", "auto"), ("torch", "fp32"))]
    return float(np.mean([a == b for a, b in zip(*verdicts, strict=True)]))


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """min / median / max of each column over the seeds (a run that never learned counts as missing)."""
    out = {}
    for column in COLUMNS:
        values = [r[column] for r in rows if r[column] is not None]
        out[column] = ({"min": min(values), "median": statistics.median(values), "max": max(values),
                        "n": len(values)} if values else {"min": None, "median": None, "max": None, "n": 0})
    return out


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) and value <= 1 else str(value)


def rate_summary(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    """min / median / max over the seeds of each entry of `key` (per processing kind, or per real source)."""
    names = dict.fromkeys(k for r in rows for k in r.get(key, {}))
    out = {}
    for name in names:
        values = [r[key][name] for r in rows if r.get(key, {}).get(name) is not None]
        if values:
            out[name] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    return out


def run(args: argparse.Namespace) -> int:
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    data_args = prepare_data(args.dataset, args.config, _overrides(args))
    print(f"{'seed':>4}  " + "  ".join(f"{c:>14}" for c in COLUMNS), flush=True)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        row = train_one(seed, args, data_args)
        rows.append(row)
        print(f"{seed:>4}  " + "  ".join(f"{_fmt(row[c]):>14}" for c in COLUMNS), flush=True)
        for name, rates in (("stress", row.get("stress")), ("per real source", row.get("real_sources"))):
            if rates:
                print(f"      {name}, reals called ai: " + ", ".join(f"{k} {_fmt(v)}" for k, v in rates.items()),
                      flush=True)
    stats = summary(rows)
    for name in ("min", "median", "max"):
        print(f"{name:>6}" + "".join(f"  {_fmt(stats[c][name]):>14}" for c in COLUMNS))
    rates = {key: rate_summary(rows, key) for key in ("stress", "real_sources")}
    for key, table in rates.items():
        for name, values in table.items():
            print(f"  {key} {name:>16}: reals called ai min / median / max "
                  f"{_fmt(values['min'])} / {_fmt(values['median'])} / {_fmt(values['max'])}")
    report = {"dataset": args.dataset, "config": args.config, "overrides": args.overrides, "runs": rows,
              "summary": stats, "stress_summary": rates["stress"], "real_source_summary": rates["real_sources"]}
    (Path(args.output_dir) / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0
