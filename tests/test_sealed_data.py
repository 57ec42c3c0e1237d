"""The sealed data set (benchmarks/sealed_data.py) on a tiny set: layout, labels, determinism, containment."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.sets import sealed as sealed_data
from modeling.data.index import read_index

PER_SOURCE = 3  # a few images of every source: the layout and the labels, in seconds
SEED = 5


@pytest.fixture(scope="module")
def sealed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sealed") / "set"  # a fresh parent, to see that nothing lands beside the set
    return sealed_data.make_sealed_data(root, images_per_source=PER_SOURCE, seed=SEED, progress=False)


def _rows(root: Path, source: str) -> list[dict[str, str]]:
    with open(root / source / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_source_is_an_artifact_folder_of_200px_jpegs(sealed_root: Path) -> None:
    assert sorted(p.name for p in sealed_root.iterdir()) == sorted(sealed_data.SOURCES)
    for source in sealed_data.SOURCES:
        rows = _rows(sealed_root, source)
        assert len(rows) == sealed_data.images_in(source, PER_SOURCE)
        assert list(rows[0]) == ["image_path", "target", "category"]
        for row in rows:
            assert int(row["target"]) == sealed_data.TARGETS[source]
            assert row["category"] in {c for cats in sealed_data.CATEGORIES.values() for c in cats}
            with Image.open(sealed_root / source / row["image_path"]) as img:
                assert (img.format, img.size, img.mode) == ("JPEG", (200, 200), "RGB")


def test_the_index_reads_it_with_the_right_labels(sealed_root: Path) -> None:
    index = read_index(sealed_root)
    assert set(index["source"]) == set(sealed_data.SOURCES)
    for source, label in index.groupby("source")["label"]:
        assert set(label) == {int(sealed_data.TARGETS[source] != 0)}
    reals = sum(sealed_data.images_in(s, PER_SOURCE) for s in sealed_data.REAL_SOURCES)
    assert (index["label"] == 0).sum() == reals
    assert (index["label"] == 1).sum() == PER_SOURCE * len(sealed_data.AI_SOURCES)


def test_the_set_is_written_only_under_its_root(sealed_root: Path) -> None:
    """Nothing beside the root; under it, only each source's metadata.csv and the images it lists."""
    assert list(sealed_root.parent.iterdir()) == [sealed_root]
    listed = {sealed_root / s / "metadata.csv" for s in sealed_data.SOURCES}
    listed |= {sealed_root / s / r["image_path"] for s in sealed_data.SOURCES for r in _rows(sealed_root, s)}
    assert {p for p in sealed_root.rglob("*") if p.is_file()} == listed


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """As in the generator's workers: convolutions' float sums depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_torch_thread")
def test_same_seed_same_bytes_in_any_process(sealed_root: Path) -> None:
    """The workers' files equal what this process makes; another seed makes other images."""
    for source in sealed_data.SOURCES:
        rows = _rows(sealed_root, source)
        i = len(rows) - 1
        data, category = sealed_data.make_image(source, i, SEED)
        assert (sealed_root / source / rows[i]["image_path"]).read_bytes() == data
        assert rows[i]["image_path"] == f"{category}/img{i:06d}.jpg"
    other = sealed_data.make_image("ddim_sampler", 0, SEED + 1)[0]
    assert other != (sealed_root / "ddim_sampler" / _rows(sealed_root, "ddim_sampler")[0]["image_path"]).read_bytes()
    with Image.open(io.BytesIO(other)) as img:
        assert img.size == (200, 200)


@pytest.mark.usefixtures("one_torch_thread")
def test_generators_keep_the_content_and_change_the_pixels() -> None:
    """Aligned content (a detector must learn the trace, not the picture), but not the real image itself."""
    img, _ = sealed_data._real_image("nature", np.random.default_rng(0), 96)
    for name, generate in sealed_data.GENERATORS.items():
        out = generate(img, np.random.default_rng(1))
        assert out.shape == img.shape, name
        diff = np.abs(out - img)
        assert 0.003 < diff.mean() < 0.08, name
