"""The main job on embedded defaults: ``fhir-cm demo``."""

from __future__ import annotations

from pathlib import Path

from typing import Annotated

import typer

from ._app import EXIT_RETRY_LATER, app, fail, first_line, reported


@app.command("demo", short_help="The main job: walk synthetic cases through the cycle.")
def demo_command(
    fhir_base: Annotated[
        str | None,
        typer.Option(
            "--fhir-base",
            metavar="URL",
            help="Also sync to this FHIR server and read everything back (default: FHIR_CM_FHIR_BASE, else no server).",
        ),
    ] = None,
    cases: Annotated[
        int, typer.Option("--cases", metavar="N", help="How many synthetic cases to walk (at least 1).")
    ] = 5,
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="The folder for the demo's files (the FHIR export).")
    ] = Path("fhir-cm-demo"),
    today: Annotated[
        str | None,
        typer.Option(
            "--today",
            metavar="YYYY-MM-DD",
            help="Date the journeys as if today were this day (default: today): the same day gives the same output.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the summary as one JSON object on stdout (the readable one goes to stderr)."
        ),
    ] = False,
) -> None:
    """The main job in one command: walk a few synthetic cases through the whole case-management cycle.

    Identification, enrolment, assessment, plan and goals, referrals, care team, monitoring, the hospital → skilled nursing → home transition with its follow-up, evaluation and closure: each step is saved to the store (FHIR_CM_DATABASE_URL, default ./fhir-cm.db), which the API and the other commands read. The journeys are dated up to today, so the caseload shows recent contacts.

    It writes the cases' FHIR export into a folder of its own (./fhir-cm-demo, or --out), then prints on stdout what it did, the caseload, outcomes and transitions, where it wrote, and the commands that show the cases in the API; progress goes to stderr.

    With a FHIR server it pushes everything, pulls it back with the transitions tracker and checks the round trip. Safe to re-run: the same cases (fixed seed) are never walked or stored twice.
    """
    import datetime as dt

    from ..config import get_settings
    from ..demo import DemoServerUnavailable, render_summary, run_demo

    if cases < 1:
        raise fail(f"--cases must be at least 1 (got {cases})", code=2)
    try:
        day = dt.date.fromisoformat(today) if today is not None else None
    except ValueError:
        raise fail(f"--today must be a date, YYYY-MM-DD (got {today!r})", code=2) from None
    with reported(ValueError):
        settings = get_settings(fhir_base=fhir_base)
        try:
            summary = run_demo(
                settings, cases=cases, today=day, out_dir=out, progress=lambda line: typer.echo(line, err=True)
            )
        except DemoServerUnavailable as exc:  # unreachable, busy or failing for now: run it again later
            raise fail(first_line(exc), code=EXIT_RETRY_LATER) from None
    if as_json:
        typer.echo(render_summary(summary), err=True)
        typer.echo(summary.model_dump_json())
    else:
        typer.echo(render_summary(summary))
