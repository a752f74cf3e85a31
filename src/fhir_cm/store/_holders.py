"""Who holds an outbox lease, and whether that process still lives.

A lease alone cannot tell a slow worker from a dead one: it only expires. So a claim also records
its holder — the host name, the process id and a *process token* (where the process's pids are
comparable and when it started) — and a push on the same host can look the holder up and take the
rows of a dead one over at once instead of waiting out the lease (a ``kill -9`` and an immediate
re-run then finishes the job).

Judging is deliberately conservative: a holder is ``dead`` only when this process can see for sure
that it is gone (same host, same boot, same pid namespace; no such pid, a zombie, or a pid reused by
a later process). Anything it cannot see — another host, another container sharing the host name,
a system without ``/proc`` where a pid might have been reused — is ``alive`` or ``unknown``, and
its rows are waited for until the lease ends: taking a live worker's rows would push a case twice
at once.

The token is ``<boot id>/<pid namespace>/<start time in clock ticks since boot>`` from ``/proc`` on
Linux (no dependency on psutil); elsewhere it is absent and only the pid is checked.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["HolderState", "LeaseHolder", "holder_state"]

_PROC = Path("/proc")


class HolderState(StrEnum):
    """What this process can tell about a lease holder."""

    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # another host or pid namespace, or nothing recorded: wait for the lease


class LeaseHolder(BaseModel):
    """The process holding a claim: ``host`` (host name), ``pid`` and its ``process`` token."""

    model_config = ConfigDict(frozen=True)

    host: str
    pid: int
    process: str | None = None

    @classmethod
    def current(cls) -> LeaseHolder:
        """This process. Computed each time: a forked child is another holder than its parent."""
        return cls.of(os.getpid())

    @classmethod
    def of(cls, pid: int) -> LeaseHolder:
        """The holder a process of this host with ``pid`` would record (for tests and tools)."""
        return cls(host=socket.gethostname(), pid=pid, process=_token(pid))

    @property
    def space(self) -> str | None:
        """Where the pid means something: boot id and pid namespace (None when not recorded)."""
        if not self.process or self.process.count("/") != 2:
            return None
        return self.process.rsplit("/", 1)[0]

    @property
    def started(self) -> str | None:
        """The process start time, in clock ticks since boot (None when not recorded)."""
        if not self.process or self.process.count("/") != 2:
            return None
        return self.process.rsplit("/", 1)[1]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


def holder_state(holder: LeaseHolder | None, me: LeaseHolder | None = None) -> HolderState:
    """Whether ``holder`` is alive, dead or beyond what ``me`` (this process by default) can see."""
    if holder is None:
        return HolderState.UNKNOWN
    me = me or LeaseHolder.current()
    if holder.host != me.host:
        return HolderState.UNKNOWN
    if holder.pid == me.pid and holder.process == me.process:
        return HolderState.ALIVE
    if holder.space is not None or me.space is not None:
        if holder.space != me.space:  # another boot or another container: its pids are not ours
            return HolderState.UNKNOWN
        stat = _stat(holder.pid)
        if stat is None:
            return HolderState.DEAD
        state, started = stat
        if state in ("Z", "X") or started != holder.started:
            return HolderState.DEAD  # a zombie (killed, not yet reaped), or the pid is another process's now
        return HolderState.ALIVE
    return _pid_exists(holder.pid)


def _pid_exists(pid: int) -> HolderState:
    """Without ``/proc``: only whether some process has that pid (a reused pid reads as alive)."""
    if sys.platform == "win32" or pid <= 0:
        return HolderState.UNKNOWN  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return HolderState.DEAD
    except PermissionError:
        return HolderState.ALIVE  # exists, owned by someone else
    except OSError:
        return HolderState.UNKNOWN
    return HolderState.ALIVE


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from ``/proc/<pid>/stat``, None if there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")".
    fields = text.rsplit(")", 1)[-1].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]  # field 3 (state) and field 22 (starttime)


@functools.cache
def _space() -> str | None:
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(_PROC / "self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot and "/" not in boot + namespace else None


def _token(pid: int) -> str | None:
    space, stat = _space(), _stat(pid)
    return f"{space}/{stat[1]}" if space is not None and stat is not None else None
