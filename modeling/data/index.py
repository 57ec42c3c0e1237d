"""Reading a data root into an index: every image with its label, source and category.

Two layouts are read:
- "artifact": the ArtiFact dataset, one folder per source, each with a `metadata.csv`
  (`image_path`, `target`, `category`); see shared/ARTIFACT_FORMAT.md.
- "folder": a user's own images, `<root>/real/**/*` and `<root>/ai/**/*`.

Reading never writes: a user's data folder is only listed and read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from modeling.images import IMAGE_EXTENSIONS, is_image_name
from modeling.labels import ID2LABEL, LABEL_NAMES

logger = logging.getLogger(__name__)

INDEX_COLUMNS = ["path", "label", "source", "category"]
LAYOUTS = ("auto", "artifact", "folder")
METADATA_FILE = "metadata.csv"
METADATA_COLUMNS = ("image_path", "target", "category")


class DataError(ValueError):
    """A data folder or manifest that cannot be used; the message names the path and the fix."""


# --------------------------------------------------------------------------- reading an index


def read_artifact_index(root: str | Path) -> pd.DataFrame:
    """Index an ArtiFact-style root: one `<source>/metadata.csv` per source folder.

    Returns columns path (`<source>/<image_path>`, relative to root), label (int8, target != 0),
    source and category. Files are not checked for existence: 2.5M stat calls would take minutes.
    """
    root = _require_dir(root)
    metadata_files = _find_metadata_files(root)
    tables = [_read_metadata(path, source=path.parent.name) for path in metadata_files]
    return _finish_index(pa.concat_tables(tables).to_pandas())


def _require_dir(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"Data root {str(root)!r} does not exist or is not a directory; pass the folder that holds the images."
        )
    return root


def _find_metadata_files(root: Path) -> list[Path]:
    """One metadata.csv per visible source folder, sorted by source name for determinism."""
    found = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        metadata = folder / METADATA_FILE
        if metadata.is_file():
            found.append(metadata)
        elif _holds_images(folder):
            raise DataError(
                f"Source folder {str(folder)!r} has images but no {METADATA_FILE}; add one "
                f"with columns {', '.join(METADATA_COLUMNS)}, or move the folder out of "
                f"{str(root)!r}."
            )
    if not found:
        raise DataError(
            f"No <source>/{METADATA_FILE} found under {str(root)!r}; point to the ArtiFact root "
            "(one folder per source), or use layout='folder' for <root>/real and <root>/ai."
        )
    return found


def _holds_images(folder: Path) -> bool:
    """True if the folder has an image file or a visible subfolder; stops at the first hit."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir() or is_image_name(entry.name):
                return True
    return False


def _read_metadata(path: Path, source: str) -> pa.Table:
    """Read the three needed columns of one metadata.csv into (path, label, source, category)."""
    names = _metadata_header(path)
    convert = pa_csv.ConvertOptions(
        include_columns=list(METADATA_COLUMNS),
        column_types={
            "image_path": pa.string(),
            "target": pa.float64(),
            "category": pa.string(),
        },
    )
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1),
            convert_options=convert,
        )
    except pa.ArrowInvalid as error:
        raise DataError(
            f"Cannot read {str(path)!r}: {error}. "
            "Every row needs the header's columns and a numeric target (0 = real, non-zero = AI)."
        ) from error
    target = table["target"]
    if target.null_count:
        raise DataError(
            f"{str(path)!r} has {target.null_count} rows with an empty target; fill them (0 = real, non-zero = AI)."
        )
    return pa.table(
        {
            "path": pc.binary_join_element_wise(source, table["image_path"], "/"),
            "label": pc.cast(pc.not_equal(target, 0.0), pa.int8()),
            "source": pa.repeat(source, table.num_rows),
            "category": pc.fill_null(table["category"], ""),
        }
    )


def _metadata_header(path: Path) -> list[str]:
    """Column names of a metadata.csv; a leading unnamed index column is allowed (and ignored)."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        header = file.readline()
    names = [name.strip().strip('"') for name in header.rstrip("\r\n").split(",")]
    missing = [column for column in METADATA_COLUMNS if column not in names]
    if missing:
        raise DataError(
            f"{str(path)!r} lacks column(s) {missing}: found {names}, expected "
            f"{list(METADATA_COLUMNS)} (an unnamed leading index column is fine). "
            "Fix the header line of that file."
        )
    # pandas writes an index column as "" or reads it back as "Unnamed: 0"; give empties a name.
    return [name or f"_unnamed_{i}" for i, name in enumerate(names)]


def _finish_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Apply the index dtypes shared by both layouts."""
    dtypes = {"path": str, "label": "int8", "source": str, "category": str}
    return frame.astype(dtypes)[INDEX_COLUMNS]


def read_folder_index(root: str | Path) -> pd.DataFrame:
    """Index a user's own images laid out as `<root>/real/**` and `<root>/ai/**`.

    The source is the first subfolder under real/ or ai/ (`ai/midjourney/x.png` -> midjourney),
    else the label name, so per-source metrics work on user data too. Hidden files are skipped.
    """
    root = _require_dir(root)
    rows = [
        (path, label_id, _folder_source(path, label_name))
        for label_id, label_name in ID2LABEL.items()
        for path in _list_images(root, label_name)
    ]
    if not rows:
        raise DataError(
            f"No images under {str(root / LABEL_NAMES[0])!r} or {str(root / LABEL_NAMES[1])!r}; "
            "put real images in real/ and AI-generated ones in ai/ "
            f"(extensions {', '.join(sorted(IMAGE_EXTENSIONS))})."
        )
    frame = pd.DataFrame(rows, columns=["path", "label", "source"]).assign(category="")
    return _finish_index(frame).sort_values("path", ignore_index=True)


def _list_images(root: Path, label_name: str) -> list[str]:
    """Image paths under root/label_name, relative to root, posix; hidden entries pruned."""
    folder = root / label_name
    if not folder.is_dir():
        return []
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        relative = Path(directory).relative_to(root).as_posix()
        found += [f"{relative}/{f}" for f in files if not f.startswith(".") and is_image_name(f)]
    return found


def _folder_source(path: str, label_name: str) -> str:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else label_name


def read_index(root: str | Path, layout: str = "auto") -> pd.DataFrame:
    """Index root; layout "auto" picks "folder" for real/ or ai/ without any metadata.csv."""
    if layout not in LAYOUTS:
        raise DataError(f"Unknown layout {layout!r} for {str(root)!r}; use one of {LAYOUTS}.")
    if layout == "auto":
        layout = _detect_layout(Path(root))
    return read_folder_index(root) if layout == "folder" else read_artifact_index(root)


def _detect_layout(root: Path) -> str:
    has_label_dirs = any((root / name).is_dir() for name in LABEL_NAMES)
    has_metadata = root.is_dir() and any(root.glob(f"*/{METADATA_FILE}"))
    return "folder" if has_label_dirs and not has_metadata else "artifact"
