"""Benchmarks that print figures and ratios measured side by side in one run.

    python scripts/benchmark.py demo --seeds 5               # the demo recipe over seeds (--dataset outside)
    python scripts/benchmark.py loao --seeds 3               # each learned-decoder architecture left out
    python scripts/benchmark.py multicrop --model outputs/demo   # one crop vs several on 1024 px images
    python scripts/benchmark.py predict                      # predict.py backends vs pipeline()
    python scripts/benchmark.py evaluate --model outputs/demo    # the test evaluation on torch vs the ONNX export
    python scripts/benchmark.py provenance                   # reading provenance: per file, and predict on vs off
    python scripts/benchmark.py memory --config configs/convnext_tiny_artifact.yaml
    python scripts/benchmark.py train --config configs/demo.yaml
    python scripts/benchmark.py preprocessing --model outputs/demo   # native crop vs resize
    python scripts/benchmark.py baseline --data_dir data/outside     # a plain CNN: how hard a data set is
    python scripts/benchmark.py portrait --model outputs/demo       # false accusations over portrait-blur radii

Each sub-command lives in its own module under `benchmarks/` and exposes
`add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks/` sits beside the package

from modeling.extras import requires_extra  # noqa: E402

SUBCOMMANDS = {
    "demo": "benchmarks.demo",
    "loao": "benchmarks.loao",
    "multicrop": "benchmarks.multicrop",
    "predict": "benchmarks.predict",
    "evaluate": "benchmarks.evaluation",
    "provenance": "benchmarks.provenance",
    "memory": "benchmarks.memory",
    "train": "benchmarks.train",
    "preprocessing": "benchmarks.preprocessing",
    "baseline": "benchmarks.baseline_cnn",
    "portrait": "benchmarks.portrait",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, module_name in SUBCOMMANDS.items():
        with requires_extra("dev", "scripts/benchmark.py"):  # benchmarks train, export and profile: every extra
            module = modules[name] = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0]))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
