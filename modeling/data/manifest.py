"""From an index to a saved split manifest and lazy `datasets.DatasetDict`s.

Flow: `read_index` (modeling.data.index)
  -> `select_subset` (balanced, per-source caps)
  -> `split_manifest` (seeded, stratified by source and label)
  -> held-out generators appended to test (`build_manifest`)
  -> `save_manifest` with the run -> `manifest_to_datasets` for training and evaluation.

Every random choice comes from a generator seeded by (seed, stage, label, source), so a
manifest depends only on the seed and the data, never on file or row order.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa

from modeling.data.index import DataError, read_index
from modeling.labels import ID2LABEL, LABEL_NAMES

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["path", "label", "source", "category", "split", "heldout"]
SPLITS = ("train", "validation", "test")  # also the order in which a content's first copy is kept (dedup)

# Stream tags keep the subset draw and the split shuffle independent for the same group.
_SELECT_STREAM, _SPLIT_STREAM, _HOLDOUT_STREAM = 1, 2, 3


# --------------------------------------------------------------------------- subset and split


def select_subset(
    index: pd.DataFrame,
    num_real: int | None,
    num_ai: int | None,
    max_per_source: int | None,
    seed: int,
    exclude_sources: Sequence[str] = (),
) -> pd.DataFrame:
    """A balanced subset: each label's quota spread evenly over its sources (water-filling).

    Without the even spread two big sources (LSUN, StyleGAN2) would make up most of the data and the
    detector would learn them rather than "AI-generated". num <= 0 or None takes every row of that
    label (still capped by max_per_source). Result sorted by path, index reset.
    """
    kept = index[~index["source"].isin(list(exclude_sources))]
    kept = kept.sort_values("path", ignore_index=True)
    parts = [
        _select_label(kept[kept["label"] == label_id], label_id, quota, max_per_source, seed)
        for label_id, quota in ((0, num_real), (1, num_ai))
    ]
    return pd.concat(parts).sort_values("path", ignore_index=True)


def _select_label(
    rows: pd.DataFrame, label_id: int, quota: int | None, max_per_source: int | None, seed: int
) -> pd.DataFrame:
    """Draw one label's quota from its sources, water-filled and capped per source."""
    counts = rows.groupby("source", sort=True).size()
    if max_per_source is not None:
        counts = counts.clip(upper=max_per_source)
    if quota is None or quota <= 0:
        take = counts
    else:
        take = _water_fill(counts, quota)
        if take.sum() < quota:
            logger.warning(
                "Only %d %s images available (max_per_source=%s), fewer than the %d requested; taking them all.",
                take.sum(),
                ID2LABEL[label_id],
                max_per_source,
                quota,
            )
    groups = rows.groupby("source", sort=True)
    drawn = [
        _sample(group, int(take[source]), _rng(seed, _SELECT_STREAM, label_id, source)) for source, group in groups
    ]
    return pd.concat([rows.iloc[:0], *drawn])


def _sample(rows: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """size rows without replacement, kept in their (path) order."""
    return rows.iloc[np.sort(rng.choice(len(rows), size=size, replace=False))]


def _water_fill(capacity: pd.Series, quota: int) -> pd.Series:
    """Spread quota evenly; a source short of its share gives all it has, the rest take more."""
    take = pd.Series(0, index=capacity.index, dtype="int64")
    remaining, left = int(quota), len(capacity)
    # Smallest first, name breaks ties: once a source cannot fill its share, the rest get more.
    for source, cap in sorted(capacity.items(), key=lambda item: (item[1], item[0])):
        take[source] = min(int(cap), remaining // left)
        remaining -= take[source]
        left -= 1
    return take


def _rng(seed: int, stream: int, label_id: int, source: str) -> np.random.Generator:
    """A generator per (seed, stage, label, source): one group's draw never shifts another's."""
    return np.random.default_rng([seed, stream, label_id, zlib.crc32(source.encode("utf-8"))])


def split_manifest(subset: pd.DataFrame, validation_fraction: float, test_fraction: float, seed: int) -> pd.DataFrame:
    """Add a seeded `split` stratified by (source, label), and `heldout=False`.

    Stratifying keeps every source's share equal across splits, so per-source test metrics exist
    and validation tracks the same mix as training.
    """
    _check_fractions(validation_fraction, test_fraction)
    subset = subset.sort_values("path", ignore_index=True)
    split = np.full(len(subset), "train", dtype=object)
    groups = subset.groupby(["source", "label"], sort=True).indices
    for (source, label_id), positions in groups.items():
        order = _rng(seed, _SPLIT_STREAM, int(label_id), source).permutation(positions)
        n_test = round(len(order) * test_fraction)
        n_val = round(len(order) * validation_fraction)
        split[order[:n_test]] = "test"
        split[order[n_test : n_test + n_val]] = "validation"
    return subset.assign(split=pd.Series(split, dtype=str), heldout=False)


def _check_fractions(validation_fraction: float, test_fraction: float) -> None:
    for name, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}.")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            "validation_fraction + test_fraction must be < 1 so training keeps data, "
            f"got {validation_fraction} + {test_fraction}."
        )


# --------------------------------------------------------------------------- manifest


