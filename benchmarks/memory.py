"""Peak GPU memory of one training step of a config, and the largest per-device batch that fits 4 GB.

    python scripts/benchmark.py memory --config configs/convnext_tiny_artifact.yaml
    python scripts/benchmark.py memory --config configs/demo.yaml --batch_size 64 -- --image_size 128

Arguments after `--` override the config like scripts/train.py's. How the figures are made:
- weights, gradients, optimizer state: counted from the parameters (fp16 mixed precision keeps fp32
  master weights and fp32 gradients; AdamW keeps two fp32 moments per parameter).
- activations: measured, not guessed. One forward/backward step runs on CPU under `torch.autocast` in
  the config's half precision while `torch.autograd.graph.saved_tensors_hooks` records every tensor
  autograd keeps for backward. Storages are counted once (views share one) and parameters are left out
  (counted above). Two batch sizes give the bytes per sample and a batch-independent part (the half
  copies of the weights that autocast caches). Without fp16/bf16 the step runs in fp32.
- CPU autocast is not CUDA autocast in one op that matters here: CUDA runs layer_norm in fp32, so a
  LayerNorm saves an fp32 copy of its input. The measurement applies the CUDA rule.
- half-precision convolutions and matmuls are very slow on CPU: the measurement computes them in fp32
  and stores the results in half precision; shapes and dtypes, hence every saved byte, are unchanged.
- allowances, not measurable on CPU: the backward working set (gradients in flight: twice the largest
  saved tensor), the CUDA context (driver, cuDNN and cuBLAS handles: `--cuda_context_gib`), and for
  evaluation three live activations of the eval batch. The peak is the larger of training and eval.
With a CUDA device the command also runs real steps (random pixels of the same shape, the config's
optimizer, autocast + GradScaler, its gradient accumulation) and prints `torch.cuda.max_memory_allocated`
beside the estimate.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from transformers import ConvNextConfig, ConvNextForImageClassification, Trainer, TrainingArguments

from modeling.config import ConfigError, ModelArguments, RunConfig, parse_config
from modeling.labels import ID2LABEL, LABEL2ID
from modeling.training.builders import build_model

logger = logging.getLogger(__name__)

GIB = 1024**3
MIB = 1024**2
# A "4 GB" laptop card exposes about 4e9 bytes (3.73 GiB) to CUDA: the budget is counted in those.
DEFAULT_BUDGET_GB = 4.0
DEFAULT_CUDA_CONTEXT_GIB = 0.5
MEASURE_BATCHES = (1, 2)  # saved bytes are affine in the batch: two points give slope and intercept
EVAL_LIVE_ACTIVATIONS = 3  # no_grad forward: input, output and one temporary of the largest layer
aten = torch.ops.aten


# --------------------------------------------------------------------------- config and model


def parse_run_config(config: str, overrides: Sequence[str] = ()) -> RunConfig:
    """parse_config with the overrides given after `--` on the benchmark's command line."""
    overrides = [a for a in overrides if a != "--"]
    return parse_config(["--config", config, *overrides])


def half_dtype(args: TrainingArguments) -> torch.dtype | None:
    """The autocast dtype a GPU run of these arguments uses, None for fp32."""
    if args.fp16:
        return torch.float16
    if args.bf16:
        return torch.bfloat16
    return None


def train_image_size(config: RunConfig) -> int:
    """Side of the training crop: activations scale with it, not with the eval size."""
    return config.augment.train_crop_size or config.model.image_size


def build_model_offline(model_args: ModelArguments) -> tuple[ConvNextForImageClassification, str]:
    """The config's network with random weights, never downloading: sizes are all that count here.

    A checkpoint name is resolved from local files only; when it is not there, ConvNextConfig()'s
    defaults (the ConvNeXt-Tiny architecture of facebook/convnext-tiny-224) stand in for it.
    """
    if not model_args.model_name_or_path:
        return build_model(model_args), "random-init ConvNext from the config"
    labels = dict(num_labels=len(ID2LABEL), id2label=ID2LABEL, label2id=LABEL2ID)
    try:
        config = ConvNextConfig.from_pretrained(model_args.model_name_or_path, local_files_only=True, **labels)
        note = f"architecture of {model_args.model_name_or_path} (local config), random weights"
    except (OSError, ValueError):
        config = ConvNextConfig(**labels)
        note = f"{model_args.model_name_or_path} not found offline: ConvNextConfig() defaults (Tiny), random weights"
    config.drop_path_rate = model_args.drop_path_rate
    config.image_size = model_args.image_size
    return ConvNextForImageClassification(config), note


