"""The push: a finished model folder to the Hugging Face Hub, nothing else.

    python scripts/push_to_hub.py --model outputs/demo --repo_id USER/NAME [--private]

The upload is the folder's published files (`modeling.run_folder.PUBLISHED`: safetensors weights,
configs, processor, card, ONNX exports, evaluation files and plots): never checkpoints, optimizer
state or pickles. The card is written before the push (`modeling.release.model_card`).

The token comes only from the environment (`HF_TOKEN`) or `hf auth login`; this module never reads
it beyond checking that one exists, and never logs or writes it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token

from modeling.run_folder import RunFolder

logger = logging.getLogger(__name__)

TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


class HubError(RuntimeError):
    """A push that cannot happen; the message says why and what to do. Nothing was changed."""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub reads it once, at import)."""
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in TRUE_VALUES


def check_push_ready() -> None:
    """Raise HubError, before anything is written or sent, if a push cannot work."""
    if hub_offline():
        raise HubError("HF_HUB_OFFLINE=1 is set, so nothing can be pushed to the Hugging Face Hub; unset it "
                       "(and make sure the machine is online), then push again.")
    if get_token() is None:
        raise HubError("No Hugging Face token found: run `hf auth login` or set the HF_TOKEN environment "
                       "variable, then push again.")


def upload_files(model_dir: str | Path) -> list[str]:
    """The files that go up, relative to the folder; HubError if the folder is not a trained model."""
    run = RunFolder(model_dir)
    missing = run.missing_model_files()
    if missing:
        raise HubError(f"{model_dir} lacks {missing}: push a folder written by training "
                       "(weights as model.safetensors, with config.json and preprocessor_config.json).")
    return run.published_files()


def push_model_folder(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    commit_message: str = "Upload AI-image detector",
    before_upload: Callable[[str], object] | None = None,
) -> str:
    """Create the repo if needed and upload the published files; returns the repo URL.

    All checks run before any change: an offline machine, a missing token or an incomplete folder
    raise HubError and leave the folder and the Hub as they were. `before_upload(repo_id)` runs once
    the repo exists, with its full id (e.g. to write the card's usage snippet for it).
    """
    upload_files(model_dir)
    check_push_ready()
    api = HfApi()  # the token is found by huggingface_hub itself (HF_TOKEN or `hf auth login`)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    repo_id = getattr(url, "repo_id", None) or repo_id
    if before_upload is not None:
        before_upload(repo_id)
    files = upload_files(model_dir)
    logger.info("uploading %d files to %s: %s", len(files), repo_id, ", ".join(files))
    api.upload_folder(repo_id=repo_id, folder_path=str(model_dir), allow_patterns=files,
                      commit_message=commit_message)
    return str(url)
