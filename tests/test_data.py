"""Tests for modeling.data (index, manifest): indexing, balanced subsets, splits, hold-outs, manifests, datasets."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modeling.data.index import DataError, read_artifact_index, read_folder_index, read_index
from modeling.data.manifest import (
    MANIFEST_COLUMNS,
    build_manifest,
    load_manifest,
    manifest_to_datasets,
    save_manifest,
    select_subset,
    split_manifest,
)
from modeling.images import IMAGE_EXTENSIONS


def synthetic_index(counts: dict[tuple[str, int], int]) -> pd.DataFrame:
    """An index without files: (source, label) -> number of rows."""
    rows = [
        (f"{source}/{label}/img{i:06d}.jpg", label, source, "")
        for (source, label), n in counts.items()
        for i in range(n)
    ]
    frame = pd.DataFrame(rows, columns=["path", "label", "source", "category"])
    return frame.astype({"label": "int8"})


def per_source(frame: pd.DataFrame, label: int) -> dict[str, int]:
    return frame[frame["label"] == label].groupby("source").size().to_dict()


# --------------------------------------------------------------------------- reading


def test_artifact_index_labels_paths_and_columns(artifact_root: Path, artifact_sources) -> None:
    index = read_artifact_index(artifact_root)

    assert list(index.columns) == [
        "path",
        "label",
        "source",
        "category",
    ]  # index columns dropped
    assert index["label"].dtype == np.int8
    assert list(index["source"].unique()) == sorted(artifact_sources)
    for source, (targets, category, _, _) in artifact_sources.items():
        rows = index[index["source"] == source]
        assert rows["label"].tolist() == [int(t != 0) for t in targets]
        assert set(rows["category"]) == {category}
    assert all((artifact_root / p).is_file() for p in index["path"])
    assert "afhq/train/cat/img000000.jpg" in set(index["path"])


def test_artifact_index_skips_hidden_and_imageless_folders(artifact_root: Path, artifact_sources) -> None:
    (artifact_root / ".cache" / "x").mkdir(parents=True)
    (artifact_root / "notes").mkdir()
    (artifact_root / "notes" / "readme.txt").write_text("hi")
    assert len(read_artifact_index(artifact_root)) == sum(len(v[0]) for v in artifact_sources.values())


def test_folder_layout(tmp_path: Path, tiny_jpeg: bytes) -> None:
    for name in [
        "real/a.jpg",
        "real/b.JPEG",
        "ai/midjourney/v6/x.png",
        "ai/y.webp",
        "ai/notes.txt",
        "ai/.hidden.jpg",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(tiny_jpeg)

    index = read_index(tmp_path)  # auto -> folder

    assert index.equals(read_folder_index(tmp_path))
    assert index["path"].tolist() == [
        "ai/midjourney/v6/x.png",
        "ai/y.webp",
        "real/a.jpg",
        "real/b.JPEG",
    ]
    assert index["label"].tolist() == [1, 1, 0, 0]
    assert index["source"].tolist() == ["midjourney", "ai", "real", "real"]
    assert set(index["category"]) == {""}


def test_auto_layout_picks_artifact(artifact_root: Path) -> None:
    assert read_index(artifact_root).equals(read_artifact_index(artifact_root))


def test_read_artifact_index_is_fast(tmp_path: Path) -> None:
    n_files, rows_per_file = 6, 50_000
    for f in range(n_files):
        folder = tmp_path / f"source{f}"
        folder.mkdir()
        frame = pd.DataFrame(
            {
                "image_path": [f"sub/img{i:06d}.jpg" for i in range(rows_per_file)],
                "target": np.arange(rows_per_file) % 3,
                "category": "cat",
            }
        )
        frame.to_csv(folder / "metadata.csv", index=f % 2 == 0)  # half with an index column

    start = time.perf_counter()
    index = read_artifact_index(tmp_path)
    elapsed = time.perf_counter() - start

    print(f"read_artifact_index: {len(index)} rows in {elapsed:.2f} s")
    assert len(index) == n_files * rows_per_file
    assert index["label"].sum() == n_files * np.count_nonzero(np.arange(rows_per_file) % 3)
    assert elapsed < 10.0


# --------------------------------------------------------------------------- errors


def test_missing_root_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="nope"):
        read_index(missing)
    with pytest.raises(DataError, match="nope"):
        read_folder_index(missing)


def test_training_indexes_every_format_prediction_scores(tmp_path: Path, tiny_jpeg: bytes) -> None:
    """One extension list: a folder's .avif/.jfif/.tif files are trained on as well as predicted."""
    from modeling.inference.images import expand_inputs

    names = [f"real/x{ext}" for ext in sorted(IMAGE_EXTENSIONS)] + [f"ai/y{ext.upper()}" for ext in (".avif", ".jfif")]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(tiny_jpeg)
    indexed = {tmp_path / p for p in read_folder_index(tmp_path)["path"]}
    predicted = {Path(item.path) for item in expand_inputs([tmp_path])}
    assert indexed == predicted == {tmp_path / n for n in names}


