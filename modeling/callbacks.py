"""Trainer hooks that keep a long run alive and resumable.

- `StopOnSignal`: SIGTERM (a scheduler's or `kill`'s polite stop) saves a checkpoint at the end of
  the current optimizer step, then ends training; `train` raises `TrainingInterrupted` so the run
  is not mistaken for a finished one. A second SIGTERM falls through to the previous handler.
  (transformers' own `enable_jit_checkpoint` waits 3 s first and then reports a normal finish.)
- `collate_counting_skips` + `ReliableTrainer`: unreadable images dropped by `collate_fn` are
  counted in the batch itself, so the count survives DataLoader worker processes, and the trainer
  adds it to every training log line (`skipped_images`) and to eval metrics (`<prefix>_skipped_images`).
  Its DataLoader workers ignore SIGTERM, so a signal to the whole process group still ends cleanly.
- `last_complete_checkpoint`: the newest checkpoint whose `trainer_state.json` was written, so a
  SIGKILL during a checkpoint write resumes from the previous one instead of failing.
"""

from __future__ import annotations

import json
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from modeling.processing import collate_fn

logger = logging.getLogger(__name__)

SKIPPED_KEY = "num_skipped_images"
TRAINER_STATE_NAME = "trainer_state.json"  # written last by Trainer._save_checkpoint
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


def collate_counting_skips(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """`collate_fn`, plus how many examples it dropped; the count travels with the batch."""
    skipped = sum(1 for ex in examples if ex["pixel_values"] is None)
    batch = collate_fn(examples)
    batch[SKIPPED_KEY] = skipped
    return batch


class _IgnoreSigterm:
    """DataLoader `worker_init_fn` wrapper: workers ignore SIGTERM and leave stopping to the main process.

    torch's workers die on SIGTERM, and the main process then raises from its SIGCHLD handler in the
    middle of a step; a scheduler signals the whole process group, so without this no checkpoint
    is saved. Workers still exit when the main process ends (they are daemons and watch it).
    """

    def __init__(self, inner: Callable[[int], None] | None):
        self.inner = inner

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.inner is not None:
            self.inner(worker_id)


def shield_workers_from_sigterm(loader: DataLoader) -> DataLoader:
    """Make `loader`'s worker processes ignore SIGTERM (idempotent; no-op without workers)."""
    target = getattr(loader, "base_dataloader", loader)  # accelerate wraps the torch DataLoader
    if target.num_workers > 0 and not isinstance(target.worker_init_fn, _IgnoreSigterm):
        target.worker_init_fn = _IgnoreSigterm(target.worker_init_fn)
    return loader


class ReliableTrainer(Trainer):
    """A Trainer whose batches carry a skip count and whose workers survive a group-wide SIGTERM.

    The skip count is removed before the model sees the batch and added to the logs. Counts are
    per process (a multi-GPU run logs rank 0's), since the start of this process.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.skipped_images = 0
        self._eval_skipped = 0
        self._eval_prefix: str | None = None

    def get_train_dataloader(self) -> DataLoader:
        return shield_workers_from_sigterm(super().get_train_dataloader())

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        return shield_workers_from_sigterm(super().get_eval_dataloader(eval_dataset))

    def get_test_dataloader(self, test_dataset) -> DataLoader:
        return shield_workers_from_sigterm(super().get_test_dataloader(test_dataset))

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.skipped_images += int(inputs.pop(SKIPPED_KEY, 0))
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        self._eval_skipped += int(inputs.pop(SKIPPED_KEY, 0))
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        self._eval_skipped, self._eval_prefix = 0, metric_key_prefix
        try:
            return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        finally:
            self._eval_prefix = None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs or "train_runtime" in logs:
            logs["skipped_images"] = self.skipped_images
        elif self._eval_prefix and f"{self._eval_prefix}_runtime" in logs:
            logs[f"{self._eval_prefix}_skipped_images"] = self._eval_skipped
        super().log(logs, start_time)


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
