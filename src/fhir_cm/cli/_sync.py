"""Commands that talk to a FHIR server: capabilities, push, worker, pull, transitions, conflicts."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ._app import (
    EXIT_RETRY_LATER,
    LateProgress,
    app,
    fail,
    instant,
    open_configured_store,
    reported,
    warn_unreadable,
)


@app.command("capabilities", short_help="What a FHIR server supports for case management.")
def capabilities_command(
    fhir_base: str | None = typer.Option(
        None, "--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the case-management view as one JSON object."),
) -> None:
    """Show what a FHIR server supports for case management (reads its /metadata)."""
    from ..config import get_settings
    from ..fhir import sync_client_from_settings
    from ..jobs import require_fhir_base

    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):  # how it was called, as for push, pull and identify
        require_fhir_base(settings)
    with reported(ValueError, OSError):
        with sync_client_from_settings(settings) as client:
            view = client.capabilities().case_management_view()
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
        return
    typer.echo(
        f"FHIR {view.fhir_version} ({view.release or 'unsupported release'})"
        f" — {view.software or 'unknown software'} {view.software_version or ''}".rstrip()
    )
    # HAPI 8 lists transaction alone and serves batches too: the client sends them (fhir/_bundles.py).
    batch = "yes" if view.batch else "not listed (sent, as transactions are)" if view.transaction else "no"
    typer.echo(
        f"transaction: {'yes' if view.transaction else 'no'}    batch: {batch}"
        f"    patch formats: {', '.join(view.patch_formats) or '-'}"
    )
    for row in view.types:
        if not row.declared:
            typer.echo(f"{row.type:<15} not declared")
            continue
        typer.echo(f"{row.type:<15} {' '.join(row.interactions) or '(interactions not declared)'}")
        typer.echo(f"{'':<15} search: {', '.join(row.search_params) or '(none declared)'}")
        if row.versioning != "versioned-update":
            typer.echo(
                f"{'':<15} versioning: {row.versioning or '(not declared)'}: If-Match may be ignored;"
                " push re-reads each copy before updating it"
            )


@app.command("push", short_help="Send cases to a FHIR server; safe to re-run.")
def push_command(
    file: Annotated[
        str | None,
        typer.Argument(metavar="FILE", help="Case JSON/JSONL (as `fhir-cm generate` writes); '-' reads stdin."),
    ] = None,
    all_pending: Annotated[
        bool,
        typer.Option(
            "--all", help="Push every pending outbox row, and queue every case not yet pushed to this server."
        ),
    ] = False,
    fhir_base: Annotated[
        str | None,
        typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", min=1, metavar="N", help="Cases pushed at once (default: FHIR_CM_PUSH_CONCURRENCY, 4)."
        ),
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Do not wait for cases another live worker is pushing: report them at once."),
    ] = False,
) -> None:
    """Send cases to a FHIR server: safe to re-run; prints counts created/updated/unchanged/failed
    and how many of the cases asked for (the FILE's, or every queued one with --all) are pushed.

    Cases left claimed by a push of this host that died (kill -9) are taken over at once. Cases
    another live worker is pushing are waited for, up to the end of its lease (not with --no-wait),
    then reported with the worker and the time. Exits 1 when a case failed for good (a conflict, a
    refused resource), 75 when some are not pushed yet (held by another worker, or waiting for a
    retry: the server was unavailable), 0 when every case asked for is pushed.
    """
    import asyncio

    from ..config import get_settings
    from ..domain import Case
    from ..fhir import TransientError
    from ..jobs import read_cases, require_fhir_base, run_push
    from ..store import open_store

    if (file is None) == (not all_pending):
        raise fail("give a FILE of cases or --all (not both)", code=2)
    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):
        require_fhir_base(settings)
    cases: list[Case] = []
    if file is not None:
        with reported():
            cases = read_cases(file)

    def waiting(held: list[Any], until: Any) -> None:
        typer.echo(
            f"fhir-cm: waiting until {until.isoformat(timespec='seconds')} for {len(held)} case(s) "
            f"another worker is pushing ({', '.join(sorted({str(i.claimed_by) for i in held}))})",
            err=True,
        )

    progress = LateProgress("pushing cases")

    async def run() -> Any:
        with open_store(settings.database_url) as store:
            return await run_push(
                store,
                settings,
                cases=cases,
                everything_pending=all_pending,
                wait=not no_wait,
                concurrency=concurrency,
                on_wait=waiting,
                on_start=progress.start,
                on_case=lambda _id, _ok: progress.advance(),
            )

    try:
        with reported(ValueError):
            try:
                outcome = asyncio.run(run())
            except TransientError as exc:  # before any case: the server unavailable, the outbox as it was
                raise fail(f"{exc}; the outbox keeps the cases: run it again later", code=EXIT_RETRY_LATER) from None
    finally:
        progress.stop()
    report, standing = outcome.report, outcome.standing
    for warning in report.warnings:
        said = "took a {} with a warning" if warning.taken else "refused the {} of the writes it took"
        typer.echo(
            f"fhir-cm: case {warning.case_id}: the server {said.format(warning.resource_type)}: {warning.server.text}",
            err=True,
        )
    for failure in report.failures:
        later = "" if failure.permanent else " (will retry)"
        typer.echo(f"fhir-cm: case {failure.case_id} failed{later}: {failure.reason}", err=True)
    told = {f.case_id for f in report.failures}
    for line in standing.held_lines():
        typer.echo(f"fhir-cm: {line}", err=True)
    for missing in standing.not_pushed:
        if missing.state != "held" and missing.case_id not in told:
            typer.echo(f"fhir-cm: case {missing.case_id} not pushed: {missing.reason}", err=True)
    if as_json:
        typer.echo(json.dumps(outcome.summary()))
    else:
        typer.echo(f"fhir-cm: pushed {report.line()}", err=True)
    typer.echo(f"fhir-cm: {standing.line()}", err=True)
    if outcome.verdict == "failed":
        raise typer.Exit(1)
    if outcome.verdict == "later":
        raise typer.Exit(EXIT_RETRY_LATER)


@app.command("worker", short_help="Push and pull continuously (one or several workers).")
def worker_command(
    fhir_base: Annotated[
        str | None,
        typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE)."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.0, metavar="SECONDS", help="Seconds between rounds.")
    ] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Run one round and exit.")] = False,
) -> None:
    """Push the outbox (and pull, where available) continuously; several workers may share a PostgreSQL store."""
    import asyncio
    import signal

    from ..config import get_settings
    from ..jobs import require_fhir_base, run_sync_worker
    from ..store import open_store

    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):
        require_fhir_base(settings)

    def show(report: Any) -> None:
        if report.cases:
            typer.echo(f"fhir-cm: worker pushed {report.line()}", err=True)

    told: list[signal.Signals] = []  # the signals that stopped the worker, said as it exits

    async def run() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()

        def stopping(signum: signal.Signals) -> None:
            # The first signal lets the cases in flight finish, which a server that does not answer
            # makes last its timeouts and retries; a second one stops the worker at once, as a
            # second Ctrl-C does elsewhere (the push gives its claims back).
            told.append(signum)
            if stop.is_set() and main is not None:
                main.cancel()
                return
            typer.echo(
                "fhir-cm: worker stopping: finishing the cases in flight (signal again to stop at once)", err=True
            )
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping, signum)
        with open_store(settings.database_url) as store:
            return await run_sync_worker(store, settings, interval=interval, once=once, stop=stop, on_round=show)

    try:
        with reported(ValueError):
            report = asyncio.run(run())
    except asyncio.CancelledError:  # a second signal
        typer.echo(f"fhir-cm: worker stopped at once ({told[-1].name})", err=True)
        raise typer.Exit(128 + told[-1]) from None
    if told:  # exit 0: a worker stopped by its service manager ended its work as asked
        typer.echo(f"fhir-cm: worker stopped ({told[0].name})", err=True)
    if once and report.permanent_failures:
        raise typer.Exit(1)


@app.command("pull", short_help="Read what changed on a FHIR server into the store.")
def pull_command(
    fhir_base: Annotated[
        str | None,
        typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="INSTANT",
            parser=instant,
            help="Pull changes after this instant (e.g. 2024-05-01T00:00:00Z) instead of the stored watermarks.",
        ),
    ] = None,
    patient: Annotated[
        str | None,
        typer.Option(
            "--patient",
            metavar="ID",
            help=(
                "Pull everything of the case types for this Patient id (watermarks untouched), and for"
                " the record the hospital merged it into, if it did."
            ),
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
) -> None:
    """Read case resources changed on a server into the store, watch the Encounters of open cases'
    patients (whoever wrote them), then record the transitions of the cases touched.

    The watch asks for the Encounters changed since its own watermark, for many patients per search
    where the server allows it; a case first seen open gets its patient's whole Encounter history
    read once. A hospital discharge gets a follow-up (a ServiceRequest and Task due in 7 days).

    Types the server's CapabilityStatement leaves out are still asked for (some servers serve Goal
    and CareTeam without declaring them); search parameters it does not declare are not sent, and
    results are filtered here. A resource that does not read as case data, or would make its case
    break a rule of what can be true (a contact in the future, overlapping inpatient stays), is
    quarantined with the reason, and the pull goes on.
    """
    import asyncio

    from ..config import get_settings
    from ..domain import say_day
    from ..jobs import require_fhir_base, run_pull
    from ..store import open_store

    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):
        require_fhir_base(settings)

    async def run() -> Any:
        with open_store(settings.database_url) as store:
            return await run_pull(store, settings, since=since, patient=patient)

    with reported(ValueError):
        report = asyncio.run(run())
    p, t, w = report.pull, report.transitions, report.watch
    for rtype, why in p.skipped_types.items():
        typer.echo(f"fhir-cm: {rtype} not pulled: {why}", err=True)
    if p.merged_into is not None:
        typer.echo(
            f"fhir-cm: Patient/{patient} was merged into Patient/{p.merged_into}: pulled that record too", err=True
        )
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        typer.echo(
            f"fhir-cm: pulled {p.fetched} resources: {p.new_cases} new cases, {p.updated_cases} updated, "
            f"{p.unchanged} unchanged, {p.quarantine_text()}, {p.conflicts} conflicts; "
            f"{t.new_transitions} new transitions ({t.readmissions} readmissions)",
            err=True,
        )
        if w is not None:
            typer.echo(
                f"fhir-cm: watched the Encounters of {w.patients} patients of open cases: {w.encounters} changed "
                f"(cases touched: {len(w.touched)}; histories read in full: {len(w.seeded)}); "
                f"{t.follow_ups_added} follow-ups asked for",
                err=True,
            )
        for plan in report.transition_plans:
            day = say_day(plan.follow_up_due, plan.follow_up_due_as_written) if plan.follow_up_due else None
            due = f"follow-up due {day}" if day else "no follow-up planned yet"
            discharged = say_day(plan.discharged_on, plan.discharged_on_as_written)
            typer.echo(
                f"fhir-cm: transition plan needed: case {plan.case_id}, discharged {discharged} "
                f"({plan.from_setting} → {plan.to_setting}); {due}",
                err=True,
            )


@app.command("transitions", short_help="List the moves between care settings; their hand-off documents.")
def transitions_command(
    case: Annotated[str | None, typer.Option("--case", metavar="ID", help="Only this case's transitions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: one object per transition.")] = False,
    document: Annotated[
        bool,
        typer.Option(
            "--document",
            help="Print the case's transfer summaries (PACIO document Bundles, one JSON per line); needs --case.",
        ),
    ] = False,
    move: Annotated[
        int | None,
        typer.Option(
            "--move",
            metavar="N",
            min=1,
            help="Only the N-th move out of a hospital, SNF or rehabilitation stay (with --document).",
        ),
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Also write them to the FHIR server, each with a DocumentReference (with --document)."
        ),
    ] = False,
    fhir_base: Annotated[
        str | None,
        typer.Option("--fhir-base", metavar="URL", help="FHIR server for --write (default: FHIR_CM_FHIR_BASE)."),
    ] = None,
    fhir_version: Annotated[
        str | None,
        typer.Option(
            "--fhir-version",
            metavar="[R4|R5]",
            help="FHIR version of the printed documents (default: FHIR_CM_FHIR_VERSION, R4).",
        ),
    ] = None,
) -> None:
    """List the moves between care settings of the stored cases, oldest first per case.

    The moves are read off each case's stays (from import, the API or `fhir-cm pull`'s tracker);
    what the tracker recorded is attached. A date the hospital wrote as a month or a year is printed
    as written (2026-03), not as the day it is held as. With --json, one JSON object per line: case_id,
    from_setting, to_setting, date, date_as_written, readmission (boolean), discharge_disposition,
    follow_up_due, follow_up_due_as_written, from_stay, to_stay, source_encounter, receiving_provider,
    recorded_at (null until the tracker has seen it).

    With --case ID --document: for each move out of a hospital, skilled nursing or rehabilitation
    stay, the PACIO Transitions of Care transfer summary for the receiving provider — a document
    Bundle (Composition LOINC 18761-7, 15 sections: plan of care, problems, reason for referral, …,
    emptyReason where the case holds nothing). --write also writes each to the FHIR server with a
    DocumentReference (type 18761-7); the server's reason is shown if it refuses.
    """
    import asyncio
    import json as json_

    from ..config import get_settings
    from ..domain import say_day
    from ..jobs import build_transfer_summaries, list_transitions, write_transfer_summaries
    from ..store import UnreadableCase

    if document or write or move is not None:
        if case is None or not document:
            raise fail("--document needs --case ID (and --move, --write only go with --document)", code=2)
        settings = get_settings(fhir_base=fhir_base)
        with open_configured_store() as store, reported(LookupError, ValueError):
            for bundle in build_transfer_summaries(store, settings, case, number=move, version=fhir_version):
                typer.echo(json_.dumps(bundle))
            if write:
                written = asyncio.run(write_transfer_summaries(store, settings, case, number=move))
                for w in written:
                    typer.echo(
                        f"fhir-cm: transfer summary Bundle/{w.bundle_id} with DocumentReference/"
                        f"{w.document_reference_id} ({'written' if w.created else 'already there'})",
                        err=True,
                    )
        return
    skipped: list[UnreadableCase] = []
    with open_configured_store() as store, reported(LookupError):
        recorded = list_transitions(store, case, skipped=skipped)
    if skipped:  # their recorded moves are listed; those their stays show cannot be read
        warn_unreadable(skipped, "not read for their stays")
    if as_json:
        for t in recorded:
            typer.echo(t.model_dump_json())
        return
    width = max((len(t.case_id) for t in recorded), default=4)  # ids run to 64 characters (32 generated)
    typer.echo(
        f"{'case':<{width}} {'date':<10}  {'from':<24} {'to':<24} {'disposition':<11} {'follow-up':<10} readmission"
    )
    for t in recorded:
        disposition = t.discharge_disposition.value if t.discharge_disposition else "-"
        due = say_day(t.follow_up_due, t.follow_up_due_as_written) if t.follow_up_due else "-"
        typer.echo(
            f"{t.case_id:<{width}} {say_day(t.date, t.date_as_written):<10}  {t.from_setting.value:<24} {t.to_setting.value:<24} "
            f"{disposition:<11} {due:<10} {'yes' if t.readmission else 'no'}"
        )


conflicts_app = typer.Typer(
    help="List the open conflicts between local and server edits, and settle them.",
    short_help="List and settle local/server conflicts.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(conflicts_app, name="conflicts")


@conflicts_app.callback()
def conflicts_command(
    ctx: typer.Context,
    case: Annotated[str | None, typer.Option("--case", metavar="ID", help="Only this case's conflicts.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: one object per open conflict.")] = False,
) -> None:
    """List open conflicts: case, resource and the clashing fields (both values with --json).

    Settle one with `fhir-cm conflicts resolve ID --keep local|server`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..store import list_conflicts

    with open_configured_store() as store, store.session(read_only=True) as session:
        conflicts = list_conflicts(session, case_id=case)
    if as_json:
        for c in conflicts:
            typer.echo(
                c.model_dump_json(
                    include={
                        "id",
                        "case_id",
                        "resource_type",
                        "resource_key",
                        "fields",
                        "local",
                        "server",
                        "created_at",
                    }
                )
            )
        return
    typer.echo(f"{'id':>5}  {'case':<34} {'resource':<40} fields")
    for c in conflicts:
        typer.echo(f"{c.id:>5}  {c.case_id:<34} {c.resource_type + '/' + c.resource_key:<40} {', '.join(c.fields)}")


