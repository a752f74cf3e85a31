"""Settings of the Python process the ``fhir-cm`` command (and each ``serve`` worker) runs in.

A push or a pull makes and drops many small containers per resource (JSON trees, models, rows);
few of them outlive the resource, but CPython's cycle collector runs a young-generation pass every
700 net container allocations, and every tenth of those passes a wider one over everything the
process holds — the store's cached cases included. Measured on a push of 400 cases, the collector
took a seventh of the push's CPU time. Collecting every 10,000 instead keeps that to under 1 %, for
a few megabytes more of garbage waiting at a time. Only the processes the package starts itself are
set this way: a program that imports the library keeps its own settings.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_COLLECTION_EVERY", "tune_collector"]

#: Net container allocations between two young-generation passes of the cycle collector (CPython's
#: default is 700; the older generations keep theirs: every tenth pass of the one below).
YOUNG_COLLECTION_EVERY = 10_000


def tune_collector() -> None:
    """Space the cycle collector's passes out for the allocation pattern of a sync (see above)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)
