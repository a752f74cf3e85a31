"""Commands over case files and the store: generate, map, import, export, check."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import json
import sys
from typing import IO, Annotated

import typer

from .. import decimals
from ._app import app, fail, late_progress, open_configured_store, reported, warn_unreadable


@app.command("generate", short_help="Write synthetic case journeys as JSON lines.")
def generate_command(
    cases: Annotated[
        int | None,
        typer.Option("--cases", metavar="N", help="How many case journeys to write (at least 1).  [required]"),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Random seed: the same seed writes the same cases.")
    ] = 1,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write to this file instead of stdout.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --out: print the run summary as JSON on stdout.")
    ] = False,
) -> None:
    """Write synthetic case journeys as JSON lines (one case, the domain model's JSON, per line).

    A file takes its new content only once whole (``_output``): stopped halfway, it is as it was."""
    from ..synthetic import GenerationSummary, generate_cases

    if cases is None:
        raise fail("--cases N is required (how many case journeys to write)", code=2)
    if cases < 1:
        raise fail(f"--cases must be at least 1 (got {cases})", code=2)
    if as_json and out is None:
        raise fail("--json needs --out: without it, stdout carries the cases", code=2)
    summary = GenerationSummary(seed=seed)
    try:
        with _output(out) as sink, late_progress(cases, "generating cases", enabled=out is not None) as advance:
            for case in generate_cases(cases, seed):
                sink.write(case.model_dump_json().encode())
                sink.write(b"\n")
                summary.add(case)
                advance()
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise typer.Exit(0) from None
    except OSError as exc:
        raise fail(f"cannot write {out or 'stdout'}: {exc.strerror or exc}") from None
    if out is not None:
        if as_json:
            typer.echo(json.dumps({**summary.model_dump(), "out": str(out)}))
        else:
            typer.echo(f"fhir-cm: wrote {summary.line()} to {out}", err=True)


@app.command("map", short_help="Map cases to FHIR transaction Bundles (JSON lines).")
def map_command(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="Case JSON: one object, an array, or JSON lines; '-' reads stdin.")
    ],
    fhir_version: Annotated[
        str | None,
        typer.Option(
            "--fhir-version", metavar="[R4|R5]", help="FHIR version (default: FHIR_CM_FHIR_VERSION, else R4)."
        ),
    ] = None,
) -> None:
    """Map cases to FHIR: one transaction Bundle per case on stdout, as JSON lines."""

    from ..config import get_settings
    from ..jobs import offline_fhir_version, read_cases
    from ..mapping import case_to_bundle

    settings = get_settings()
    with reported(code=2):
        version = offline_fhir_version(settings, fhir_version)
    with reported():
        cases = read_cases(file)
    try:
        with reported(), late_progress(len(cases), "mapping cases") as advance:
            for case in cases:
                sys.stdout.buffer.write(
                    decimals.dumps(case_to_bundle(case, version, settings.identifier_system)) + b"\n"
                )
                advance()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


@app.command("import", short_help="Import FHIR resources, Bundles or cases.")
def import_command(
    files: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE...",
            help="FHIR JSON (resources, Bundles, arrays or JSON lines; R4 or R5) or case JSON lines from `fhir-cm generate`; '-' reads stdin.",
        ),
    ],
    fhir_version: Annotated[
        str,
        typer.Option(
            "--fhir-version", metavar="[auto|R4|R5]", help="auto decides per resource from the R4 and R5 models."
        ),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
) -> None:
    """Import FHIR resources or Bundles (and generated cases) into the store, grouped into cases.

    Every resource is kept exactly as it came, with its FHIR version, so `fhir-cm export` gives it
    back; what the case model understands is read into the case. A file that is not JSON, not FHIR
    R4/R5, nor cases stops the import before anything is written. Re-importing a file changes nothing;
    a changed file applies what it changed and keeps edits made since.
    """
    from ..config import get_settings
    from ..interchange import import_files
    from ..store import open_store
    from ._audit import audited

    if fhir_version.upper() not in ("AUTO", "R4", "R5"):
        raise fail(f"--fhir-version must be auto, R4 or R5 (got {fhir_version!r})", code=2)
    settings = get_settings()
    with reported(), open_store(settings.database_url) as store:
        report = import_files(
            store,
            files,
            settings,
            fhir_version=fhir_version.lower() if fhir_version.upper() == "AUTO" else fhir_version.upper(),
            then=audited("import", lambda written: written),
        )
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        typer.echo(f"fhir-cm: {report.line()}", err=True)


@contextmanager
def _output(out: Path | None) -> Iterator[IO[bytes]]:
    """Where an export (or generate) streams to. A file is written beside itself and takes its name only once
    whole, so a run stopped halfway leaves the previous file (or none), never a truncated one;
    stdout is written as it goes (a reader sees a short document and the non-zero exit)."""
    if out is None:
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    part = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with part.open("wb") as file:
            yield file
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)


@app.command("export", short_help="Export cases as one FHIR collection Bundle.")
def export_command(
    case: Annotated[
        str | None, typer.Option("--case", metavar="ID", help="Only this case (default: every case in the store).")
    ] = None,
    fhir_version: Annotated[
        str | None,
        typer.Option(
            "--fhir-version", metavar="[R4|R5]", help="FHIR version (default: each resource in the version it came in)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Export cases as one FHIR collection Bundle: imported resources come back as they came, plus what changed."""
    from ..config import get_settings
    from ..interchange import write_export
    from ..store import UnreadableCase, open_store

    if fhir_version is not None and fhir_version.upper() not in ("R4", "R5"):
        raise fail(f"--fhir-version must be R4 or R5 (got {fhir_version!r})", code=2)
    settings = get_settings()
    skipped: list[UnreadableCase] = []
    try:
        with reported(), open_store(settings.database_url) as store, _output(out) as sink:
            count = write_export(store, settings, sink.write, case_id=case, fhir_version=fhir_version, skipped=skipped)
            sink.write(b"\n")
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except OSError as exc:
        raise fail(f"cannot write {out or 'stdout'}: {exc.strerror or exc}") from None
    if out is not None:
        typer.echo(f"fhir-cm: exported {count} resources to {out}", err=True)
    if skipped:  # the others are written; the export is short of these, which the exit code tells
        warn_unreadable(skipped, "left out of the export")
        raise typer.Exit(1)


@app.command("check", short_help="Report stored cases that break a domain rule.")
def check_command(
    as_json: Annotated[
        bool,
        typer.Option("--json", help="JSON lines: one object per rule broken (case_id, rule, field, entity, message)."),
    ] = False,
) -> None:
    """Report the stored cases that break a rule of what can be true, and count what is quarantined.

    The rules: nothing recorded as done (a contact, a stay, a status change) dated after today
    beyond FHIR_CM_FUTURE_TOLERANCE_DAYS; no date before FHIR_CM_EARLIEST_DATE or more than
    FHIR_CM_HORIZON_YEARS ahead; no two overlapping inpatient stays; no open case with an end
    date. New data is held to them where it comes in (the API refuses it, a pull quarantines it);
    data stored before, or imported as it came, is kept and listed here for a person to correct.
    Exits 1 when a case breaks a rule, 0 otherwise.
    """
    import datetime as dt

    from ..check import check_store
    from ..config import get_settings

    settings = get_settings()
    with open_configured_store() as store:
        report = check_store(store, settings.plausibility(dt.date.today()))
    for b in report.breaches:
        if as_json:
            typer.echo(b.model_dump_json())
        else:
            typer.echo(f"case {b.case_id}  {b.field}: {b.message}")
    typer.echo(f"fhir-cm: {report.line()}", err=True)
    if report.breaches:
        raise typer.Exit(1)
