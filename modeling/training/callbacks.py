"""Stopping and resuming: what keeps a long run alive across signals and kills.

- `StopOnSignal`: SIGTERM (a scheduler's or `kill`'s polite stop) saves a checkpoint at the end of
  the current optimizer step, then ends training; the run raises `TrainingInterrupted` so it is
  not mistaken for a finished one. A second SIGTERM falls through to the previous handler.
  (transformers' own `enable_jit_checkpoint` waits 3 s first and then reports a normal finish.)
- `last_complete_checkpoint`: the newest checkpoint whose `trainer_state.json` was written, so a
  SIGKILL during a checkpoint write resumes from the previous one instead of failing.
"""

from __future__ import annotations

import json
import logging
import re
import signal
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME  # written last by Trainer._save_checkpoint
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; rerun the same command to resume."""

    def __init__(self, global_step: int, checkpoint: str | None):
        self.global_step = global_step
        self.checkpoint = checkpoint
        super().__init__(
            f"training stopped by SIGTERM at step {global_step}; checkpoint saved in {checkpoint}. "
            "Run the same command again (or pass --resume_from_checkpoint) to continue."
        )


class StopOnSignal(TrainerCallback):
    """On SIGTERM: save a checkpoint at the next step end and stop (see module docstring)."""

    def __init__(self, signum: int = signal.SIGTERM):
        self.signum = signum
        self.requested = False
        self.stopped_at: int | None = None
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:  # second signal: the user means it
            self.uninstall()
            signal.raise_signal(signum)
            return
        self.requested = True
        logger.warning(
            "received %s: saving a checkpoint at the end of this step, then stopping", signal.Signals(signum).name
        )

    def install(self) -> None:
        try:
            self._previous = signal.signal(self.signum, self._handler)
            self._installed = True
        except ValueError:  # signal handlers can only be set from the main thread
            logger.warning("not in the main thread: %s will not save a checkpoint", signal.Signals(self.signum).name)

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(self.signum, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.install()  # before DataLoader workers fork, so forked workers ignore a group-wide SIGTERM too

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if args is not None and args.world_size > 1:
            # ranks may get the signal a step apart; all must save and stop at the same step or they hang
            self.requested = any_rank(self.requested, args.device)
        if self.requested:
            control.should_save = True
            control.should_evaluate = False  # an eval here could veto the save (save_strategy="best")
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.uninstall()
        if self.requested and self.stopped_at is None:
            logger.warning("SIGTERM arrived after the last step: the finished run saves its final model as usual")


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every process if it is True on any (an all-reduce; a no-op outside distributed runs)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    if torch.distributed.get_backend() != "nccl":
        device = torch.device("cpu")  # gloo reduces CPU tensors
    value = torch.tensor([int(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _is_complete(checkpoint: Path) -> bool:
    try:
        with open(checkpoint / TRAINER_STATE_NAME) as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """Newest `checkpoint-N` with a readable trainer_state.json; skips ones cut short by a kill."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))),
        reverse=True,
    )
    for _, checkpoint in found:
        if _is_complete(checkpoint):
            return str(checkpoint)
        logger.warning("ignoring incomplete checkpoint %s (no readable %s)", checkpoint, TRAINER_STATE_NAME)
    return None
