"""Running workers at the same moment, in threads, without sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["run_together"]


def run_together(workers: int, work: Callable[[int, Callable[[], object]], None]) -> None:
    """Run ``work(n, go)`` in ``workers`` threads and wait for all; re-raise the first error.

    Each worker sets itself up (opens its own store: its own connections, as a process would),
    then calls ``go()``, which returns once every worker has got there, so they race for real.
    """
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n, barrier.wait)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            barrier.abort()  # nobody waits for a worker that will never arrive

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
