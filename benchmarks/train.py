"""Training images/s with the real data pipeline vs synthetic tensors of the same shape, in one run.

    python scripts/benchmark.py train --config configs/demo.yaml
    python scripts/benchmark.py train --config configs/convnext_tiny_artifact.yaml --tiny -- --data_dir data/demo
    python scripts/benchmark.py train --config configs/convnext_tiny_artifact.yaml --startup_rows 2496738 \
        --file_check_dir data/demo                              # start-up cost of the full ArtiFact index

The data side is the one training uses: the config's manifest and datasets, BatchTransform, collate_fn
and the Trainer's own train DataLoader (its dataloader_num_workers, pin memory, prefetch), so a ratio
near 1 means loading keeps the model busy. The synthetic side feeds one batch of the same shape that
already sits on the device. Rounds alternate between the two so that other load on the machine hits
both alike; each data round starts a fresh pass over the loader plus one untimed step, so batches
prefetched during a synthetic round cannot flatter the data side. "waiting for data" is the share of
the data rounds spent in next(loader): near 0 means the model, not loading, sets the pace.
`--tiny` swaps the network for a small random-init ConvNext (for CPUs; on a GPU use the real one).
`--startup_rows N` instead times what precedes the first step on an N-row ArtiFact index written as
metadata.csv files only (no images): index read, manifest, manifest copy, dataset build; with
`--file_check_dir DIR` also the per-file passes (validate_files, dedup) on DIR's real images.
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from benchmarks.memory import half_dtype, parse_run_config
from modeling.config import ConfigError, RunConfig
from modeling.data.index import DataError, read_index
from modeling.data.manifest import build_manifest, save_manifest
from modeling.processing import build_image_processor
from modeling.run_folder import MANIFEST
from modeling.training.batches import collate_fn
from modeling.training.builders import build_model
from modeling.training.data import build_datasets, clean_manifest, ensure_demo_data, prepare_manifest
from modeling.training.run import check_precision

logger = logging.getLogger(__name__)

# The CPU stand-in for ConvNeXt-Tiny: the demo's architecture, small enough for a CPU, not a toy load.
TINY_MODEL = {"hidden_sizes": [24, 48, 96, 192], "depths": [1, 1, 2, 1], "patch_size": 2}

# ArtiFact rows per source, approximately (the dataset's own charts; sources they give no figure for get
# "most generators 10k to 20k"); the total is 2,496,743, scaled to --startup_rows.
ARTIFACT_COUNTS = {
    **{s: (n, 0) for s, n in {
        "afhq": 32_000, "celebahq": 30_000, "coco": 160_000, "ffhq": 70_000, "imagenet": 97_000,
        "landscape": 4_300, "lsun": 560_000, "metfaces": 1_300,
    }.items()},
    "cycle_gan": (1_300, 1_300),
    **{s: (0, n) for s, n in {
        "big_gan": 50_000, "cips": 20_000, "ddpm": 900, "denoising_diffusion_gan": 20_000, "diffusion_gan": 20_000,
        "face_synthetics": 20_000, "gansformer": 20_000, "gau_gan": 20_000, "generative_inpainting": 20_000,
        "glide": 20_000, "lama": 20_000, "latent_diffusion": 20_000, "mat": 60_000, "palette": 10_000,
        "pro_gan": 10_000, "projected_gan": 20_000, "sfhq": 20_000, "stable_diffusion": 20_000,
        "star_gan": 20_000, "stylegan1": 10_000, "stylegan2": 1_000_000, "stylegan3": 100_000,
        "taming_transformer": 100_000, "vq_diffusion": 20_000,
    }.items()},
}


# --------------------------------------------------------------------------- throughput


@dataclass
class Throughput:
    """Images and seconds accumulated over the timed steps of one mode."""

    images: int = 0
    seconds: float = 0.0
    data_wait: float = 0.0  # time spent waiting for the next batch (data mode only)
    rounds: list[float] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


class StepRunner:
    """One optimizer step of the model on a batch, as Trainer does it (autocast, GradScaler on CUDA)."""

    def __init__(self, model: torch.nn.Module, config: RunConfig, device: torch.device):
        self.model = model.to(device).train()
        self.device = device
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(config.training, model)
        self.optimizer = optimizer_cls(model.parameters(), **kwargs)
        self.dtype = half_dtype(config.training) if device.type == "cuda" else None  # CPU: fp32, as training
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def __call__(self, batch: dict[str, torch.Tensor]) -> None:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float16, enabled=self.dtype is not None):
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()  # note: a CPU-GPU sync point, only at the edges of timed spans


def endless(loader: DataLoader) -> Generator[dict[str, torch.Tensor], None, None]:
    """Batches across epoch boundaries, as a long training sees them."""
    while True:
        yield from loader


def repeat(batch: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
    """The same on-device batch forever: the synthetic side costs nothing to load."""
    while True:
        yield batch


def timed_round(step: StepRunner, batches: Iterator, warmup: int, steps: int, totals: Throughput) -> None:
    """Run warmup untimed steps, then time `steps` steps, adding to totals."""
    for _ in range(warmup):
        step(next(batches))
    step.sync()
    images, wait, start = 0, 0.0, time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(batches)
        wait += time.perf_counter() - t0
        step(batch)
        images += len(batch["labels"])
    step.sync()
    seconds = time.perf_counter() - start
    totals.images += images
    totals.seconds += seconds
    totals.data_wait += wait
    totals.rounds.append(images / seconds)


def build_train_loader(config: RunConfig, work_dir: Path) -> tuple[torch.nn.Module, DataLoader]:
    """The config's model and the exact train DataLoader its Trainer would use (workers, pinning, prefetch)."""
    args = config.training
    args.remove_unused_columns = False  # with_transform needs the raw `image` column
    args.eval_strategy = args.save_strategy = "no"  # only the train loader is built here
    args.load_best_model_at_end = False
    config.data.holdout_generators = []  # they only feed the test split; other data dirs may lack them
    for full_pass in ("validate_files", "dedup"):  # one-off passes over every file: start-up, not throughput
        if hasattr(config.data, full_pass):
            setattr(config.data, full_pass, False)
    check_precision(config.training)
    ensure_demo_data(config)
    manifest = prepare_manifest(config, work_dir)
    processor = build_image_processor(
        config.model.processor, config.model.image_size, config.model.image_mean, config.model.image_std
    )
    train_set = build_datasets(config, manifest, processor)["train"]
    model = build_model(config.model)
    trainer = Trainer(model=model, args=args, train_dataset=train_set, data_collator=collate_fn)
    return model, trainer.get_train_dataloader()


