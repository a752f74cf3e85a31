"""Identification: screen a server's population for case-management candidates, and enrol them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import decimals
from ._app import app, fail, instant, open_configured_store, reported


def _line(candidate: Any) -> str:
    reasons = "; ".join(str(r["text"]) for r in candidate.reasons)
    enrolled = f"  [case {candidate.case_id}]" if candidate.case_id else ""
    return f"{candidate.patient_id:<40} {candidate.score:>5}  {reasons}{enrolled}"


@app.command("identify", short_help="Screen a population for case-management candidates.")
def identify_command(
    fhir_base: Annotated[
        str | None,
        typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE)."),
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", metavar="ID", help="Screen the members of this Group only.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="INSTANT",
            parser=instant,
            help="Read only what changed after this (default: the last run's time).",
        ),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Read everything again, not only what changed.")] = False,
    ndjson: Annotated[
        list[Path] | None,
        typer.Option(
            "--ndjson",
            metavar="PATH",
            help="Screen an export of the server delivered as NDJSON files (a file or a directory; repeat).",
        ),
    ] = None,
    search: Annotated[
        bool, typer.Option("--search", help="Read by paged searches even where the server offers $export.")
    ] = False,
    enrol_top: Annotated[
        int,
        typer.Option(
            "--enrol", metavar="N", min=0, help="Enrol the N best candidates as referred cases, queued for push."
        ),
    ] = 0,
    programme: Annotated[
        str, typer.Option("--programme", metavar="PROGRAMME", help="The programme enrolled cases join.")
    ] = "health-care",
    top: Annotated[int, typer.Option("--top", metavar="N", min=0, help="How many candidates to list.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="The run, candidates and enrolment as one JSON object.")
    ] = False,
) -> None:
    """Read the population's Patients, Encounters, Conditions and social-needs screens (Bulk Data $export,
    or paged searches where the server offers none), apply the eligibility rules of
    mappings/eligibility-rules.json and list the candidates by score with their reasons. A second run
    reads only what changed since the first."""
    from ..config import get_settings
    from ..domain import ProgrammeType
    from ..identify import GroupNotListed
    from ..jobs import enrol, require_fhir_base, run_identify, run_identify_files
    from ._audit import audited
    from ..store import list_candidates

    try:
        chosen_programme = ProgrammeType(programme)
    except ValueError:
        raise fail(
            f"unknown programme {programme!r}; one of: {', '.join(p.value for p in ProgrammeType)}", code=2
        ) from None
    if since is not None and full:
        raise fail("--since and --full cannot go together: --full reads everything, --since what changed", code=2)
    if ndjson and (group is not None or since is not None or full or search):
        raise fail("--ndjson reads the files given: --group, --since, --full and --search do not apply", code=2)
    if group is not None:
        from ..fhir import check_id

        try:
            check_id(group)
        except ValueError:
            raise fail(f"--group takes a Group's id (1-64 of A-Z a-z 0-9 - .), not {group[:80]!r}", code=2) from None
    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):
        server = require_fhir_base(settings)

    def progress(line: str) -> None:
        if not as_json:
            typer.echo(f"  {line}", err=True)

    with open_configured_store() as store, reported():
        if ndjson:
            report = asyncio.run(run_identify_files(store, settings, ndjson, on_progress=progress))
        else:
            try:
                report = asyncio.run(
                    run_identify(
                        store, settings, group=group, since=since, full=full, use_export=False if search else None,
                        on_progress=progress,
                    )
                )  # fmt: skip
            except GroupNotListed as exc:  # the Group given cannot be ranked: how it was called, as a bad id
                raise fail(str(exc), code=2) from None
        enrolled = (
            enrol(
                store,
                settings,
                top=enrol_top,
                programme=chosen_programme,
                then=audited("enrol", lambda report: [e.case_id for e in report.enrolled]),
                among=report.members,
            )
            if enrol_top
            else None
        )
        with store.session(read_only=True) as s:
            # A Group's run lists (and enrols) the Group's candidates: the server's list holds others'.
            candidates = list_candidates(s, server, limit=top, among=report.members)
    if as_json:
        payload = {
            "run": report.model_dump(mode="json"),
            "candidates": [c.model_dump(mode="json") for c in candidates],
            "enrolled": enrolled.model_dump(mode="json") if enrolled else None,
        }
        typer.echo(decimals.dumps(payload).decode())
        return
    read = ", ".join(f"{n} {t}" for t, n in sorted(report.read.items())) or "nothing"
    since_text = f" changed since {report.since}" if report.since else ""
    if report.added:
        since_text += f" (and whole: {report.added} patient(s) the Groups list since their last run)"
    within = f" and the Groups it lists: {', '.join(report.groups[1:])}" if report.groups and report.groups[1:] else ""
    typer.echo(
        f"read {read}{since_text} by {report.source} ({report.scope}{within}); ranked {report.patients} patients: "
        f"{report.candidates} candidates, {report.excluded_open_case} more already in an open case",
        err=True,
    )
    for candidate in candidates:
        typer.echo(_line(candidate))
    if enrolled is not None:
        for e in enrolled.enrolled:
            typer.echo(f"enrolled patient {e.patient_id} as case {e.case_id} (referred)", err=True)
        for patient, why in enrolled.skipped.items():
            typer.echo(f"not enrolled: patient {patient}: {why}", err=True)
