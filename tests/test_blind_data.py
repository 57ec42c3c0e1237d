"""The blind data set (benchmarks/blind_data.py) and the plain-CNN baseline, on a tiny set."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from benchmarks import baseline_cnn
from benchmarks.sets import blind as blind_data
from modeling.data.index import read_index

PER_SOURCE = 3  # the least that leaves an image of every AI source in the baseline's test split
SEED = 3


@pytest.fixture(scope="module")
def blind_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("blind")
    return blind_data.make_blind_data(root, images_per_source=PER_SOURCE, seed=SEED, progress=False)


def _rows(root: Path, source: str) -> list[dict[str, str]]:
    with open(root / source / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_source_is_an_artifact_folder_of_200px_jpegs(blind_root: Path) -> None:
    assert sorted(p.name for p in blind_root.iterdir()) == sorted(blind_data.SOURCES)
    for source in blind_data.SOURCES:
        rows = _rows(blind_root, source)
        assert len(rows) == blind_data.images_in(source, PER_SOURCE)
        assert list(rows[0]) == ["image_path", "target", "category"]
        for row in rows:
            assert int(row["target"]) == blind_data.TARGETS[source]
            with Image.open(blind_root / source / row["image_path"]) as img:
                assert (img.format, img.size, img.mode) == ("JPEG", (200, 200), "RGB")


def test_the_index_reads_it_with_the_right_labels(blind_root: Path) -> None:
    index = read_index(blind_root)
    assert set(index["source"]) == set(blind_data.SOURCES)
    for source, label in index.groupby("source")["label"]:
        assert set(label) == {int(blind_data.TARGETS[source] != 0)}
    assert (index["label"] == 0).sum() == sum(blind_data.images_in(s, PER_SOURCE) for s in blind_data.REAL_SOURCES)
    assert (index["label"] == 1).sum() == PER_SOURCE * len(blind_data.AI_SOURCES)


@pytest.fixture
def one_torch_thread():
    """As in the generator's workers: convolutions' float sums depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_torch_thread")
def test_same_seed_same_bytes_in_any_process(blind_root: Path) -> None:
    """The workers' files equal what this process makes; another seed makes other images."""
    for source in blind_data.SOURCES:
        rows = _rows(blind_root, source)
        i = len(rows) - 1
        data, category = blind_data.make_image(source, i, SEED)
        assert (blind_root / source / rows[i]["image_path"]).read_bytes() == data
        assert rows[i]["image_path"] == f"{category}/img{i:06d}.jpg"
    other = blind_data.make_image("patch_vq", 0, SEED + 1)[0]
    assert other != (blind_root / "patch_vq" / _rows(blind_root, "patch_vq")[0]["image_path"]).read_bytes()
    with Image.open(io.BytesIO(other)) as img:
        assert img.size == (200, 200)


def test_the_baseline_writes_a_roc_auc_per_seed(blind_root: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    baseline_cnn.add_arguments(parser)
    out = tmp_path / "baseline"
    args = parser.parse_args(
        [
            "--data_dir",
            str(blind_root),
            "--seeds",
            "2",
            "--steps",
            "3",
            "--batch_size",
            "8",
            "--crop",
            "32",
            "--output_dir",
            str(out),
        ]
    )
    assert baseline_cnn.run(args) == 0
    report = json.loads((out / "baseline.json").read_text())
    assert [r["seed"] for r in report["seeds"]] == [0, 1]
    for result in report["seeds"]:
        assert 0.0 <= result["roc_auc"] <= 1.0
        assert set(result["per_source"]) <= set(blind_data.AI_SOURCES)
    assert (out / "seed0" / "manifest.csv").is_file()  # the split the recipe would use, kept with the figures
