"""Serve the web demo: drop images, see label, calibrated score, Grad-CAM heat map, a stability check and provenance.

    python scripts/app.py --model outputs/demo                      # http://127.0.0.1:7860
    python scripts/app.py --model user/artifact-detector --port 0   # a Hub repo, on any free port
    python scripts/app.py --model outputs/demo --host 0.0.0.0       # reachable from other machines

Scores come from the same predictor as scripts/predict.py (same backend choice and threshold). The
page binds 127.0.0.1 and makes no share link unless --host / --share true ask for it. Exit status:
0 after Ctrl-C, 2 when the model cannot be loaded or an argument is wrong.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from modeling.extras import requires_extra

with requires_extra("app", "scripts/app.py"):
    from modeling.app.demo import UNCERTAIN_MARGIN, build_app, free_port, launch
    from modeling.inference.predictor import BACKENDS, ModelLoadError

logger = logging.getLogger("app")


def str_to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="Model folder written by training, or a Hub repo id.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="Port to serve on; 0 picks a free one (default: $GRADIO_SERVER_PORT or 7860).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default: this machine only).")
    parser.add_argument("--share", type=str_to_bool, default=False,
                        help="true: also open a public gradio.live link (downloads Gradio's tunnel client).")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="As in scripts/predict.py.")
    parser.add_argument("--threshold", type=float, default=None, help="P(ai) >= T means ai (default: the model's).")
    parser.add_argument("--margin", type=float, default=UNCERTAIN_MARGIN,
                        help="'uncertain' when a score's log-odds are this close to the threshold's (default: "
                        "%(default)s, odds within e-fold).")
    parser.add_argument("--ai_label", default=None, metavar="NAME",
                        help="As in scripts/predict.py: the model's label of its AI class (default: inferred).")
    parser.add_argument("--trust_anchors", metavar="PEM", default=None,
                        help="Root certificates whose C2PA signers count as trusted (default: none).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        app = build_app(args.model, backend=args.backend, threshold=args.threshold, margin=args.margin,
                        ai_label=args.ai_label, trust_anchors=args.trust_anchors)
    except (ModelLoadError, ValueError) as err:
        logger.error("%s", err)
        return 2
    port = args.port or free_port(args.host)
    logger.info("backend: %s", app.predictor.detector.describe())
    url = launch(app, port=port, host=args.host, share=args.share, block=False)
    print(f"serving on {url}", flush=True)  # once the server answers; tests and wrappers read this line
    app.block_thread()  # until Ctrl-C
    return 0


if __name__ == "__main__":
    sys.exit(main())
