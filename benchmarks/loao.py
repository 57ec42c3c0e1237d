"""Leave one architecture out: does each learned-decoder architecture of the self-fakes teach the others' traces?

    python scripts/benchmark.py loao --seeds 3                    # the demo recipe, each architecture left out
    python scripts/benchmark.py loao --seeds 3 -- --camera_prob 0  # with training overrides after --

For the full family and for the family without each architecture in turn, the demo recipe trains on the demo
data (`benchmarks.demo.train_one`, seeds 0..N-1), then the model scores the learned-decoder probe
(`benchmarks.sets.probe`: the demo's content through one trained autoencoder per architecture). Printed per
variant: the median over seeds of ROC-AUC of each probe source against the probe's reals, and of the demo's
own seen / unseen test ROC-AUC. The left-out architecture's column is the figure that matters.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.demo import DEMO_CONFIG, prepare_data, train_one
from benchmarks.sets.probe import AI_SOURCES, PROBE
from modeling.augment.learned_decoder import ARCHITECTURES
from modeling.data.generated import set_exists, write_set
from modeling.data.selection import resolve_eval_data
from modeling.evaluation.evaluate import run_evaluation
from modeling.metrics import roc_auc
from modeling.run_folder import RunFolder, results_file

PROBE_IMAGES_PER_SOURCE = 120


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="Train with seeds 0..N-1 for each variant.")
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), help="The family (left out in turn).")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="Training YAML (default: the demo's).")
    parser.add_argument("--output_dir", default="outputs/benchmark_loao")
    parser.add_argument("--only", nargs="+", default=None, metavar="ARCH",
                        help="Leave out only these architectures (default: each in turn); e.g. to split the work "
                        "over two processes.")
    parser.add_argument("--reuse_full", default=None, metavar="DIR",
                        help="Score the models in DIR/seed_N (a `benchmark.py demo` run of the same recipe and seeds) "
                        "as the full family instead of training it again.")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then training overrides (--key value).")


def probe_figures(model_dir: Path) -> dict[str, float | None]:
    """ROC-AUC of each probe source against the probe's reals, scored by the model folder."""
    data = resolve_eval_data(model_dir, PROBE.root, use_model_manifest=False)
    result = run_evaluation(model_dir, data, model_dir / "probe_eval", batch_size=64)
    rows = result.predictions
    real = rows[rows["label"] == 0]
    out = {}
    for source in AI_SOURCES:
        both = rows[(rows["source"] == source) | rows.index.isin(real.index)]
        out[source] = roc_auc(both["label"].to_numpy(), both["score_ai"].to_numpy())
    return out


def run_variant(name: str, archs: list[str], args: argparse.Namespace, data_args: list[str],
                reuse: str | None = None) -> list[dict[str, Any]]:
    """Train every seed with the family `archs` (or take the runs in `reuse`) and score the probe."""
    overrides = [a for a in args.overrides if a != "--"]
    variant = argparse.Namespace(config=args.config, output_dir=reuse or str(Path(args.output_dir) / name),
                                 overrides=[*overrides, "--self_fake_learned_archs", *archs])
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        row = {"seed": seed, **reused_figures(Path(reuse) / f"seed_{seed}")} if reuse else train_one(
            seed, variant, data_args)
        row.update(probe_figures(Path(variant.output_dir) / f"seed_{seed}"))
        rows.append({"variant": name, **{k: v for k, v in row.items() if k != "stress"}})
        print(f"{name:>22} seed {seed}: " + ", ".join(f"{s} {_fmt(row[s])}" for s in AI_SOURCES), flush=True)
    return rows


def reused_figures(run_dir: Path) -> dict[str, Any]:
    """The demo's own test figures of a run trained elsewhere."""
    run = RunFolder(run_dir)
    seen, unseen = run.read_json(results_file("test")) or {}, run.read_json(results_file("test_unseen")) or {}
    return {"seen_roc_auc": seen.get("test_roc_auc"), "unseen_roc_auc": unseen.get("test_unseen_roc_auc")}


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def run(args: argparse.Namespace) -> int:
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    if not set_exists(PROBE, PROBE.root):
        write_set(PROBE, PROBE.root, PROBE_IMAGES_PER_SOURCE, seed=0)
    data_args = prepare_data("demo", args.config, [a for a in args.overrides if a != "--"])
    variants = {"full family": list(args.archs)}
    variants.update({f"without {a}": [b for b in args.archs if b != a] for a in (args.only or args.archs)})
    results = {name: run_variant(name.replace(" ", "_"), archs, args, data_args,
                                 args.reuse_full if name == "full family" else None)
               for name, archs in variants.items()}
    columns = [*AI_SOURCES, "seen_roc_auc", "unseen_roc_auc"]
    print(f"\n{'median over seeds':>22}  " + "  ".join(f"{c:>20}" for c in columns))
    for name, rows in results.items():
        print(f"{name:>22}  " + "  ".join(f"{_fmt(_median(rows, c)):>20}" for c in columns))
    report = {"archs": args.archs, "overrides": args.overrides, "runs": results}
    (Path(args.output_dir) / "loao.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0
