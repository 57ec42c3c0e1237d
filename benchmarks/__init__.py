"""Benchmarks run by scripts/benchmark.py (one module per sub-command) and the generated evaluation sets (`sets/`).

They stand beside the package, as timm's benchmark.py and nanoGPT's data preparation do: `pip install .` ships
`modeling/` only. Paths here are the repository's.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"
TRAIN_SCRIPT = REPO_ROOT / "scripts" / "train.py"
