"""Write the offline demo dataset in the ArtiFact layout (deterministic, no downloads).

    python scripts/make_demo_data.py --output_dir data/demo --images_per_source 400

`accelerate launch scripts/train.py` (configs/demo.yaml) runs this itself when data/demo is absent.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from modeling.data.demo import DemoSpec, build_parser, make_demo_data


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    make_demo_data(args.output_dir, DemoSpec(images_per_source=args.images_per_source, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
