"""Benchmarks that print figures and ratios measured side by side in one run.

    python scripts/benchmark.py demo --seeds 5               # the demo recipe over seeds (--dataset outside)
    python scripts/benchmark.py multicrop --model outputs/demo   # one crop vs several on 1024 px images
    python scripts/benchmark.py predict                      # predict.py backends vs pipeline()
    python scripts/benchmark.py memory --config configs/convnext_tiny_artifact.yaml
    python scripts/benchmark.py train --config configs/demo.yaml
    python scripts/benchmark.py preprocessing --model outputs/demo   # native crop vs resize
    python scripts/benchmark.py baseline --data_dir data/outside     # a plain CNN: how hard a data set is

Each sub-command lives in its own module under `modeling/benchmarks/` and exposes
`add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = {
    "demo": "modeling.benchmarks.demo",
    "multicrop": "modeling.benchmarks.multicrop",
    "predict": "modeling.benchmarks.predict",
    "memory": "modeling.benchmarks.memory",
    "train": "modeling.benchmarks.train",
    "preprocessing": "modeling.benchmarks.preprocessing",
    "baseline": "modeling.benchmarks.baseline_cnn",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, module_name in SUBCOMMANDS.items():
        module = modules[name] = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0]))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