def test_folder_without_metadata_names_folder(artifact_root: Path, tiny_jpeg: bytes) -> None:
    (artifact_root / "mystery").mkdir()
    (artifact_root / "mystery" / "img.jpg").write_bytes(tiny_jpeg)
    with pytest.raises(DataError) as error:
        read_artifact_index(artifact_root)
    assert str(artifact_root / "mystery") in str(error.value)
    assert "metadata.csv" in str(error.value)


def test_missing_columns_name_file_and_columns(artifact_root: Path) -> None:
    metadata = artifact_root / "glide" / "metadata.csv"
    metadata.write_text("image_path,label\nimg000000.jpg,1\n")
    with pytest.raises(DataError) as error:
        read_artifact_index(artifact_root)
    message = str(error.value)
    assert str(metadata) in message
    assert "target" in message and "category" in message and "label" in message


def test_non_numeric_target(artifact_root: Path) -> None:
    metadata = artifact_root / "glide" / "metadata.csv"
    metadata.write_text("image_path,target,category\nimg000000.jpg,fake,face\n")
    with pytest.raises(DataError, match="glide"):
        read_artifact_index(artifact_root)


def test_empty_roots_and_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="metadata.csv"):
        read_artifact_index(tmp_path)
    (tmp_path / "real").mkdir()
    with pytest.raises(DataError, match="real"):
        read_index(tmp_path)
    with pytest.raises(DataError, match="layout"):
        read_index(tmp_path, layout="imagefolder")


def test_unknown_holdout_lists_sources(artifact_root: Path) -> None:
    with pytest.raises(DataError) as error:
        build_manifest(artifact_root, holdout_sources=["dalle3"])
    message = str(error.value)
    assert "dalle3" in message and "stylegan2" in message and str(artifact_root) in message


