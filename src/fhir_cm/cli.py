"""The ``fhir-cm`` command line.

Data goes to stdout, progress and summaries to stderr (unless ``--json`` asks for the summary), so
commands compose with pipes. Failures exit non-zero with a one-line reason, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from . import __version__

app = typer.Typer(
    name="fhir-cm",
    help="Case management over FHIR: map, store, sync and track transitions between care settings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def fail(reason: str, code: int = 1) -> typer.Exit:
    """Print a one-line reason to stderr and return the exit to raise."""
    typer.echo(f"fhir-cm: error: {reason}", err=True)
    return typer.Exit(code)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("fhir-cm: interrupted", err=True)
        sys.exit(130)
