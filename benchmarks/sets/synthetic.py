"""What the generated held-out sets (`blind_data`, `sealed_data`) share: array/tensor conversions, the
sensor's area-averaging shrink, a Gaussian blur, random colours, pixel grids, and the writer of a whole
set (two one-thread spawn workers, one ArtiFact source folder after another). One owner, so that the
sets' bytes cannot drift apart by a copy being edited; moving these here changed no byte of either set
(checked on a small set of each).
"""

from __future__ import annotations

import csv
import math
import multiprocessing as mp
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from modeling.data.index import METADATA_COLUMNS, METADATA_FILE


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array -> (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]


def to_array(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) float32 array."""
    return x[0].permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def shrink(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-average resize per channel in PIL's float mode: how a sensor integrates a finer image."""
    chans = [np.asarray(Image.fromarray(img[..., c]).resize((w, h), Image.Resampling.BOX)) for c in range(img.shape[2])]
    return np.stack(chans, axis=-1).astype(np.float32)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (1, C, H, W) tensor, replicate padding."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k[:, :, None, :], groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k[:, :, :, None], groups=x.shape[1])


def random_colour(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    """A random RGB colour, each channel in lo..hi."""
    return rng.uniform(lo, hi, size=3).astype(np.float32)


def pixel_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1): (y, x), each (n, n)."""
    axis = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.meshgrid(axis, axis, indexing="ij")


def init_worker() -> None:
    """One torch thread per worker: the pool already uses both cores, and results stay deterministic."""
    torch.set_num_threads(1)


def write_source(folder: Path, target: int, results: Iterable[tuple[bytes, str]], bar: tqdm) -> None:
    """One source folder: its images, then metadata.csv (written last, so a folder that has one is complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METADATA_FILE).unlink(missing_ok=True)
    rows = []
    for i, (data, category) in enumerate(results):
        path = folder / category / f"img{i:06d}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        rows.append([path.relative_to(folder).as_posix(), target, category])
        bar.update(1)
    with open(folder / METADATA_FILE, "w", newline="") as f:
        csv.writer(f).writerows([list(METADATA_COLUMNS), *rows])


def write_set(
    root: str | Path,
    jobs: dict[str, list[tuple[str, int, int]]],
    make: Callable[[tuple[str, int, int]], tuple[bytes, str]],
    targets: dict[str, int],
    desc: str,
    progress: bool = True,
) -> Path:
    """Write every source's images under `root`: `make` (a module-level function, so the spawn workers can load
    it) turns each job into JPEG bytes and a category. Results come back in job order, so the files are the
    same on any number of workers."""
    root = Path(root)
    ctx = mp.get_context("spawn")  # torch and fork do not mix well
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=init_worker) as pool:
        with tqdm(total=sum(map(len, jobs.values())), desc=desc, unit="img", disable=not progress) as bar:
            pending = {s: pool.map(make, j, chunksize=10) for s, j in jobs.items()}  # both workers busy
            for source, results in pending.items():
                write_source(root / source, targets[source], results, bar)
    return root
