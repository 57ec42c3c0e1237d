"""Metric modules for `evaluate`, shipped in the package so that nothing is fetched at run time.

`evaluate.load("accuracy")` goes to the Hub and fails offline (even with HF_EVALUATE_OFFLINE=1);
`evaluate.load(<absolute path to a module>)` works offline, so we load these by path.
"""

from __future__ import annotations

from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).resolve().parent


def load_metric(name: str) -> evaluate.EvaluationModule:
    """Load one of the bundled metric modules (`accuracy`, `roc_auc`) by file path."""
    path = METRICS_DIR / f"{name}.py"
    if not path.is_file():
        available = sorted(p.stem for p in METRICS_DIR.glob("*.py") if p.stem != "__init__")
        raise ValueError(f"Unknown metric {name!r}; bundled metrics: {available}")
    return evaluate.load(str(path))
