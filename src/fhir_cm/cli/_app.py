"""The ``fhir-cm`` application and what every command group shares: how errors leave a command
(:func:`reported`), late progress bars, the configured store.

Data goes to stdout, progress and summaries to stderr (unless ``--json`` asks for the summary), so
commands compose with pipes. Failures exit non-zero with a one-line reason, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TaskID

from .. import __version__

app = typer.Typer(
    name="fhir-cm",
    help="Case management over FHIR: map, store, sync and track transitions between care settings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: paragraphs rewrapped to the terminal, flags without a type, "[required]" marked.
    rich_markup_mode=None,
)


def fail(reason: str, code: int = 1) -> typer.Exit:
    """Print a one-line reason to stderr and return the exit to raise."""
    typer.echo(f"fhir-cm: error: {reason}", err=True)
    return typer.Exit(code)


def warn_unreadable(skipped: Sequence[UnreadableCase], what: str) -> None:
    """Say on stderr which stored cases this version cannot read were ``what`` (their ids only: the
    field names are `fhir-cm check`'s to tell), so a short answer is never taken for a whole one."""
    ids = ", ".join(u.case_id for u in skipped[:10]) + (", …" if len(skipped) > 10 else "")
    typer.echo(
        f"fhir-cm: warning: {len(skipped)} stored case(s) this version cannot read {what} ({ids}); "
        "`fhir-cm check` lists them",
        err=True,
    )


@contextmanager
def reported(*also: type[Exception], code: int = 1) -> Iterator[None]:
    """The one place where errors become a line and an exit code: fhir-cm's own errors
    (``FhirCmError``) and the other kinds named in ``also`` leave the command as ``fhir-cm: error:
    <first line of the message>`` on stderr and exit ``code`` — or ``EXIT_RETRY_LATER`` (75) when a
    server could not be reached, was busy or failed with a 5xx; anything else is a bug and shows."""
    from ..errors import FhirCmError
    from ..fhir import TransientError

    from ._signals import stopped_by

    kinds: tuple[type[Exception], ...] = (FhirCmError, *also)
    try:
        yield
    except kinds as exc:
        if stopped_by(exc):  # a stop a library wrapped (``_signals``): the command says it stopped
            raise KeyboardInterrupt from None
        if isinstance(exc, TransientError):  # unreachable, busy or failing for now: worth running again later
            raise fail(first_line(exc), code=EXIT_RETRY_LATER) from None
        raise fail(first_line(exc), code=code) from None


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its class name when it has none); a FHIR error's
    with what happened when no HTTP status says it (``FhirError.said``)."""
    from ..fhir import FhirError

    if isinstance(exc, FhirError):
        return exc.said()
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def instant(text: str | None) -> str | None:
    """An ``--since``-like option as a FHIR instant: ``2024-05-01``, ``2024-05-01T10:00:00Z`` or with
    an offset (a time without one is UTC). Checked before anything is asked of a server, so a typo
    fails naming the option instead of after a round trip or deep in a job."""
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an instant (e.g. 2024-05-01 or 2024-05-01T10:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.isoformat().replace("+00:00", "Z")


def day(text: str | None) -> dt.date | None:
    """A day option (``--today``, ``--on``) read as the API reads a day: ``YYYY-MM-DD`` and a day of
    the calendar, nothing else (no month, no timestamp). A typo is a usage error naming the option."""
    from pydantic import TypeAdapter, ValidationError

    from ..domain import Day

    if text is None:
        return None
    try:
        return TypeAdapter(Day).validate_python(text.strip())
    except ValidationError:
        raise typer.BadParameter(f"{text!r} is not a day (YYYY-MM-DD)") from None


def refused(exc: ValidationError, options: Mapping[str, str]) -> typer.Exit:
    """A usage error (exit 2) for the first value of a command's ask the model refused, named by its
    option (``options``: field → option) in the model's words; an id's pattern in plain words."""
    error = exc.errors()[0]
    option = options.get(str(error["loc"][0]), str(error["loc"][0]))
    if error["type"] == "string_pattern_mismatch":
        return fail(f"{option}: not an id (1-64 letters, digits, '-' and '.')", code=2)
    return fail(f"{option}: {error['msg'].removeprefix('Value error, ')}", code=2)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Case management over FHIR."""


class LateProgress:
    """A progress bar on stderr that appears only once the work has taken ``after`` seconds.

    Quick runs stay silent, and nothing is drawn when stderr is not a terminal (logs, pipes, tests).
    The total may be told late (:meth:`start`), once the work knows it.
    """

    def __init__(self, label: str, total: int = 0, *, enabled: bool = True, after: float = 1.0) -> None:
        self.label, self.total, self.enabled, self.after = label, total, enabled, after
        self.console = Console(stderr=True)
        self.started, self.done = time.monotonic(), 0
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self, total: int) -> None:
        self.total, self.started = total, time.monotonic()

    def advance(self) -> None:
        self.done += 1
        if (
            self.bar is None
            and self.enabled
            and self.console.is_terminal
            and time.monotonic() - self.started > self.after
        ):
            self.bar = Progress(
                *Progress.get_default_columns(), MofNCompleteColumn(), console=self.console, transient=True
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=self.done)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextmanager
def late_progress(total: int, label: str, *, enabled: bool = True, after: float = 1.0) -> Iterator[Callable[[], None]]:
    """A :class:`LateProgress` for ``total`` steps, stopped on the way out; yields its ``advance``."""
    progress = LateProgress(label, total, enabled=enabled, after=after)
    try:
        yield progress.advance
    finally:
        progress.stop()


if TYPE_CHECKING:
    from pydantic import ValidationError

    from ..store import Store, UnreadableCase


def open_configured_store() -> Store:
    """The store ``FHIR_CM_DATABASE_URL`` names, or a one-line failure."""
    from ..config import get_settings
    from ..store import open_store

    with reported():
        return open_store(get_settings().database_url)


# --- push and worker (fhir_cm.sync) ----------------------------------------------------------------

#: Exit code when nothing failed for good but some cases wait for a retry (EX_TEMPFAIL).
EXIT_RETRY_LATER = 75