@conflicts_app.command("resolve", short_help="Keep the local or the server value.")
def conflicts_resolve_command(
    conflict_id: Annotated[int, typer.Argument(metavar="ID", help="The conflict's id (from `fhir-cm conflicts`).")],
    keep: Annotated[
        str,
        typer.Option(
            "--keep", metavar="[local|server]", help="local: push the local value; server: accept the server's."
        ),
    ],
    resolved_by: Annotated[
        str | None, typer.Option("--by", metavar="NAME", help="Who decided (recorded with the conflict).")
    ] = None,
) -> None:
    """Settle a conflict: keep the local value (queued for the next push) or the server's."""
    from ..jobs import settle_conflict
    from ._audit import audited

    if keep not in ("local", "server"):
        raise fail(f"--keep must be local or server (got {keep!r})", code=2)
    with open_configured_store() as store, reported():
        done = settle_conflict(
            store,
            conflict_id,
            "local" if keep == "local" else "server",
            resolved_by=resolved_by,
            then=audited("resolve-conflict", lambda c: [c.case_id], lambda _: f"conflict:{conflict_id}:{keep}"),
        )
    later = "; the case is queued for the next push" if keep == "local" else ""
    typer.echo(f"fhir-cm: conflict {done.id} resolved, keeping the {keep} value{later}", err=True)
