"""Check every image of a dataset (or of a saved manifest) before a long training run.

    python scripts/validate_data.py --data_dir /data/artifact                       # every indexed file
    python scripts/validate_data.py --data_dir /data/artifact --manifest outputs/run/manifest.csv
    python scripts/train.py ... --exclude_files bad_files.csv --validate_files false  # reuse the list

Finds files that are missing, empty, truncated, unreadable, too large, or in a pixel mode the
pipeline cannot convert; prints counts per source and writes the bad files as CSV
(path, source, reason, detail). Exit status: 0 if every file is good, 1 if any is bad, 2 on a
usage or data error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from modeling.extras import requires_extra

with requires_extra("train", "scripts/validate_data.py"):
    from modeling.data.index import LAYOUTS, DataError, read_index
    from modeling.data.manifest import load_manifest
    from modeling.data.validation import save_bad_files, validate_manifest
    from modeling.run_folder import BAD_FILES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="Dataset root (ArtiFact layout or real/ + ai/).")
    parser.add_argument("--layout", default="auto", choices=LAYOUTS)
    parser.add_argument("--manifest", help="Check only the files of this manifest.csv (paths relative to data_dir).")
    parser.add_argument("--output", default=BAD_FILES, help="Where to write the bad-file list (CSV).")
    parser.add_argument("--workers", type=int, default=None, help="Processes (default: all CPU cores).")
    parser.add_argument("--no_progress", action="store_true", help="Hide the progress bar.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    log = logging.getLogger("validate_data")
    try:
        files = load_manifest(args.manifest) if args.manifest else read_index(args.data_dir, args.layout)
    except DataError as err:
        log.error("%s", err)
        return 2
    report = validate_manifest(files, args.data_dir, workers=args.workers, progress=not args.no_progress)
    save_bad_files(report, args.output)
    print(report.summary())
    print(f"bad-file list ({report.num_bad} rows): {args.output}")
    return 1 if report.num_bad else 0


if __name__ == "__main__":
    sys.exit(main())
