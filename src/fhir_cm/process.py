"""Settings of the Python process the ``fhir-cm`` command (and each ``serve`` worker) runs in.

A push or a pull makes and drops many small containers per resource (JSON trees, models, rows);
few of them outlive the resource, but CPython's cycle collector runs a young-generation pass every
700 net container allocations, and every tenth of those passes a wider one over everything the
process holds — the store's cached cases included. Measured on a push of 400 cases, the collector
took a seventh of the push's CPU time. Collecting every 10,000 instead keeps that to under 1 %, for
a few megabytes more of garbage waiting at a time. Only the processes the package starts itself are
set this way: a program that imports the library keeps its own settings.

The helper processes the package starts (a large pull's check worker) are set up by
:func:`as_helper`: their parent ends them, and they end with it.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading

__all__ = ["YOUNG_COLLECTION_EVERY", "as_helper", "tune_collector"]

#: Net container allocations between two young-generation passes of the cycle collector (CPython's
#: default is 700; the older generations keep theirs: every tenth pass of the one below).
YOUNG_COLLECTION_EVERY = 10_000


def tune_collector() -> None:
    """Space the cycle collector's passes out for the allocation pattern of a sync (see above)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)


def as_helper() -> None:
    """Set up a helper process (the initializer of the pull's check worker): it ignores SIGINT and
    SIGTERM, and ends when its parent does.

    Ctrl-C reaches the terminal's whole process group, and a service manager may signal the whole
    group it started: a helper interrupted so printed a ``KeyboardInterrupt`` traceback, and its
    parent, finding it gone, went on checking in the pull. Its parent, stopping, ends it itself. A
    parent that could not (``kill -9``, the out-of-memory killer) left the helper waiting for work
    for ever, an orphan holding its memory and the parent's stderr: the helper now watches its
    parent's sentinel (a pipe the parent holds open, at its end once the parent is gone) and exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), name="parent-watch", daemon=True).start()


def _end_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns once the parent is gone
    os._exit(1)