def optimizer_state_bytes_per_param(args: TrainingArguments) -> int:
    """Bytes of optimizer state per trainable parameter for the Trainer's optimizer choice."""
    optim = str(getattr(args.optim, "value", args.optim))
    if "8bit" in optim:
        return 2
    if optim.startswith(("adam", "lamb")):
        return 8  # two fp32 moments
    if optim.startswith(("lion", "sgd")):
        return 4  # one fp32 buffer (momentum)
    logger.warning("optimizer %s: assuming AdamW-like state (8 bytes per parameter)", optim)
    return 8


# --------------------------------------------------------------------------- saved-tensor accounting


@dataclass
class SavedTensors:
    """What autograd kept for backward in one step, each storage counted once."""

    total: int
    largest: int
    count: int


class SavedTensorCounter:
    """Pack hook for `saved_tensors_hooks`: records distinct storages, leaving out the excluded ones.

    Saved tensors stay alive until backward, so a storage address seen here cannot be reused by
    another saved tensor of the same step: the address identifies the storage.
    """

    def __init__(self, exclude: set[int] = frozenset()):
        self.exclude = set(exclude)
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        try:
            storage = tensor.untyped_storage()
            ptr, nbytes = storage.data_ptr(), storage.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without a plain storage
            return tensor
        if ptr and ptr not in self.exclude:
            self.storages[ptr] = max(self.storages.get(ptr, 0), nbytes)
        return tensor

    @staticmethod
    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def result(self) -> SavedTensors:
        sizes = self.storages.values()
        return SavedTensors(total=sum(sizes), largest=max(sizes, default=0), count=len(self.storages))


class HalfComputeInFloat(TorchDispatchMode):
    """Run half-precision convolutions and matmuls in fp32, returning half tensors.

    Only for speed on CPU (where fp16 kernels are ~10x slower): inputs and outputs keep their dtypes
    and shapes, so the tensors autograd saves are byte for byte those of a half-precision step.
    """

    OPS = {
        aten.convolution.default,
        aten.convolution_backward.default,
        aten.mm.default,
        aten.addmm.default,
        aten.bmm.default,
        aten.baddbmm.default,
    }

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        half = _half_input_dtype(args) if func in self.OPS else None
        if half is None:
            return func(*args, **kwargs)
        up = tree_map(lambda t: t.float() if isinstance(t, torch.Tensor) and t.dtype == half else t, (args, kwargs))
        out = func(*up[0], **up[1])
        return tree_map(lambda t: t.to(half) if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out)


def _half_input_dtype(args: Sequence) -> torch.dtype | None:
    for arg in args:
        if isinstance(arg, torch.Tensor) and arg.dtype in (torch.float16, torch.bfloat16):
            return arg.dtype
    return None


@contextmanager
def cuda_layer_norm_policy() -> Iterator[None]:
    """Make layer_norm follow CUDA autocast's fp32 rule on CPU (fp32 input copy, fp32 output)."""
    original: Callable = F.layer_norm

    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        if torch.is_autocast_enabled("cpu") and input.dtype in (torch.float16, torch.bfloat16):
            with torch.autocast("cpu", enabled=False):
                up = [None if t is None else t.float() for t in (weight, bias)]
                return original(input.float(), normalized_shape, up[0], up[1], eps)
        return original(input, normalized_shape, weight, bias, eps)

    F.layer_norm = layer_norm
    try:
        yield
    finally:
        F.layer_norm = original


def measure_saved_tensors(
    model: torch.nn.Module, batch_size: int, image_size: int, dtype: torch.dtype | None, fast: bool = True
) -> SavedTensors:
    """Run one training forward/backward on CPU and count what autograd saved, as a GPU step would.

    fast=False runs the half-precision kernels themselves (slow on CPU; the tests compare both).
    """
    model.train()
    pixel_values = torch.randn(batch_size, 3, image_size, image_size)
    labels = torch.arange(batch_size) % model.config.num_labels
    params = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    counter = SavedTensorCounter(exclude=params)
    with ExitStack() as half:
        if dtype is not None:
            if fast:
                half.enter_context(HalfComputeInFloat())
            half.enter_context(cuda_layer_norm_policy())
        with torch.autocast("cpu", dtype=dtype or torch.float16, enabled=dtype is not None):
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
                loss = model(pixel_values=pixel_values, labels=labels).loss
        loss.backward()  # outside autocast, as with GradScaler; also checks the step is complete
    model.zero_grad(set_to_none=True)
    return counter.result()


