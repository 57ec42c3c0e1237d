"""Publish a trained model folder to the Hugging Face Hub with its model card.

    hf auth login                      # or export HF_TOKEN=...; the token is never read from a config file
    python scripts/push_to_hub.py --model outputs/demo --repo_id USER/NAME [--private]
    python scripts/push_to_hub.py --model outputs/demo --repo_id USER/NAME --dry_run   # list files, print card

The card (README.md) is rebuilt from the folder (config, calibration, eval/ results, manifest) with the
repo id in its usage snippet, and uploaded with the safetensors weights and the image processor.
`push_to_hub: true` in a training config does the same at the end of training.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from huggingface_hub.errors import HfHubHTTPError

from modeling.release.hub import HubError, push_model_folder, upload_files
from modeling.release.model_card import build_model_card, write_model_card


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="Model folder written by training.")
    parser.add_argument("--repo_id", required=True, help="USER/NAME (or ORG/NAME) on the Hub.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--commit_message", default="Upload AI-image detector")
    parser.add_argument("--dry_run", action="store_true", help="Print the files and the card; change nothing.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    log = logging.getLogger("push_to_hub")
    try:
        if args.dry_run:
            print("files to upload:\n  " + "\n  ".join(upload_files(args.model)))
            print(build_model_card(args.model, args.repo_id).content)
            return 0
        url = push_model_folder(args.model, args.repo_id, private=args.private, commit_message=args.commit_message,
                                before_upload=lambda repo_id: write_model_card(args.model, repo_id))
    except HubError as err:
        log.error("%s", err)
        return 2
    except HfHubHTTPError as err:
        log.error("the Hub refused the push: %s", err)
        return 1
    print(f"pushed {args.model} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
