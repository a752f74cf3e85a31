"""The ``fhir-cm`` command line.

Data goes to stdout, progress and summaries to stderr (unless ``--json`` asks for the summary), so
commands compose with pipes. Failures exit non-zero with a one-line reason, never a traceback.

One module per command group; each registers its commands on :data:`app`. The commands are thin:
what they run lives in :mod:`fhir_cm.jobs` (and below), shared with the API and the worker.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from . import _signals
from . import _caseload, _cases, _demo, _identify, _placement, _quarantine, _serve, _subscriptions, _sync, _worklist  # noqa: F401  (each registers its commands on app)
from ..errors import FhirCmError
from ..process import tune_collector
from ._app import EXIT_RETRY_LATER, app, fail, first_line, reported

__all__ = ["EXIT_RETRY_LATER", "app", "fail", "main", "reported"]


def main() -> None:
    """Console-script entry point."""
    tune_collector()
    _signals.install()
    try:
        app()
    except KeyboardInterrupt:
        _stopped()
    except SystemExit as exc:
        # Typer turns Ctrl-C inside a command into a silent exit 130 (``Exit(130) from`` the
        # KeyboardInterrupt): say it, as for one met outside a command, or a stopped push or demo
        # ends with no word on why.
        if isinstance(exc.__context__, typer.Exit) and isinstance(exc.__context__.__cause__, KeyboardInterrupt):
            _stopped()
        # The reader of stdout went away (``| head``): click exits 1 for it, which failed a script's
        # pipeline (``set -o pipefail``) over output nobody wanted; stop quietly, as generate, map and
        # export do.
        if isinstance(exc.__context__, BrokenPipeError):
            sys.exit(0)
        raise
    except Exception as exc:
        if _signals.stopped_by(exc):  # a stop a library wrapped in an error of its own (``_signals``)
            _stopped()
        if not isinstance(exc, FhirCmError):
            raise
        # one met before a command's own ``reported`` (its settings, say)
        typer.echo(f"fhir-cm: error: {first_line(exc)}", err=True)
        sys.exit(1)


def _stopped() -> NoReturn:
    """Leave a command stopped by Ctrl-C (130) or SIGTERM (143, ``_signals``) with one line saying which."""
    if _signals.terminated():
        typer.echo("fhir-cm: terminated", err=True)
        sys.exit(_signals.EXIT_TERMINATED)
    typer.echo("fhir-cm: interrupted", err=True)
    sys.exit(130)
