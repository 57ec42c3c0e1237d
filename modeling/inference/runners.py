"""Backends that turn pixel batches into logits: PyTorch (fp32, or bf16 where the CPU has it natively)
and onnxruntime (the checked fp32 and int8 exports).

- "torch-fp32": the saved model in PyTorch, channels-last.
- "torch-bf16": the same under CPU bf16 autocast, on request (`precision="bf16"`): fast where the CPU computes
  bf16 natively (AVX-512 BF16 or AMX), emulated and slower than fp32 elsewhere. The first batch is also
  run in fp32 and bf16 is dropped if the scores disagree by more than BF16_TOLERANCE.
- "onnx-fp32" / "onnx-int8": onnxruntime on the files `modeling.inference.onnx_export` writes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from modeling.metrics import ai_scores
from modeling.system import available_cores

logger = logging.getLogger(__name__)

BF16_TOLERANCE = 0.02  # max |score difference| bf16 vs fp32 on the first batch before bf16 is dropped



class Runner(Protocol):
    """What scores a pixel batch: `name` says which backend ran."""

    @property
    def name(self) -> str: ...

    def __call__(self, pixel_values: torch.Tensor) -> np.ndarray: ...


class TorchRunner:
    """pixel_values -> (N, num_labels) float32 logits with the PyTorch model."""

    def __init__(self, model: torch.nn.Module, bf16: bool = False, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)  # oneDNN's fast conv layout
        self.bf16 = bf16
        self._checked = not bf16

    @property
    def name(self) -> str:
        return "torch-bf16" if self.bf16 else "torch-fp32"

    def _forward(self, pixel_values: torch.Tensor, bf16: bool) -> np.ndarray:
        pixel_values = pixel_values.to(self.device, memory_format=torch.channels_last)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)
        with torch.inference_mode(), autocast:
            return self.model(pixel_values=pixel_values).logits.float().cpu().numpy()

    def __call__(self, pixel_values: torch.Tensor) -> np.ndarray:
        logits = self._forward(pixel_values, self.bf16)
        if not self._checked:  # first batch: bf16 must agree with fp32, else drop it
            self._checked = True
            reference = self._forward(pixel_values, False)
            # P(class 1) of both: with two classes its change equals P(class 0)'s, whichever class is the AI one
            gap = float(np.nanmax(np.abs(ai_scores(logits) - ai_scores(reference))))
            if not gap <= BF16_TOLERANCE:
                logger.warning("bf16 scores differ from fp32 by %.4f (> %s): using fp32", gap, BF16_TOLERANCE)
                self.bf16 = False
                return reference
        return logits


def onnx_session(path: str | Path, num_threads: int | None = None):
    """An onnxruntime CPU session; threads do not spin, so they leave the cores to the decode workers."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads or available_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


MAX_CONCURRENT_RUNS = 8


class OnnxRunner:
    """pixel_values -> (N, num_labels) float32 logits with onnxruntime.

    The cores are used by running several batches at once (`concurrent_runs`, one onnxruntime thread
    each; `Detector.predict` keeps that many in flight) rather than by splitting each operator over
    threads: on 2 cores, 2 single-threaded runs measured 26-30 images/s against 21-26 for one
    2-thread run, because per-operator thread hand-offs cost 10-25% more CPU per image. A single
    call therefore runs on one core.
    """

    def __init__(self, path: str | Path, precision: str, num_threads: int | None = None,
                 concurrent_runs: int | None = None):
        """`concurrent_runs` 1 gives one session with every thread, for a caller that scores one batch at a time."""
        self.path = Path(path)
        self.precision = precision
        cores = num_threads or available_cores()
        self.concurrent_runs = max(1, min(cores, concurrent_runs or MAX_CONCURRENT_RUNS))
        self.session = onnx_session(path, max(1, cores // self.concurrent_runs))
        self.input_name = self.session.get_inputs()[0].name

    @property
    def name(self) -> str:
        return f"onnx-{self.precision}"

    def __call__(self, pixel_values: torch.Tensor) -> np.ndarray:
        feed = {self.input_name: pixel_values.numpy().astype(np.float32, copy=False)}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)
