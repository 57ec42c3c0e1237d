"""Write a generated evaluation set in the ArtiFact layout (deterministic: the same arguments, the same bytes).

    python -m benchmarks.sets blind                                  # data/blind, 300 images per AI source
    python -m benchmarks.sets sealed --root /tmp/sealed --images_per_source 20 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from benchmarks.sets import SETS
from modeling.data.generated import write_set


def build_parser() -> argparse.ArgumentParser:
    sets = "\n".join(f"  {name}: {spec.description}" for name, spec in SETS.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sets",
        description=f"{__doc__}\nsets:\n{sets}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(SETS))
    parser.add_argument("--root", default=None, help="where to write (default: the set's own folder, data/NAME)")
    parser.add_argument("--images_per_source", type=int, default=300, help="per AI source; real sources may get more")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spec = SETS[args.name]
    start = time.time()
    root = write_set(spec, args.root or spec.root, args.images_per_source, args.seed, workers=args.workers)
    total = sum(spec.class_sizes(args.images_per_source))
    print(f"wrote {total} images to {root} in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
