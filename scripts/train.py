"""Train the detector.

    accelerate launch scripts/train.py                                   # the demo (configs/demo.yaml)
    accelerate launch scripts/train.py --config configs/convnext_tiny_artifact.yaml --data_dir /data/artifact
    python scripts/train.py --num_train_epochs 1                        # any key overrides the YAML
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from modeling.config import ConfigError, parse_config
from modeling.data.index import DataError
from modeling.training.callbacks import TrainingInterrupted
from modeling.training.run import train


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        config = parse_config(argv)
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
