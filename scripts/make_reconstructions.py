"""Write real images passed through a real VAE as a new ArtiFact-layout source folder (aligned hard fakes).

    python scripts/make_reconstructions.py --data_dir /data/artifact --vae stabilityai/sd-vae-ft-mse \
        --num 20000 --out /data/artifact/sd_vae_recon
    python scripts/make_reconstructions.py ... --manifest outputs/run/manifest.csv   # only that run's training reals

Then train with `--data_dir /data/artifact` as usual: the new folder is one more AI source. Resumable
(files already written are skipped); the source images are only read. Needs `pip install '.[reconstructions]'`.
Exit status 0 when done, 2 on a data or setup error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from modeling.extras import require_modules, requires_extra

require_modules("reconstructions", ("diffusers",), "scripts/make_reconstructions.py")  # loaded on first use
with requires_extra("reconstructions", "scripts/make_reconstructions.py"):
    from modeling.data.index import DataError
    from modeling.data.reconstructions import ReconSpec, make_reconstructions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True, help="ArtiFact root (or real/ + ai/ folder) with the reals.")
    parser.add_argument("--vae", required=True, help="diffusers AutoencoderKL: a Hub id or a local folder.")
    parser.add_argument("--num", type=int, required=True, help="How many real images to reconstruct.")
    parser.add_argument("--out", required=True, help="The new source folder (absent, empty, or one this wrote).")
    parser.add_argument("--manifest", help="Take the real images of this run's train split only.")
    parser.add_argument("--seed", type=int, default=0, help="Which images, and their JPEG qualities.")
    parser.add_argument("--sample", action="store_true", help="Sample the latent instead of taking its mode.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", help="cuda, cpu, ... (default: cuda when present).")
    parser.add_argument("--no_progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    spec = ReconSpec(vae=args.vae, num=args.num, seed=args.seed, sample=args.sample)
    try:
        count = make_reconstructions(args.data_dir, args.out, spec, manifest=args.manifest, batch_size=args.batch_size,
                                     device=args.device, progress=not args.no_progress)
    except (DataError, OSError) as err:
        logging.getLogger("make_reconstructions").error("%s", err)
        return 2
    print(f"{args.out}: {count} reconstructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
