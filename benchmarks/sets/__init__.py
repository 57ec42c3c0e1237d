"""Generated evaluation sets in the ArtiFact layout, made differently from the demo data and from each other.

Each module defines one set (`modeling.data.generated.GeneratedSet`); `modeling.data.generated.write_set` writes
any of them, and `python -m benchmarks.sets NAME` does so from the command line.
"""

from benchmarks.sets.blind import BLIND
from benchmarks.sets.outside import OUTSIDE
from benchmarks.sets.sealed import SEALED

SETS = {s.name: s for s in (OUTSIDE, BLIND, SEALED)}