# --------------------------------------------------------------------------- the estimate


@dataclass
class MemoryEstimate:
    """Bytes of one training step as a function of the per-device batch."""

    precision: str
    image_size: int
    eval_image_size: int
    num_parameters: int
    weights: int
    gradients: int
    optimizer_state: int
    saved_fixed: int  # batch-independent saved tensors: half weight copies cached by autocast
    saved_per_sample: float
    largest_saved_per_sample: float
    cuda_context: int

    def input_batch(self, batch: int, size: int | None = None) -> int:
        """fp32 pixel_values (N, 3, H, W) plus int64 labels, as collate_fn makes them."""
        size = size or self.image_size
        return batch * (3 * size * size * 4 + 8)

    def breakdown(self, batch: int) -> dict[str, int]:
        """Each part of the training step's peak, in bytes."""
        return {
            "weights (fp32)": self.weights,
            "gradients (fp32)": self.gradients,
            "optimizer state": self.optimizer_state,
            "input batch (fp32 pixels)": self.input_batch(batch),
            f"saved activations ({self.precision})": round(self.saved_fixed + batch * self.saved_per_sample),
            "backward working set (allowance)": round(2 * batch * self.largest_saved_per_sample),
            "CUDA context (allowance)": self.cuda_context,
        }

    def eval_peak(self, eval_batch: int) -> int:
        """No-grad forward of the eval batch: a few live activations of its largest layer (allowance)."""
        if eval_batch <= 0:
            return 0
        scale = (self.eval_image_size / self.image_size) ** 2
        live = EVAL_LIVE_ACTIVATIONS * eval_batch * self.largest_saved_per_sample * scale
        static = self.weights + self.gradients + self.optimizer_state + self.cuda_context
        return static + self.input_batch(eval_batch, self.eval_image_size) + round(live)

    def total(self, batch: int, eval_batch: int = 0) -> int:
        """Peak over the run: the training step, or evaluation if its batch makes that larger."""
        return max(sum(self.breakdown(batch).values()), self.eval_peak(eval_batch))

    def largest_batch(self, budget: int, eval_batch: int = 0, limit: int = 1 << 16) -> int:
        """Largest per-device batch whose training peak fits the budget (0 if none does)."""
        low, high = 0, limit
        while low < high:  # total() is increasing in batch: bisect
            mid = (low + high + 1) // 2
            if self.total(mid, eval_batch) <= budget:
                low = mid
            else:
                high = mid - 1
        return low


