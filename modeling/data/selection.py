"""Which images an evaluation or an export check scores: a manifest's split, or every image of a folder.

The model folder's own manifest (written by training) is the default, so that `split="test"` means
exactly the images held out of that training run. Nothing here writes: it only reads indexes and
manifests and names the image files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from modeling.data.index import DataError, read_index
from modeling.data.manifest import load_manifest
from modeling.run_folder import MANIFEST, TRAINING_CONFIG, RunFolder

EVAL_COLUMNS = ["path", "label", "source", "category", "heldout"]


@dataclass
class EvalData:
    """Rows to score (columns EVAL_COLUMNS, paths relative to root) and where they came from."""

    frame: pd.DataFrame
    root: Path
    description: str

    @property
    def paths(self) -> list[str]:
        """The rows' image files, joined to their own root (never another split's root)."""
        return [str(self.root / p) for p in self.frame["path"]]

    def subset(self, rows: Sequence[int], what: str) -> EvalData:
        """These rows only (positions), the description saying which (`what`)."""
        return EvalData(self.frame.iloc[list(rows)].reset_index(drop=True), self.root, f"{self.description}, {what}")

    @property
    def labels(self) -> list[int]:
        return [int(v) for v in self.frame["label"]]


def resolve_eval_data(
    model_dir: str | Path,
    data_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    split: str = "test",
    use_model_manifest: bool = True,
    layout: str = "auto",
) -> EvalData:
    """An explicit manifest, else the model's own manifest, else every image under data_dir.

    `use_model_manifest=False` indexes data_dir instead (ArtiFact layout or real/ + ai/ folders) and
    scores all of it; `split="all"` takes every row of a manifest.
    """
    run = RunFolder(model_dir)
    if manifest is None and use_model_manifest and (run / MANIFEST).is_file():
        manifest = run / MANIFEST
    root = Path(data_dir if data_dir is not None else _recorded_data_dir(run))
    if manifest is None:
        frame = read_index(root, layout).assign(heldout=False)
        return EvalData(frame[EVAL_COLUMNS].reset_index(drop=True), root, f"every image under {root}")
    frame = _split_rows(load_manifest(manifest), manifest, split)
    first = root / frame["path"].iloc[0]
    if not first.is_file():
        raise DataError(
            f"{str(first)!r} from manifest {str(manifest)!r} does not exist: is --data_dir the data the model was "
            "trained on? To score every image of another folder instead, pass --no_manifest."
        )
    description = f"manifest {manifest}, split {split}, images under {root}"
    return EvalData(frame[EVAL_COLUMNS].reset_index(drop=True), root, description)


def _recorded_data_dir(run: RunFolder) -> str:
    data_dir = run.data_dir()
    if data_dir is None:
        raise DataError(f"No --data_dir given and {run / TRAINING_CONFIG} records none; pass --data_dir.")
    return data_dir


def _split_rows(frame: pd.DataFrame, manifest: str | Path, split: str) -> pd.DataFrame:
    if split == "all":
        return frame
    present = sorted(frame["split"].unique())
    rows = frame[frame["split"] == split]
    if rows.empty:
        raise DataError(f"Manifest {str(manifest)!r} has no {split!r} rows (splits present: {present}).")
    return rows


def run_check_images(
    model_dir: str | Path, data_dir: str | Path | None = None
) -> tuple[list[str], list[str], list[int]]:
    """(calibration, check, check labels) for an export check: the run's validation rows calibrate,
    its test rows check (labelled), so that no training image is ever used."""
    validation = resolve_eval_data(model_dir, data_dir, split="validation")
    test = resolve_eval_data(model_dir, data_dir, split="test")
    return validation.paths, test.paths, test.labels
