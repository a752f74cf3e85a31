"""SIGTERM stops a command as Ctrl-C does.

A service manager (``systemctl stop``) or a container runtime (a pod's termination) stops a process
with SIGTERM, whose default action ends it on the spot: a pull's scratch file stayed in the temporary
directory, its check worker ran on as an orphan, and a push's claims stayed leased, so another worker
could take them only once their leases ran out. Handled here as SIGINT is, the command is stopped at
its next ``await`` (``asyncio.run`` cancels it) or at once outside the event loop, and what it holds
is given back on the way out; it then says ``fhir-cm: terminated`` and exits 143 (128 + 15, as a
shell reports a process SIGTERM ended), where Ctrl-C says ``fhir-cm: interrupted`` and exits 130.

``fhir-cm worker`` (and ``serve``) install handlers of their own for both signals while they run.

The ``KeyboardInterrupt`` lands wherever the main thread is, inside a library too, and some wrap it
in an error of their own: pydantic's serialiser (an enum's value is read in Python as it writes a
case) in a ``PydanticSerializationError`` that only names it, orjson's ``default`` in a ``TypeError``
it causes. ``stopped_by`` tells such an error from a failure, so the command still ends as stopped.
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["EXIT_TERMINATED", "install", "stopped_by", "terminated"]

#: The exit status of a command stopped by SIGTERM.
EXIT_TERMINATED = 128 + signal.SIGTERM

_terminated = False


def terminated() -> bool:
    """Whether this process was told to stop by SIGTERM (its interruption is that, not Ctrl-C)."""
    return _terminated


def stopped_by(exc: BaseException) -> bool:
    """Whether ``exc`` ended the command because a stop signal came: a ``KeyboardInterrupt`` or an
    error wrapping one (see the module docstring), or any error once SIGTERM was received (what it
    interrupted may have failed in its own way on the way out)."""
    from pydantic_core import PydanticSerializationError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KeyboardInterrupt):
            return True
        if isinstance(current, PydanticSerializationError) and "KeyboardInterrupt" in str(current):
            return True  # pydantic keeps only the interrupt's name, in its message
        current = current.__cause__ or current.__context__
    return _terminated


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminated
    _terminated = True
    # Whatever SIGINT does now: inside ``asyncio.run``, cancel the running command (a second signal
    # stops it at once); elsewhere, raise KeyboardInterrupt.
    on_sigint = signal.getsignal(signal.SIGINT)
    if callable(on_sigint):
        on_sigint(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt  # SIGINT ignored where it cannot be blocked: SIGTERM still stops the command


def install() -> None:
    """Have SIGTERM stop this process's command as Ctrl-C does (see the module docstring).

    A background job of a script (``fhir-cm pull &``, no job control) starts with SIGINT ignored,
    and ``asyncio.run`` then leaves SIGINT alone: SIGTERM raised ``KeyboardInterrupt`` wherever the
    event loop was, in the pull's read-ahead task say, whose traceback was printed as it ended. There
    SIGINT gets Python's handler — for ``asyncio.run`` to put its own over, which SIGTERM calls —
    and is blocked, so that it reaches the command no more than when it was ignored.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