def measure_throughput(config: RunConfig, steps: int, rounds: int) -> tuple[Throughput, Throughput]:
    """(real data, synthetic) throughput of the config's training step, measured in alternating rounds.

    Each data round starts a fresh pass over the loader and one untimed step, so batches the workers
    prefetched while the synthetic round ran cannot flatter the data side.
    """
    with tempfile.TemporaryDirectory() as tmp:
        model, loader = build_train_loader(config, Path(tmp))
        step = StepRunner(model, config, config.training.device)
        first = next(iter(loader))
        synthetic = {
            "pixel_values": torch.randn_like(first["pixel_values"], device=step.device),
            "labels": first["labels"].to(step.device),
        }
        real, fake = Throughput(), Throughput()
        for _ in range(rounds):
            batches = endless(loader)
            timed_round(step, batches, 1, steps, real)
            batches.close()  # stops its workers (unless persistent) before the synthetic round
            timed_round(step, repeat(synthetic), 1, steps, fake)
        del loader  # stop persistent workers before the temporary folder goes
    return real, fake


def apply_tiny_model(config: RunConfig) -> None:
    """Swap the network for TINY_MODEL (random init); data, batch and workers stay the config's."""
    model = config.model
    model.model_name_or_path = None
    model.hidden_sizes = list(TINY_MODEL["hidden_sizes"])
    model.depths = list(TINY_MODEL["depths"])
    model.patch_size = TINY_MODEL["patch_size"]
    model.layer_scale_init_value = 1.0


def throughput_report(config: RunConfig, real: Throughput, fake: Throughput) -> list[str]:
    args = config.training
    ratio = real.images_per_s / fake.images_per_s if fake.images_per_s else float("nan")
    crop = config.augment.train_crop_size or config.model.image_size
    net = config.model.model_name_or_path or f"random-init ConvNext {config.model.hidden_sizes}"
    return [
        f"model: {net}; device: {args.device}; batch {args.per_device_train_batch_size} at {crop}x{crop}; "
        f"dataloader_num_workers {args.dataloader_num_workers}",
        f"real data pipeline: {real.images_per_s:8.1f} images/s "
        f"(rounds {', '.join(f'{r:.1f}' for r in real.rounds)}; waiting for data {real.data_wait / real.seconds:.0%})",
        f"synthetic tensors:  {fake.images_per_s:8.1f} images/s (rounds {', '.join(f'{r:.1f}' for r in fake.rounds)})",
        f"ratio data/synthetic: {ratio:.2f} ({'>=' if ratio >= 0.9 else '<'} 0.9)",
    ]


# --------------------------------------------------------------------------- start-up on the full index


def write_synthetic_index(root: Path, rows: int) -> int:
    """metadata.csv files only (no images) for ArtiFact's sources, ARTIFACT_COUNTS scaled to `rows`."""
    full = sum(r + a for r, a in ARTIFACT_COUNTS.values())
    written = 0
    for source, (real, ai) in ARTIFACT_COUNTS.items():
        n_real, n_ai = (round(n * rows / full) for n in (real, ai))
        folder = root / source
        folder.mkdir(parents=True, exist_ok=True)
        n = n_real + n_ai
        pd.DataFrame(
            {
                "image_path": [f"{source}_{i // 10_000:03d}/img{i:07d}.jpg" for i in range(n)],
                "target": np.r_[np.zeros(n_real, dtype=int), np.full(n_ai, 3)],
                "category": "none",
            }
        ).to_csv(folder / "metadata.csv", index=False)
        written += n
    return written