def test_load_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.csv"):
        load_manifest(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\na.jpg,0\n")
    with pytest.raises(DataError, match="bad.csv"):
        load_manifest(bad)


@pytest.mark.parametrize(("validation", "test"), [(-0.1, 0.1), (0.1, 1.0), (0.5, 0.5)])
def test_bad_fractions(validation: float, test: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        split_manifest(synthetic_index({("a", 0): 10}), validation, test, seed=0)


# --------------------------------------------------------------------------- subset


def test_subset_water_fills_each_label() -> None:
    index = synthetic_index(
        {
            ("lsun", 0): 500,
            ("coco", 0): 100,
            ("metfaces", 0): 5,
            ("sg2", 1): 900,
            ("ddpm", 1): 9,
        }
    )

    subset = select_subset(index, num_real=200, num_ai=200, max_per_source=None, seed=0)

    assert per_source(subset, 0) == {"metfaces": 5, "coco": 97, "lsun": 98}
    assert per_source(subset, 1) == {"ddpm": 9, "sg2": 191}
    assert subset["path"].is_unique and subset["path"].is_monotonic_increasing


def test_subset_caps_and_warns_on_shortfall(caplog: pytest.LogCaptureFixture) -> None:
    index = synthetic_index({("lsun", 0): 500, ("coco", 0): 100, ("sg2", 1): 900, ("glide", 1): 50})

    with caplog.at_level(logging.WARNING, logger="modeling.data.manifest"):
        subset = select_subset(index, num_real=100, num_ai=300, max_per_source=60, seed=0)

    assert per_source(subset, 0) == {"coco": 50, "lsun": 50}
    assert per_source(subset, 1) == {"glide": 50, "sg2": 60}
    assert "110" in caplog.text and "300" in caplog.text


def test_subset_all_rows_and_exclusion() -> None:
    index = synthetic_index({("a", 0): 30, ("b", 0): 7, ("c", 1): 40, ("d", 1): 12})
    subset = select_subset(index, num_real=0, num_ai=None, max_per_source=20, seed=1, exclude_sources=["d"])
    assert per_source(subset, 0) == {"a": 20, "b": 7}
    assert per_source(subset, 1) == {"c": 20}


def test_subset_ignores_row_order_and_depends_on_seed() -> None:
    index = synthetic_index({("a", 0): 300, ("b", 1): 300})
    shuffled = index.sample(frac=1.0, random_state=3)
    first = select_subset(index, 50, 50, None, seed=7)
    assert first.equals(select_subset(shuffled, 50, 50, None, seed=7))
    assert not first.equals(select_subset(index, 50, 50, None, seed=8))


# --------------------------------------------------------------------------- split and manifest


def test_split_is_disjoint_and_stratified() -> None:
    subset = synthetic_index({("a", 0): 50, ("b", 0): 20, ("b", 1): 40, ("c", 1): 3})

    manifest = split_manifest(subset, validation_fraction=0.2, test_fraction=0.2, seed=0)

    assert manifest["path"].is_unique and len(manifest) == len(subset)
    assert not manifest["heldout"].any()
    counts = manifest.groupby(["source", "label", "split"]).size()
    assert counts[("a", 0, "test")] == 10 and counts[("a", 0, "validation")] == 10 and counts[("a", 0, "train")] == 30
    for source, label in [("a", 0), ("b", 0), ("b", 1)]:
        assert set(counts[(source, label)].index) == {"train", "validation", "test"}
    assert counts[("c", 1)].sum() == 3


def test_build_manifest_deterministic_by_seed(artifact_root: Path) -> None:
    kwargs = {
        "num_real": 30,
        "num_ai": 30,
        "validation_fraction": 0.2,
        "test_fraction": 0.2,
    }
    first = build_manifest(artifact_root, seed=1, **kwargs)
    assert first.equals(build_manifest(artifact_root, seed=1, **kwargs))
    assert not first.equals(build_manifest(artifact_root, seed=2, **kwargs))
    assert list(first.columns) == MANIFEST_COLUMNS
    assert list(dict.fromkeys(first["split"])) == ["train", "validation", "test"]


def test_heldout_source_only_in_test(artifact_root: Path) -> None:
    manifest = build_manifest(
        artifact_root,
        num_real=40,
        num_ai=40,
        validation_fraction=0.2,
        test_fraction=0.2,
        holdout_sources=["ddpm"],
        seed=0,
    )

    ddpm = manifest[manifest["source"] == "ddpm"]
    assert set(ddpm["split"]) == {"test"} and ddpm["heldout"].all()
    assert set(manifest.loc[manifest["heldout"], "source"]) == {"ddpm"}
    seen_ai_test = manifest[(manifest["split"] == "test") & (manifest["label"] == 1) & ~manifest["heldout"]]
    assert len(ddpm) == round(seen_ai_test.groupby("source").size().mean())
    assert manifest["path"].is_unique

    capped = build_manifest(
        artifact_root,
        num_real=40,
        num_ai=40,
        holdout_sources=["ddpm"],
        max_heldout_per_source=15,
    )
    assert (capped["source"] == "ddpm").sum() == 15


def test_manifest_round_trip(tmp_path: Path, artifact_root: Path) -> None:
    manifest = build_manifest(artifact_root, num_real=20, num_ai=20, holdout_sources=["glide"], seed=0)
    manifest.loc[0, "category"] = "NA"  # must survive as a string, not become NaN
    path = tmp_path / "run" / "manifest.csv"

    save_manifest(manifest, path)
    loaded = load_manifest(path)

    pd.testing.assert_frame_equal(loaded, manifest, check_dtype=False)
    assert loaded["label"].dtype == np.int8 and loaded["heldout"].dtype == bool


def test_manifest_to_datasets(artifact_root: Path) -> None:
    manifest = build_manifest(artifact_root, num_real=20, num_ai=20, holdout_sources=["ddpm"], seed=0)

    splits = manifest_to_datasets(manifest, artifact_root)

    assert set(splits) == {"train", "validation", "test"}
    assert splits["train"].features["label"].names == ["real", "ai"]
    assert sum(len(d) for d in splits.values()) == len(manifest)
    example = splits["test"][0]
    assert isinstance(example["image"], Image.Image) and example["image"].size == (8, 8)
    assert example["label"] in (0, 1) and isinstance(example["heldout"], bool)
    raw = manifest_to_datasets(manifest, artifact_root, decode=False)["train"]
    assert isinstance(raw.features["image"], datasets.Image)
    first = raw[0]
    assert Path(first["image"]["path"]) == (artifact_root / first["path"]).absolute()
