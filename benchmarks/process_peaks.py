"""The memory and CPU of a benchmark's own process and of the processes it starts (the pull's check
worker, multiprocessing's resource tracker), read from ``/proc`` (``bench_pull.py`` and its update mode)."""

from __future__ import annotations

import resource
import threading
from pathlib import Path

__all__ = ["ChildPeaks", "children_cpu", "current_rss_kb", "peak_rss_kb"]


def _status_kb(field: str, pid: int | str = "self") -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(f"{field}:"):
            return int(row.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the peak so far


def current_rss_kb() -> int:
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries that over an exec from the
    forked parent, so a spawned child would report the parent's (the server's) RSS as its peak."""
    return _status_kb("VmHWM")


class ChildPeaks:
    """The peak RSS (``VmHWM``) of each child process of this one, sampled every ``every`` seconds
    while in the ``with`` block: the pull's check worker is a process of its own (and starting it
    starts multiprocessing's resource tracker, another), and their memory is the pull's as much as
    the pull process's is. A child's ``VmHWM`` only grows, so the last sample
    before it ends misses at most ``every`` seconds of growth."""

    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self.peaks_kb: dict[int, int] = {}
        self.trackers: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ChildPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        """The children's peaks added up (as if they peaked at once: an upper bound)."""
        return sum(self.peaks_kb.values()) / 1024

    @property
    def tracker_mb(self) -> float:
        """The part of ``mb`` that is multiprocessing's resource tracker."""
        return sum(self.peaks_kb.get(pid, 0) for pid in self.trackers) / 1024

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            for pid in _children():
                try:
                    peak = _status_kb("VmHWM", pid)
                except OSError:  # ended meanwhile
                    continue
                self.peaks_kb[pid] = max(self.peaks_kb.get(pid, 0), peak)
                if pid not in self.trackers and b"resource_tracker" in _cmdline(pid):
                    self.trackers.add(pid)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children() -> set[int]:
    pids: set[int] = set()
    tasks = Path("/proc/self/task")
    for task in tasks.iterdir() if tasks.is_dir() else ():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def children_cpu() -> float:
    """CPU time of this process's children that have ended (the pull's check worker, once closed)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
