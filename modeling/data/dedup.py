"""Exact-duplicate detection across splits, so evaluation never scores an image seen in training.

Scraped datasets repeat files (the same photo in two sources, a generator output saved twice). If
one copy lands in train and another in test, the test score measures memory, not detection.
`drop_cross_split_duplicates` hashes every file of a manifest (BLAKE2b of the bytes, in parallel
threads: hashing and reading release the GIL), keeps each content in its earliest split
(train, then validation, then test) and removes later copies from the evaluation splits. The
counts and the list of removed files are written as `dedup.json` beside the manifest.

Only byte-identical files are found; a re-encoded or resized copy is a near-duplicate and needs a
perceptual hash, which this module does not attempt.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from modeling.data.manifest import SPLITS
from modeling.system import available_cores

logger = logging.getLogger(__name__)

HASH_NAME = "blake2b-128"
_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str | None:
    """Hex BLAKE2b-128 of the file's bytes; None if it cannot be read (validation reports why)."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def hash_files(
    paths: Sequence[str], root: str | Path | None = None, workers: int | None = None, progress: bool = True
) -> list[str | None]:
    """Digests in input order; threads, since the work is I/O and GIL-free hashing."""
    prefix = Path(root) if root is not None else Path()
    full_paths = [prefix / p for p in paths]
    threads = workers or min(32, 4 * available_cores())
    with ThreadPoolExecutor(threads) as pool:
        results = pool.map(file_digest, full_paths)
        return list(tqdm(results, total=len(full_paths), desc="hashing images", unit="img", disable=not progress))


def find_cross_split_duplicates(manifest: pd.DataFrame, digests: Sequence[str | None]) -> pd.DataFrame:
    """Rows to drop: a copy in a later split of content present in an earlier one.

    Returns columns path, split, duplicate_of (the kept copy's path), duplicate_split, ordered as in
    the manifest. Rows with an unreadable file (digest None) are never matched.
    """
    frame = pd.DataFrame(
        {
            "path": manifest["path"].to_numpy(),
            "split": manifest["split"].to_numpy(),
            "digest": list(digests),
            "rank": manifest["split"].map({s: i for i, s in enumerate(SPLITS)}).to_numpy(),
        }
    ).dropna(subset=["digest"])
    # the kept copy of each content: earliest split, then smallest path (deterministic)
    owner = frame.sort_values(["rank", "path"]).drop_duplicates("digest").set_index("digest")
    merged = frame.join(owner[["path", "split", "rank"]].add_suffix("_kept"), on="digest")
    later = merged[merged["rank"] > merged["rank_kept"]]
    return pd.DataFrame(
        {
            "path": later["path"],
            "split": later["split"],
            "duplicate_of": later["path_kept"],
            "duplicate_split": later["split_kept"],
        }
    ).reset_index(drop=True)


def duplicate_report(manifest: pd.DataFrame, digests: Sequence[str | None], removed: pd.DataFrame) -> dict[str, Any]:
    """Counts for dedup.json: removed per split, copies within a split, contents with both labels."""
    frame = manifest.assign(digest=list(digests)).dropna(subset=["digest"])
    within = {split: int(rows["digest"].duplicated().sum()) for split, rows in frame.groupby("split", sort=False)}
    labels_per_digest = frame.groupby("digest")["label"].nunique()
    return {
        "hash": HASH_NAME,
        "files_hashed": int(len(frame)),
        "files_unreadable": int(len(manifest) - len(frame)),
        "removed": {split: int((removed["split"] == split).sum()) for split in SPLITS[1:]},
        "removed_total": int(len(removed)),
        # copies inside one split are kept: they weigh an image twice but leak nothing
        "within_split_duplicates": within,
        "conflicting_labels": int((labels_per_digest > 1).sum()),
        "removed_files": removed.to_dict(orient="records"),
    }


def drop_cross_split_duplicates(
    manifest: pd.DataFrame,
    root: str | Path,
    report_path: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The manifest without evaluation rows that duplicate an earlier split; writes dedup.json."""
    digests = hash_files(manifest["path"].tolist(), root, workers, progress)
    removed = find_cross_split_duplicates(manifest, digests)
    report = duplicate_report(manifest, digests, removed)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        with open(report_path, "w") as f:
            json.dump(report, f, indent=2)
    if report["removed_total"]:
        logger.warning(
            "dedup: removed %d exact duplicate(s) of earlier splits from evaluation %s (list in %s)",
            report["removed_total"],
            report["removed"],
            report_path,
        )
    else:
        logger.info("dedup: no exact duplicates across splits (%d files hashed)", report["files_hashed"])
    if report["conflicting_labels"]:
        logger.warning(
            "dedup: %d content(s) appear with both labels; check their metadata", report["conflicting_labels"]
        )
    return manifest.loc[~manifest["path"].isin(set(removed["path"]))].reset_index(drop=True), report
