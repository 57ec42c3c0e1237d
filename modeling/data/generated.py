"""Generated image sets in the ArtiFact layout: one definition type and one writer for all of them.

A set is a `GeneratedSet`: its sources and their target codes, how many images each gets, and a pure function
that makes image `index` of a source from a seed. `write_set` writes any of them the same way: spawn workers on
one torch thread each, results in job order (so the files do not depend on the worker count), each source's
images and then its `metadata.csv` (so a folder that has one is complete). The demo data
(`modeling.data.demo`) and the lab's evaluation sets (`benchmarks/sets/`) are such definitions.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from modeling.data.index import METADATA_COLUMNS, METADATA_FILE

# (source, index, seed, prepared) -> (JPEG bytes, category); `prepared` is `prepare()`'s result or None
ImageMaker = Callable[[str, int, int, Any], tuple[bytes, str]]
Job = tuple[ImageMaker, str, int, int, Any]
CHUNKSIZE = 8  # jobs per hand-over to a worker: fewer round trips, still both workers busy on a small source


@dataclass(frozen=True)
class GeneratedSet:
    """What a generated set is; `write_set` makes it.

    `make_image` and `prepare` run in spawn workers, which load them by name: module-level functions, or
    `functools.partial`s of them. A set whose images use torch imports it at module level, so that the
    workers find it loaded and run it on one thread (a convolution's float sums depend on the thread count).
    """

    name: str
    targets: Mapping[str, int]  # source -> ArtiFact target code (0 real, else a generator code), in writing order
    categories: tuple[str, ...]  # every category an image may get (its sub-folder)
    make_image: ImageMaker  # a pure function of its arguments: the same bytes in any process
    root: Path  # where the lab keeps it by default, relative to the working directory
    real_share: float = 1.0  # each real source gets round(images_per_source * real_share) images
    prepare: Callable[[], Any] | None = None  # run once, in a worker, before the images that need its result
    needs_prepared: tuple[str, ...] = ()  # the sources whose images get prepare()'s result; the others start at once
    description: str = ""

    def __post_init__(self) -> None:
        if bool(self.prepare) != bool(self.needs_prepared):
            raise ValueError(f"{self.name}: prepare and needs_prepared go together")
        if not set(self.needs_prepared) <= set(self.targets):
            raise ValueError(f"{self.name}: needs_prepared names unknown sources {self.needs_prepared}")

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.targets)

    @property
    def real_sources(self) -> tuple[str, ...]:
        return tuple(s for s, t in self.targets.items() if t == 0)

    @property
    def ai_sources(self) -> tuple[str, ...]:
        return tuple(s for s, t in self.targets.items() if t != 0)

    def images_in(self, source: str, images_per_source: int) -> int:
        """Images of `source`: real sources get `real_share` times more (1.5 balances two real to three AI)."""
        return round(images_per_source * self.real_share) if self.targets[source] == 0 else images_per_source

    def class_sizes(self, images_per_source: int) -> tuple[int, int]:
        """(real, ai) image counts of a set written with `images_per_source`."""
        real = sum(self.images_in(s, images_per_source) for s in self.real_sources)
        return real, images_per_source * len(self.ai_sources)


def set_exists(spec: GeneratedSet, root: str | Path) -> bool:
    """True when every source folder of `spec` under `root` has its metadata.csv (written last, so complete)."""
    return all((Path(root) / s / METADATA_FILE).is_file() for s in spec.sources)


def _one_torch_thread() -> None:
    """Pin torch to one thread in this worker, if the set loaded it (importing torch only to pin it costs seconds)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _run_job(job: Job) -> tuple[bytes, str]:
    make, *args = job
    _one_torch_thread()
    return make(*args)


def _run_prepare(prepare: Callable[[], Any]) -> Any:
    _one_torch_thread()
    return prepare()


def _write_source(folder: Path, target: int, results: Iterable[tuple[bytes, str]], bar: tqdm) -> None:
    """One source folder: its images, then metadata.csv (last, so a folder that has one is complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METADATA_FILE).unlink(missing_ok=True)  # a rewrite is incomplete until its own metadata.csv
    rows = []
    for i, (data, category) in enumerate(results):
        path = folder / category / f"img{i:06d}.jpg"  # sub-folders per category, as in ArtiFact
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        rows.append([path.relative_to(folder).as_posix(), target, category])
        bar.update(1)
    with open(folder / METADATA_FILE, "w", newline="") as f:
        csv.writer(f).writerows([list(METADATA_COLUMNS), *rows])


def _results(
    pool: ProcessPoolExecutor, spec: GeneratedSet, images_per_source: int, seed: int
) -> Iterator[tuple[str, Iterable[tuple[bytes, str]]]]:
    """(source, its results in index order) for every source; the sources that need prepare()'s result last."""

    def submit(source: str, prepared: Any) -> Iterable[tuple[bytes, str]]:
        jobs = [(spec.make_image, source, i, seed, prepared) for i in range(spec.images_in(source, images_per_source))]
        return pool.map(_run_job, jobs, chunksize=CHUNKSIZE)

    prepared: Future | None = pool.submit(_run_prepare, spec.prepare) if spec.prepare else None
    # every other source is queued now, so the workers keep busy while prepare() runs
    pending = {s: submit(s, None) for s in spec.sources if s not in spec.needs_prepared}
    yield from pending.items()
    for source in spec.needs_prepared:
        yield source, submit(source, prepared.result())


def write_set(
    spec: GeneratedSet,
    root: str | Path,
    images_per_source: int,
    seed: int,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write the set `spec` under `root` in the ArtiFact layout; returns the root.

    Deterministic: the same (images_per_source, seed) writes byte-identical files with any number of workers.
    """
    root = Path(root)
    total = sum(spec.images_in(s, images_per_source) for s in spec.sources)
    ctx = mp.get_context("spawn")  # torch and fork do not mix well
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        with tqdm(total=total, desc=f"{spec.name} data", unit="img", disable=not progress) as bar:
            for source, results in _results(pool, spec, images_per_source, seed):
                _write_source(root / source, spec.targets[source], results, bar)
    return root