def build_manifest(
    root: str | Path,
    *,
    layout: str = "auto",
    num_real: int | None = 100_000,
    num_ai: int | None = 100_000,
    max_per_source: int | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    holdout_sources: Sequence[str] = (),
    max_heldout_per_source: int | None = None,
    seed: int = 42,
) -> pd.DataFrame:
    """Index root, draw a balanced seeded subset, split it, and append held-out sources to test.

    Held-out sources (unseen generators) never reach train/validation; they measure generalisation.
    Each contributes at most max_heldout_per_source rows; None means as many as the average seen AI
    source has in test, so a held-out generator weighs like a seen one in the test metrics.
    """
    index = read_index(root, layout)
    _check_holdout(index, holdout_sources, root)
    subset = select_subset(index, num_real, num_ai, max_per_source, seed, exclude_sources=holdout_sources)
    manifest = split_manifest(subset, validation_fraction, test_fraction, seed)
    if holdout_sources:
        cap = max_heldout_per_source
        if cap is None:
            cap = _mean_test_ai_per_source(manifest)
        heldout = _sample_heldout(index, holdout_sources, cap, seed)
        manifest = pd.concat([manifest, heldout.assign(split="test", heldout=True)])
    # train, validation, test order reads better in the saved CSV than alphabetical order.
    order = manifest["split"].map({name: i for i, name in enumerate(SPLITS)})
    manifest = manifest.assign(_order=order).sort_values(["_order", "path"], ignore_index=True)
    return manifest[MANIFEST_COLUMNS]


def _check_holdout(index: pd.DataFrame, holdout_sources: Sequence[str], root: str | Path) -> None:
    available = sorted(index["source"].unique())
    unknown = sorted(set(holdout_sources) - set(available))
    if unknown:
        raise DataError(
            f"Held-out source(s) {unknown} not found under {str(root)!r}; available sources: {available}. "
            "Pass --holdout_generators with some of those, or --holdout_generators none."
        )


def _mean_test_ai_per_source(manifest: pd.DataFrame) -> int | None:
    """Test rows of the average seen AI source (at least 1); None (no cap) if test has none."""
    test_ai = manifest[(manifest["split"] == "test") & (manifest["label"] == 1)]
    if test_ai.empty:
        logger.warning("The test split has no seen AI images to size held-out sources by; keeping all their rows.")
        return None
    return max(1, round(test_ai.groupby("source").size().mean()))


def _sample_heldout(index: pd.DataFrame, sources: Sequence[str], cap: int | None, seed: int) -> pd.DataFrame:
    """Up to cap seeded rows per held-out source (all labels of that source together)."""
    parts = []
    for source in sorted(set(sources)):
        rows = index[index["source"] == source].sort_values("path", ignore_index=True)
        size = len(rows) if cap is None else min(cap, len(rows))
        parts.append(_sample(rows, size, _rng(seed, _HOLDOUT_STREAM, 0, source)))
    return pd.concat(parts, ignore_index=True)


def save_manifest(manifest: pd.DataFrame, path: str | Path) -> None:
    """Write the manifest as CSV so a run's exact data can be inspected and reproduced."""
    missing = [column for column in MANIFEST_COLUMNS if column not in manifest.columns]
    if missing:
        raise ValueError(f"Manifest lacks column(s) {missing}; build it with build_manifest.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest[MANIFEST_COLUMNS].to_csv(path, index=False)


def load_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest written by save_manifest, with the same dtypes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"Manifest {str(path)!r} not found; fix the path or build one with build_manifest and save_manifest."
        )
    # keep_default_na=False: a category or path such as "NA" or "" must stay a string.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns) != MANIFEST_COLUMNS:
        raise DataError(
            f"Manifest {str(path)!r} has columns {list(frame.columns)}, expected "
            f"{MANIFEST_COLUMNS}; regenerate it with save_manifest."
        )
    bad_split = sorted(set(frame["split"]) - set(SPLITS))
    if bad_split or not frame["label"].isin(["0", "1"]).all() or not frame["heldout"].isin(["True", "False"]).all():
        raise DataError(
            f"Manifest {str(path)!r} has invalid values (split must be one of {SPLITS}, "
            "label 0 or 1, heldout True or False); regenerate it with save_manifest."
        )
    return frame.astype({"label": "int8"}).assign(heldout=frame["heldout"] == "True")


def manifest_to_datasets(manifest: pd.DataFrame, root: str | Path, decode: bool = True) -> datasets.DatasetDict:
    """One lazy `datasets.Dataset` per split present; images are only opened when accessed."""
    features = datasets.Features(
        {
            "image": datasets.Image(decode=decode),
            "label": datasets.ClassLabel(names=list(LABEL_NAMES)),
            "path": datasets.Value("string"),
            "source": datasets.Value("string"),
            "category": datasets.Value("string"),
            "heldout": datasets.Value("bool"),
        }
    )
    prefix = Path(root).absolute().as_posix() + "/"
    splits = {}
    for split in SPLITS:
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            continue
        # Arrow arrays go through cast_storage in one vectorised step, not a Python loop per row.
        columns = {
            "image": pa.array(prefix + rows["path"], pa.string()),
            "label": pa.array(rows["label"].to_numpy(dtype="int64")),
            "path": pa.array(rows["path"], pa.string()),
            "source": pa.array(rows["source"], pa.string()),
            "category": pa.array(rows["category"], pa.string()),
            "heldout": pa.array(rows["heldout"].to_numpy(dtype=bool)),
        }
        splits[split] = datasets.Dataset.from_dict(columns, features=features, split=split)
    return datasets.DatasetDict(splits)
