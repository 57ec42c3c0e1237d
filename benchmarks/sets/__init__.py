"""Generated evaluation sets in the ArtiFact layout, made differently from the demo data and from each other.

Each module defines one set (`modeling.data.generated.GeneratedSet`); `modeling.data.generated.write_set` writes
any of them, and `python -m benchmarks.sets NAME` does so from the command line.
"""

from benchmarks.sets.blind import BLIND
from benchmarks.sets.hard_real import HARD_REAL, PROCESSED
from benchmarks.sets.hard_real2 import HARD_REAL2
from benchmarks.sets.hard_real2 import PROCESSED as PROCESSED2
from benchmarks.sets.hard_real3 import HARD_REAL3
from benchmarks.sets.hard_real3 import PROCESSED as PROCESSED3
from benchmarks.sets.learned import LEARNED
from benchmarks.sets.outside import OUTSIDE
from benchmarks.sets.probe import PROBE
from benchmarks.sets.sealed import SEALED

SETS = {s.name: s for s in (OUTSIDE, BLIND, SEALED, LEARNED, HARD_REAL, HARD_REAL2, HARD_REAL3, PROBE)}
# sources of a set that are evaluation-only: a run on the set never trains on them (`--holdout_generators`, which puts
# held-out sources, real or AI, only in the test split); a set not named here is trained on whole
HELD_OUT: dict[str, tuple[str, ...]] = {
    HARD_REAL.name: PROCESSED,
    HARD_REAL2.name: PROCESSED2,
    HARD_REAL3.name: PROCESSED3,
}