def estimate_memory(config: RunConfig, model: torch.nn.Module, cuda_context_gib: float) -> MemoryEstimate:
    """Measure saved tensors at two batch sizes on CPU and count the parameter-sized parts."""
    args = config.training
    dtype = half_dtype(args)
    size = train_image_size(config)
    params = [p for p in model.parameters()]
    trainable = sum(p.numel() for p in params if p.requires_grad)
    weights = sum(p.numel() * p.element_size() for p in [*params, *model.buffers()])
    small, large = (measure_saved_tensors(model, b, size, dtype) for b in MEASURE_BATCHES)
    per_sample = (large.total - small.total) / (MEASURE_BATCHES[1] - MEASURE_BATCHES[0])
    return MemoryEstimate(
        precision={torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32"),
        image_size=size,
        eval_image_size=config.model.image_size,
        num_parameters=sum(p.numel() for p in params),
        weights=weights,
        gradients=trainable * 4,
        optimizer_state=trainable * optimizer_state_bytes_per_param(args),
        saved_fixed=max(0, round(small.total - MEASURE_BATCHES[0] * per_sample)),
        saved_per_sample=per_sample,
        largest_saved_per_sample=large.largest / MEASURE_BATCHES[1],
        cuda_context=round(cuda_context_gib * GIB),
    )


# --------------------------------------------------------------------------- the real thing, on a GPU


def measure_cuda_peak(
    model: torch.nn.Module, args: TrainingArguments, batch: int, image_size: int, steps: int
) -> dict[str, int]:
    """Run `steps` optimizer steps of random pixels on the GPU; return the allocator's peaks."""
    device = torch.device("cuda")
    model.to(device).train()
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    optimizer = optimizer_cls(model.parameters(), **kwargs)
    dtype = half_dtype(args)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    accumulation = max(1, args.gradient_accumulation_steps)
    torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        for _ in range(accumulation):  # gradients stay alive across micro-batches, as in Trainer
            pixel_values = torch.randn(batch, 3, image_size, image_size, device=device)
            labels = torch.arange(batch, device=device) % model.config.num_labels
            with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
                loss = model(pixel_values=pixel_values, labels=labels).loss / accumulation
            scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return {
        "max_memory_allocated": torch.cuda.max_memory_allocated(),
        "max_memory_reserved": torch.cuda.max_memory_reserved(),
        "device_in_use": total - free,  # everything this process holds, context included
        "context_and_libraries": total - free - torch.cuda.memory_reserved(),
        "device_total": total,
    }


# --------------------------------------------------------------------------- report and CLI


def format_report(
    estimate: MemoryEstimate, config: RunConfig, batch: int, budget: int, model_note: str
) -> list[str]:
    """The printed breakdown, total, fit verdict and largest batch."""
    args = config.training
    eval_batch = args.per_device_eval_batch_size
    total = estimate.total(batch, eval_batch)
    largest = estimate.largest_batch(budget, eval_batch)
    accumulation = args.gradient_accumulation_steps
    lines = [
        f"model: {model_note}; {estimate.num_parameters / 1e6:.2f}M parameters",
        f"step: per-device batch {batch} at {estimate.image_size}x{estimate.image_size}, {estimate.precision}, "
        f"gradient accumulation {accumulation} (effective batch {batch * accumulation} per device)",
        f"activations measured: {estimate.saved_per_sample / MIB:.2f} MiB per sample + "
        f"{estimate.saved_fixed / MIB:.1f} MiB fixed",
        "",
        f"{'part':<42}{'MiB':>10}",
    ]
    rows = estimate.breakdown(batch)
    lines += [f"{name:<42}{value / MIB:>10.1f}" for name, value in rows.items()]
    lines += [
        f"{'training step total':<42}{sum(rows.values()) / MIB:>10.1f}",
        f"{f'evaluation, batch {eval_batch} (allowance)':<42}{estimate.eval_peak(eval_batch) / MIB:>10.1f}",
        "",
        f"estimated peak: {total / GIB:.2f} GiB",
        f"fits {budget / 1e9:g} GB ({budget / GIB:.2f} GiB): {'yes' if total <= budget else 'NO'}",
        f"largest per-device batch that fits {budget / 1e9:g} GB: {largest}",
    ]
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", required=True, help="Training YAML (as for scripts/train.py).")
    parser.add_argument("--batch_size", type=int, help="Per-device batch; default: the config's.")
    parser.add_argument("--budget_gb", type=float, default=DEFAULT_BUDGET_GB, help="GPU memory, in 1e9 bytes.")
    parser.add_argument("--cuda_context_gib", type=float, default=DEFAULT_CUDA_CONTEXT_GIB)
    parser.add_argument("--gpu_steps", type=int, default=3, help="Real steps when CUDA is present (0: skip).")
    parser.add_argument("--fail_above_gib", type=float, help="Exit 1 if the estimate is above this.")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then config overrides (--key value).")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        config = parse_run_config(args.config, args.overrides)
    except ConfigError as err:
        logger.error("%s", err)
        return 2
    torch.manual_seed(config.training.seed)
    batch = args.batch_size or config.training.per_device_train_batch_size
    budget = round(args.budget_gb * 1e9)
    model, note = build_model_offline(config.model)
    estimate = estimate_memory(config, model, args.cuda_context_gib)
    print("\n".join(format_report(estimate, config, batch, budget, note)))
    total = estimate.total(batch, config.training.per_device_eval_batch_size)
    if torch.cuda.is_available() and args.gpu_steps > 0:
        measured = measure_cuda_peak(model, config.training, batch, estimate.image_size, args.gpu_steps)
        print(f"\nmeasured on {torch.cuda.get_device_name(0)} ({args.gpu_steps} steps):")
        print(f"  torch.cuda.max_memory_allocated {measured['max_memory_allocated'] / GIB:.2f} GiB "
              f"(estimate without context {(total - estimate.cuda_context) / GIB:.2f} GiB)")
        print(f"  torch.cuda.max_memory_reserved  {measured['max_memory_reserved'] / GIB:.2f} GiB")
        print(f"  device memory in use            {measured['device_in_use'] / GIB:.2f} GiB "
              f"(context and libraries {measured['context_and_libraries'] / GIB:.2f} GiB; estimate {total / GIB:.2f})")
    else:
        print("\nno CUDA device: the figures above are the CPU-measured estimate only")
    if args.fail_above_gib is not None and total > args.fail_above_gib * GIB:
        logger.error("estimate %.2f GiB is above %.2f GiB", total / GIB, args.fail_above_gib)
        return 1
    return 0

