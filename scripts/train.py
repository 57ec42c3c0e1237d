"""Train the detector.

    accelerate launch --num_cpu_threads_per_process 2 scripts/train.py   # the demo (configs/demo.yaml), 2 CPU cores
    accelerate launch scripts/train.py --config configs/convnext_tiny_artifact.yaml --data_dir /data/artifact
    python scripts/train.py --num_train_epochs 1                        # any key overrides the YAML
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from modeling.extras import requires_extra

with requires_extra("train", "scripts/train.py"):
    from modeling.config import ConfigError, parse_config
    from modeling.data.index import DataError
    from modeling.training.callbacks import TrainingInterrupted
    from modeling.training.run import train

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"  # the demo: the first command


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        config = parse_config(argv, default_config=DEFAULT_CONFIG)
        train(config)
    except (ConfigError, DataError) as err:
        logging.getLogger("train").error("%s", err)
        return 2
    except TrainingInterrupted as err:  # SIGTERM: a checkpoint was saved; the message says how to resume
        logging.getLogger("train").warning("%s", err)
        return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