def measure_startup(config: RunConfig, root: Path, output_dir: Path) -> dict[str, float]:
    """Seconds of each start-up stage of a run over every row (num_real = num_ai = 0) of root."""
    config.data.data_dir, config.data.num_real, config.data.num_ai = str(root), 0, 0
    config.data.max_per_source, config.data.holdout_generators, config.data.manifest = None, [], None
    times: dict[str, float] = {}
    start = time.perf_counter()
    index = read_index(root, "artifact")
    times["read_index (every metadata.csv)"] = time.perf_counter() - start
    start = time.perf_counter()
    manifest = build_manifest(root, layout="artifact", num_real=0, num_ai=0, seed=config.training.seed)
    times["build_manifest (index + subset + split)"] = time.perf_counter() - start
    start = time.perf_counter()
    save_manifest(manifest, output_dir / MANIFEST)
    times["save_manifest (the run's copy)"] = time.perf_counter() - start
    start = time.perf_counter()
    processor = build_image_processor(config.model.processor, config.model.image_size)
    splits = build_datasets(config, manifest, processor)
    times["datasets (lazy, with_transform)"] = time.perf_counter() - start
    times["rows"] = float(len(index))
    times["train rows"] = float(len(splits["train"]))
    return times


def measure_file_checks(config: RunConfig, image_dir: Path, output_dir: Path) -> tuple[int, float]:
    """(files, seconds) of training's per-file passes (validate_files, dedup) over every image of image_dir."""
    data = config.data
    data.data_dir, data.layout, data.holdout_generators = str(image_dir), "auto", []
    manifest = build_manifest(image_dir, num_real=0, num_ai=0, seed=config.training.seed)
    start = time.perf_counter()
    clean_manifest(config, manifest, output_dir)
    return len(manifest), time.perf_counter() - start


def startup_report(times: dict[str, float]) -> list[str]:
    stages = {k: v for k, v in times.items() if "rows" not in k and not k.startswith("file check")}
    stages.pop("read_index (every metadata.csv)")  # build_manifest reads the index itself
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [f"start-up over {int(times['rows']):,} rows ({int(times['train rows']):,} train), no image opened:"]
    lines += [f"  {'read_index alone':<42}{times['read_index (every metadata.csv)']:7.1f} s"]
    lines += [f"  {name:<42}{sec:7.1f} s" for name, sec in stages.items()]
    lines += [f"  {'total before the first step':<42}{sum(stages.values()):7.1f} s",
              f"  peak resident memory of this process: {peak_mib:,.0f} MiB"]
    if "file check files" in times:
        per_file = times["file check seconds"] / times["file check files"]
        lines += [
            f"per-file passes (validate_files + dedup) on {int(times['file check files'])} real images: "
            f"{1000 * per_file:.2f} ms per file (files in page cache);",
            f"  at that rate the {int(times['rows']):,} rows above would add ~{per_file * times['rows'] / 60:.0f} min "
            "(skip: --validate_files false --dedup false, or validate once and pass --exclude_files)",
        ]
    return lines


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", default="configs/demo.yaml", help="Training YAML (as for scripts/train.py).")
    parser.add_argument("--tiny", action="store_true", help="Use a small random-init ConvNext (for CPUs).")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per round and mode.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating data/synthetic rounds.")
    parser.add_argument("--threads", type=int, help="torch threads of the training process (default: torch's).")
    parser.add_argument("--startup_rows", type=int, help="Time start-up on a synthetic index of this many rows.")
    parser.add_argument("--file_check_dir", help="With --startup_rows: time validate_files + dedup on these images.")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then config overrides (--key value).")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        config = parse_run_config(args.config, args.overrides)
        if args.startup_rows:
            with tempfile.TemporaryDirectory() as tmp:
                written = write_synthetic_index(Path(tmp) / "artifact", args.startup_rows)
                logger.info("wrote %d metadata rows (no images) under %s", written, tmp)
                times = measure_startup(config, Path(tmp) / "artifact", Path(tmp))
                if args.file_check_dir:
                    files, seconds = measure_file_checks(config, Path(args.file_check_dir), Path(tmp) / "checks")
                    times.update({"file check files": files, "file check seconds": seconds})
                print("\n".join(startup_report(times)))
            return 0
        if args.tiny:
            apply_tiny_model(config)
        if args.threads:
            torch.set_num_threads(args.threads)
        real, fake = measure_throughput(config, args.steps, args.rounds)
    except (ConfigError, DataError) as err:
        logger.error("%s", err)
        return 2
    print("\n".join(throughput_report(config, real, fake)))
    return 0
