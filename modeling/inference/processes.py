"""Prediction over several processes (`accelerate launch scripts/predict.py ...`): each scores a
contiguous share of the inputs on its own device, and the main process gets every row in input order.

Outside `accelerate launch` (WORLD_SIZE unset) this is one process scoring everything, and accelerate
(a `train` extra) is not imported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

from modeling.system import available_cores

T = TypeVar("T")


class Processes:
    """This process's place among the launched ones: its share of the inputs, its device, the gathering."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank, self.device, self._state = 0, None, None
        if self.world > 1:
            from accelerate import PartialState  # starts (or joins) the process group
            from accelerate.utils import parse_flag_from_env

            # without cpu=True, PartialState ignores ACCELERATE_USE_CPU and every process thinks it is alone
            self._state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
            device = self._state.device
            self.rank, self.device = self._state.process_index, "cpu" if device.type == "cpu" else str(device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """A contiguous block of the inputs, so the gathered blocks in rank order are the input order."""
        per, extra = divmod(len(items), self.world)
        start = self.rank * per + min(self.rank, extra)
        return list(items[start : start + per + (self.rank < extra)])

    def cpu_threads(self) -> int | None:
        """Threads per process when several share this machine's CPU (None: the predictor's default)."""
        if self.world == 1 or (self.device or "cpu") != "cpu":
            return None
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
        return max(1, available_cores() // local)

    def gather(self, rows: list[Any]) -> list[Any] | None:
        """Every process's rows, in rank order, on the main process; None on the others."""
        if self.world == 1:
            return rows
        from accelerate.utils import gather_object

        everything = gather_object([rows])  # one list per process, in rank order
        return [row for block in everything for row in block] if self.is_main else None

    def close(self) -> None:
        """Wait for every process, then end the process group: a process that exits with the group still up can
        abort in its communication threads ("terminate called without an active exception") and fail the launch."""
        if self._state is not None:
            self._state.wait_for_everyone()
            self._state.destroy_process_group()
            self._state = None
