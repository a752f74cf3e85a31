"""What the benchmarks read of processes from Linux's ``/proc``, in one place: the memory of a
benchmark's own process and of the processes it starts (the pull's check worker, multiprocessing's
resource tracker), the CPU time of a server's processes (a FHIR server, ``fhir-cm serve`` and its
workers, PostgreSQL's), and of the whole machine, with what its host took (steal)."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "ChildPeaks",
    "MachineCpu",
    "children_cpu",
    "current_rss_kb",
    "machine_cpu",
    "peak_rss_kb",
    "postgres_cpu",
    "process_cpu",
    "process_tree_cpu",
]


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


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command's name (which may hold spaces and
    parentheses): ``[0]`` is the state, ``[1]`` the parent's pid, ``[11]``/``[12]`` user/system ticks."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far."""
    fields = _stat_fields(pid)
    return _seconds(int(fields[11]) + int(fields[12]))


def process_tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of a process and of each of its children (a server's workers), by pid; one
    that ends meanwhile is left out."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(_stat_fields(entry.name)[1]) == pid:
                    pids.append(int(entry.name))
    used = {}
    for each in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            used[each] = process_cpu(each)
    return used


class MachineCpu(NamedTuple):
    """Seconds of CPU so far, all cores."""

    used: float
    """By this machine's processes (user, nice, system, interrupts)."""
    stolen: float
    """Taken by the host (``steal``): time a virtual machine's cores waited for the physical ones."""


def machine_cpu() -> MachineCpu:
    """The whole machine's CPU so far, from the first line of ``/proc/stat``."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return MachineCpu(_seconds(user + nice + system + irq + softirq), _seconds(steal))


def postgres_cpu() -> float:
    """CPU time the local PostgreSQL server has used so far, every process of it: a HAPI on PostgreSQL
    works in them too, and nothing else uses the database server while a push is timed. The server's
    first process counts its own time and that of its children gone (backends, autovacuum workers:
    ``cutime``, ``cstime``); the children still running count theirs."""
    stats = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = path.read_text()
        except OSError:  # gone since listed
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
            stats[int(path.parent.name)] = text.rsplit(")", 1)[1].split()
    total = 0
    for fields in stats.values():
        if int(fields[1]) in stats:  # a child of the server: its own time
            total += int(fields[11]) + int(fields[12])
        else:  # the server's first process: its own time and its children's that have ended
            total += sum(int(f) for f in fields[11:15])
    return _seconds(total)
