"""Provenance beside an evaluation: what each scored file claims about its origin, per label.

Read once per file from the original bytes (`modeling.provenance.read_provenance`: header and C2PA
manifest only, 0.2-0.9 ms of CPU a file), never from the degraded copies of the robustness or stress
sweeps, and never used by a score or a figure. The per-label counts show how much of a test set carries
provenance at all; "none found" is the absence of a claim, not evidence that an image is real.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from modeling.labels import ID2LABEL
from modeling.provenance import read_provenance

COLUMNS = ("provenance_c2pa_state", "provenance_source_type", "provenance_claims")
NOTE = "what the files claim, beside the score and never in it; 'none found' is not evidence of real"


def with_columns(predictions: pd.DataFrame, root: Path, trust_anchors: str | Path | None = None) -> pd.DataFrame:
    """`predictions` with COLUMNS: the C2PA state, the signed source type, the unsigned claims ("; "-joined)."""
    read = [read_provenance(Path(root) / path, trust_anchors).to_dict() for path in predictions["path"]]
    columns = {column: [row[column] or "" for row in read] for column in COLUMNS}
    return predictions.assign(**columns)


def _label_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """Counts of one label's rows: per C2PA state, per signed source type, and files with unsigned claims."""
    states = rows["provenance_c2pa_state"].map(lambda state: "error" if state.startswith("error") else state)
    source_types = Counter(code for code in rows["provenance_source_type"] if code)
    return {
        "n_images": len(rows),
        "c2pa": dict(sorted(Counter(states).items())),
        "source_types": dict(sorted(source_types.items())),
        "with_unsigned_claims": int((rows["provenance_claims"] != "").sum()),
    }


def summarize(predictions: pd.DataFrame) -> dict[str, Any]:
    """The metrics.json section: per label ("real", "ai"), the counts of `_label_summary`."""
    by_label = {ID2LABEL[int(label)]: _label_summary(rows) for label, rows in predictions.groupby("label")}
    return {"note": NOTE, **by_label}


def format_lines(summary: dict[str, Any] | None) -> list[str]:
    """Console lines: one per label; nothing when provenance was not read."""
    if not summary:
        return []
    lines = ["", f"provenance ({NOTE}):"]
    for label in ID2LABEL.values():
        if label in summary:
            part = summary[label]
            states = ", ".join(f"{state} {n}" for state, n in part["c2pa"].items())
            types = ", ".join(f"{code} {n}" for code, n in part["source_types"].items())
            lines.append(f"  {label} ({part['n_images']} images): C2PA {states}"
                         f"{f'; signed source types {types}' if types else ''}; "
                         f"unsigned claims in {part['with_unsigned_claims']}")
    return lines
