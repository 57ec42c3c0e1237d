"""Find the image files a run cannot use, before training meets them.

A dataset of millions of files always holds a few that are missing, empty, truncated by an
interrupted copy, or in a pixel mode the pipeline cannot convert. `validate_files` checks every
selected file in parallel (one process per core, a progress bar), and `drop_bad_files` removes
them from a manifest and writes their list (CSV) beside it, so training never sees them.

The check decodes each image the way training does (`modeling.images.load_image`), but a JPEG is
decoded at 1/8 scale (`Image.draft`): the entropy-coded data is still read to its end, so a
truncated file fails exactly as in training, at a fraction of the cost of a full decode.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from modeling.images import ImageLoadError, load_image
from modeling.system import available_cores

logger = logging.getLogger(__name__)

BAD_FILE_COLUMNS = ["path", "source", "reason", "detail"]
REASONS = ("missing", "empty", "unreadable", "truncated", "unsupported_mode", "too_large")
# Below this many files a process pool costs more to start than it saves.
_MIN_PARALLEL = 512


def check_image_file(path: str | Path) -> tuple[str, str] | None:
    """None if training can decode the file, else (reason, detail); reason is one of REASONS."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing", "no such file"
    except OSError as err:
        return "unreadable", f"cannot stat: {err}"
    if not path.is_file():
        return "unreadable", "not a regular file"
    if size == 0:
        return "empty", "0 bytes"
    with warnings.catch_warnings():
        # load_image treats PIL's 1x-2x pixel-limit warning as an error; so must the check.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                return _check_open_image(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            return "too_large", str(err)
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            return _classify(err, "unreadable")


def _check_open_image(image: Image.Image) -> tuple[str, str] | None:
    """Decode (JPEG at 1/8 scale) then run the pipeline's own conversion on the result."""
    mode = image.mode
    try:
        if image.format == "JPEG":
            image.draft(None, (1, 1))  # DCT scaling: libjpeg still reads every scan to the end
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        return _classify(err, "unreadable")
    try:
        load_image(image)  # EXIF transpose, 16-bit scaling, convert("RGB"): exactly what training does
    except ImageLoadError as err:
        return "unsupported_mode", f"mode {mode}: {err}"
    return None


def _classify(err: BaseException, default: str) -> tuple[str, str]:
    message = f"{type(err).__name__}: {err}"
    return ("truncated" if "truncated" in message.lower() else default), message


@dataclass
class ValidationReport:
    """The outcome of one validation pass: every bad file, and counts per source."""

    bad: pd.DataFrame  # BAD_FILE_COLUMNS
    per_source: pd.DataFrame  # index source; columns checked, bad, then one column per reason seen
    checked: int

    @property
    def num_bad(self) -> int:
        return len(self.bad)

    def summary(self) -> str:
        """Human-readable counts per source, for logs and the CLI."""
        if self.per_source.empty:
            return "no files checked"
        lines = [f"checked {self.checked} files, {self.num_bad} bad"]
        lines += [f"  {line}" for line in self.per_source.to_string().splitlines()]
        return "\n".join(lines)


def validate_files(
    paths: Sequence[str],
    root: str | Path | None = None,
    sources: Sequence[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ValidationReport:
    """Check every file (paths relative to root) in parallel; sources label the per-source counts."""
    paths = [str(p) for p in paths]
    sources = list(sources) if sources is not None else [""] * len(paths)
    if len(sources) != len(paths):
        raise ValueError(f"got {len(sources)} sources for {len(paths)} paths")
    prefix = Path(root) if root is not None else Path()
    full_paths = [str(prefix / p) for p in paths]
    workers = workers or available_cores()
    bar = tqdm(total=len(paths), desc="validating images", unit="img", disable=not progress)
    results: list[tuple[str, str] | None] = []
    if workers == 1 or len(paths) < _MIN_PARALLEL:
        for full in full_paths:
            results.append(check_image_file(full))
            bar.update(1)
    else:
        # chunks keep inter-process traffic small; results come back in input order
        chunksize = max(16, min(256, len(paths) // (workers * 16)))
        with ProcessPoolExecutor(workers) as pool:
            for result in pool.map(check_image_file, full_paths, chunksize=chunksize):
                results.append(result)
                bar.update(1)
    bar.close()
    return _report(paths, sources, results)


def _report(paths: list[str], sources: list[str], results: list[tuple[str, str] | None]) -> ValidationReport:
    bad_rows = [(p, s, *r) for p, s, r in zip(paths, sources, results, strict=True) if r is not None]
    bad = pd.DataFrame(bad_rows, columns=BAD_FILE_COLUMNS)
    checked = pd.Series(sources, dtype=str).value_counts().rename("checked")
    per_reason = pd.crosstab(bad["source"], bad["reason"]) if len(bad) else pd.DataFrame(index=checked.index[:0])
    per_source = pd.concat([checked, bad["source"].value_counts().rename("bad")], axis=1)
    per_source = per_source.join(per_reason).fillna(0).astype(int).sort_index()
    per_source.index.name = "source"
    return ValidationReport(bad=bad, per_source=per_source, checked=len(paths))


def validate_manifest(
    manifest: pd.DataFrame, root: str | Path, workers: int | None = None, progress: bool = True
) -> ValidationReport:
    """Check every file a manifest (or index) selects; counts are per `source` column."""
    return validate_files(manifest["path"].tolist(), root, manifest["source"].tolist(), workers, progress)


def save_bad_files(report: ValidationReport, path: str | Path) -> None:
    """The bad-file list as CSV (path relative to the data root, source, reason, detail)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    report.bad.to_csv(path, index=False)


def load_bad_files(path: str | Path) -> set[str]:
    """Paths listed by save_bad_files (e.g. by scripts/validate_data.py), for exclusion."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "path" not in frame.columns:
        raise ValueError(f"{path}: expected a CSV with a 'path' column, as written by scripts/validate_data.py")
    return set(frame["path"])


def exclude_paths(manifest: pd.DataFrame, paths: set[str], why: str) -> pd.DataFrame:
    """The manifest without the given paths; logs how many rows each split lost."""
    drop = manifest["path"].isin(paths)
    if drop.any():
        lost = manifest.loc[drop, "split"].value_counts().to_dict() if "split" in manifest else {}
        logger.warning("excluding %d %s file(s) from the manifest %s", int(drop.sum()), why, lost)
    return manifest.loc[~drop].reset_index(drop=True)


def drop_bad_files(
    manifest: pd.DataFrame,
    root: str | Path,
    bad_files_path: str | Path,
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Validate a manifest's files, write the bad-file list, and return the manifest without them."""
    report = validate_manifest(manifest, root, workers, progress)
    save_bad_files(report, bad_files_path)
    if report.num_bad:
        logger.warning("file validation: %s\nbad files listed in %s", report.summary(), bad_files_path)
    else:
        logger.info("file validation: all %d files readable", report.checked)
    return exclude_paths(manifest, set(report.bad["path"]), "unreadable")
