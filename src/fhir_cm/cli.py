"""The ``fhir-cm`` command line.

Data goes to stdout, progress and summaries to stderr (unless ``--json`` asks for the summary), so
commands compose with pipes. Failures exit non-zero with a one-line reason, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TaskID

from . import __version__

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


@contextmanager
def reported(*also: type[Exception], code: int = 1) -> Iterator[None]:
    """The one place where errors become a line and an exit code: fhir-cm's own errors
    (``FhirCmError``) and the other kinds named in ``also`` leave the command as ``fhir-cm: error:
    <first line of the message>`` on stderr and exit ``code``; anything else is a bug and shows."""
    from .errors import FhirCmError

    kinds: tuple[type[Exception], ...] = (FhirCmError, *also)
    try:
        yield
    except kinds as exc:
        raise fail(_first_line(exc), code=code) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


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


@app.command("capabilities", short_help="What a FHIR server supports for case management.")
def capabilities_command(
    fhir_base: str | None = typer.Option(None, "--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE)."),
    as_json: bool = typer.Option(False, "--json", help="Print the case-management view as one JSON object."),
) -> None:
    """Show what a FHIR server supports for case management (reads its /metadata)."""
    from .config import get_settings
    from .fhir import sync_client_from_settings

    with reported(ValueError, OSError):
        settings = get_settings(fhir_base=fhir_base)
        with sync_client_from_settings(settings) as client:
            view = client.capabilities().case_management_view()
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
        return
    typer.echo(f"FHIR {view.fhir_version} ({view.release or 'unsupported release'})"
               f" — {view.software or 'unknown software'} {view.software_version or ''}".rstrip())
    typer.echo(f"transaction: {'yes' if view.transaction else 'no'}    batch: {'yes' if view.batch else 'no'}"
               f"    patch formats: {', '.join(view.patch_formats) or '-'}")
    for row in view.types:
        if not row.declared:
            typer.echo(f"{row.type:<15} not declared")
            continue
        typer.echo(f"{row.type:<15} {' '.join(row.interactions) or '(interactions not declared)'}")
        typer.echo(f"{'':<15} search: {', '.join(row.search_params) or '(none declared)'}")


@app.command("generate", short_help="Write synthetic case journeys as JSON lines.")
def generate_command(
    cases: Annotated[int | None, typer.Option("--cases", metavar="N", help="How many case journeys to write (at least 1).  [required]")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed: the same seed writes the same cases.")] = 1,
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE", help="Write to this file instead of stdout.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --out: print the run summary as JSON on stdout.")] = False,
) -> None:
    """Write synthetic case journeys as JSON lines (one case, the domain model's JSON, per line)."""
    from .synthetic import GenerationSummary, generate_cases

    if cases is None:
        raise fail("--cases N is required (how many case journeys to write)", code=2)
    if cases < 1:
        raise fail(f"--cases must be at least 1 (got {cases})", code=2)
    if as_json and out is None:
        raise fail("--json needs --out: without it, stdout carries the cases", code=2)
    summary = GenerationSummary(seed=seed)
    try:
        sink = out.open("w", encoding="utf-8", newline="\n") if out is not None else sys.stdout
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        with _late_progress(cases, "generating cases", enabled=out is not None) as advance:
            for case in generate_cases(cases, seed):
                sink.write(case.model_dump_json())
                sink.write("\n")
                summary.add(case)
                advance()
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise typer.Exit(0) from None
    except OSError as exc:
        raise fail(f"cannot write {out or 'stdout'}: {exc.strerror or exc}") from None
    finally:
        if sink is not sys.stdout:
            sink.close()
    if out is not None:
        if as_json:
            typer.echo(json.dumps({**summary.model_dump(), "out": str(out)}))
        else:
            typer.echo(f"fhir-cm: wrote {summary.line()} to {out}", err=True)


@app.command("map", short_help="Map cases to FHIR transaction Bundles (JSON lines).")
def map_command(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Case JSON: one object, an array, or JSON lines; '-' reads stdin.")],
    fhir_version: Annotated[
        str | None, typer.Option("--fhir-version", metavar="[R4|R5]", help="FHIR version (default: FHIR_CM_FHIR_VERSION, else R4).")
    ] = None,
) -> None:
    """Map cases to FHIR: one transaction Bundle per case on stdout, as JSON lines."""
    import orjson

    from .config import get_settings
    from .jobs import offline_fhir_version, read_cases
    from .mapping import case_to_bundle

    settings = get_settings()
    with reported(code=2):
        version = offline_fhir_version(settings, fhir_version)
    with reported():
        cases = read_cases(file)
    try:
        with reported(), _late_progress(len(cases), "mapping cases") as advance:
            for case in cases:
                sys.stdout.buffer.write(orjson.dumps(case_to_bundle(case, version, settings.identifier_system)) + b"\n")
                advance()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


class _LateProgress:
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
        if (self.bar is None and self.enabled and self.console.is_terminal
                and time.monotonic() - self.started > self.after):
            self.bar = Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=self.console,
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=self.done)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextmanager
def _late_progress(total: int, label: str, *, enabled: bool = True, after: float = 1.0) -> Iterator[Callable[[], None]]:
    """A :class:`_LateProgress` for ``total`` steps, stopped on the way out; yields its ``advance``."""
    progress = _LateProgress(label, total, enabled=enabled, after=after)
    try:
        yield progress.advance
    finally:
        progress.stop()


@app.command("serve", short_help="Run the API: case management, FHIR facade, metrics.")
def serve_command(
    host: Annotated[str | None, typer.Option("--host", metavar="HOST", help="Address to bind (default: FHIR_CM_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", metavar="PORT", help="Port, 1 to 65535 (default: FHIR_CM_PORT, 8000).", min=1, max=65535)] = None,
) -> None:
    """Run the API (case management, FHIR facade, caseload, outcomes, health, metrics) on the configured store."""
    import uvicorn

    from .api import configure_logging, create_app
    from .config import get_settings

    settings = get_settings(host=host, port=port)
    configure_logging()
    with reported():
        application = create_app(settings)
    # uvicorn's own access log prints query strings (patient ids): the app logs requests itself.
    uvicorn.run(application, host=settings.host, port=settings.port, access_log=False, log_config=None,
                server_header=False)


if TYPE_CHECKING:
    from .store import Store

apikey_app = typer.Typer(help="Create, list and revoke the API keys that callers of the API present.",
                         short_help="Create, list and revoke API keys.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(apikey_app, name="apikey")


def _open_configured_store() -> Store:
    """The store ``FHIR_CM_DATABASE_URL`` names, or a one-line failure."""
    from .config import get_settings
    from .store import open_store

    with reported():
        return open_store(get_settings().database_url)


@apikey_app.command("create", short_help="Create an API key (printed once).")
def apikey_create_command(
    name: Annotated[str, typer.Option("--name", metavar="TEXT", help="Who or what the key is for (shown in listings).")],
    role: Annotated[str, typer.Option("--role", metavar="[case-manager|supervisor|service]", help="What the key may do.")],
    practitioner: Annotated[
        str | None, typer.Option("--practitioner", metavar="ID", help="The case manager's practitioner id, in full (required with --role case-manager).")
    ] = None,
    programme: Annotated[
        str | None, typer.Option("--programme", metavar="[health-care|social-work|rehabilitation|child-protection|behavioural-health]", help="A supervisor's programme (default: all programmes).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Create the key although no stored case names the practitioner or programme yet (data still to come).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its details as one JSON object.")] = False,
) -> None:
    """Create an API key and print it once on stdout: it is stored hashed and cannot be shown again.

    A key for a practitioner no stored case names (as case manager or on the care team), or for a
    programme no stored case belongs to, would see nothing: it is refused, unless --force says the
    data is still to come.
    """
    from .domain import ProgrammeType
    from .store import ApiRole, create_api_key

    roles = {r.value: r for r in ApiRole}
    if role not in roles:
        raise fail(f"--role must be one of {', '.join(roles)} (got {role!r})", code=2)
    if programme is not None and programme not in ProgrammeType._value2member_map_:
        raise fail(f"--programme must be one of {', '.join(p.value for p in ProgrammeType)}", code=2)
    if roles[role] is ApiRole.CASE_MANAGER and not practitioner:
        raise fail("a case-manager key needs --practitioner ID (the case manager's practitioner id)", code=2)
    if not name.strip() or len(name) > 200:
        raise fail("--name must be 1 to 200 characters", code=2)
    with _open_configured_store() as store, store.session() as session:
        if not force:
            _check_key_scope(session, practitioner if roles[role] is ApiRole.CASE_MANAGER else None, programme)
        key, secret = create_api_key(session, name=name, role=roles[role], practitioner_id=practitioner,
                                     programme=programme)
    if as_json:
        typer.echo(json.dumps({**key.model_dump(mode="json"), "key": secret}))
    else:
        typer.echo(secret)
    typer.echo(f"fhir-cm: created {role} key {key.key_id} for {name!r}; store the key now, it is not shown again",
               err=True)


def _check_key_scope(session: Any, practitioner: str | None, programme: str | None) -> None:
    """Refuse (one line) a key for a practitioner or programme the stored cases do not name."""
    from .store import practitioner_on_cases, practitioners_starting_with, programmes_in_use

    if practitioner is not None and not practitioner_on_cases(session, practitioner):
        like = practitioners_starting_with(session, practitioner)
        hint = f"did you mean {' or '.join(like)}? " if like else ""
        raise fail(f"no stored case has practitioner {practitioner} as case manager or on its care team, so the key "
                   f"would see nothing; {hint}give the full id, or --force if the data is still to come")
    if programme is not None and programme not in (known := programmes_in_use(session)):
        held = ", ".join(sorted(known)) or "none yet"
        raise fail(f"no stored case is in programme {programme} (the store holds: {held}), so the key would see "
                   "nothing; --force if the data is still to come")


@apikey_app.command("list", short_help="List API keys (never the secrets).")
def apikey_list_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of keys (never the secrets).")] = False,
    active: Annotated[bool, typer.Option("--active", help="Only keys not revoked.")] = False,
) -> None:
    """List API keys: id, name, role, scope, created and revoked times (keys themselves are not stored)."""
    from .store import list_api_keys

    with _open_configured_store() as store, store.session(read_only=True) as session:
        keys = list_api_keys(session, include_revoked=not active)
    if as_json:
        typer.echo(json.dumps([k.model_dump(mode="json") for k in keys]))
        return
    for k in keys:
        scope = k.practitioner_id or k.programme or "-"
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        typer.echo(f"{k.key_id}  {k.role.value:<12}  {scope:<20}  {state:<18}  {k.name}")


@apikey_app.command("revoke", short_help="Revoke an API key at once.")
def apikey_revoke_command(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key id (the 16 hex characters after 'fcm_').")],
) -> None:
    """Revoke an API key at once: requests with it are refused (401) from now on."""
    from .store import NotFound, revoke_api_key

    with _open_configured_store() as store:
        try:
            with store.session() as session:
                key = revoke_api_key(session, key_id)
        except NotFound:
            raise fail(f"no API key {key_id}") from None
    typer.echo(f"fhir-cm: key {key.key_id} ({key.name}) revoked", err=True)


# --- push and worker (fhir_cm.sync) ----------------------------------------------------------------

#: Exit code when nothing failed for good but some cases wait for a retry (EX_TEMPFAIL).
EXIT_RETRY_LATER = 75


@app.command("push", short_help="Send cases to a FHIR server; safe to re-run.")
def push_command(
    file: Annotated[str | None, typer.Argument(metavar="FILE", help="Case JSON/JSONL (as `fhir-cm generate` writes); '-' reads stdin.")] = None,
    all_pending: Annotated[bool, typer.Option("--all", help="Push every pending outbox row, and queue every case not yet pushed to this server.")] = False,
    fhir_base: Annotated[str | None, typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, metavar="N", help="Cases pushed at once (default: FHIR_CM_PUSH_CONCURRENCY, 4).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for cases another live worker is pushing: report them at once.")] = False,
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

    from .config import get_settings
    from .domain import Case
    from .jobs import read_cases, require_fhir_base, run_push
    from .store import open_store

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
        typer.echo(f"fhir-cm: waiting until {until.isoformat(timespec='seconds')} for {len(held)} case(s) "
                   f"another worker is pushing ({', '.join(sorted({str(i.claimed_by) for i in held}))})", err=True)

    progress = _LateProgress("pushing cases")

    async def run() -> Any:
        with open_store(settings.database_url) as store:
            return await run_push(store, settings, cases=cases, everything_pending=all_pending, wait=not no_wait,
                                  concurrency=concurrency, on_wait=waiting, on_start=progress.start,
                                  on_case=lambda _id, _ok: progress.advance())

    try:
        with reported(ValueError):
            outcome = asyncio.run(run())
    finally:
        progress.stop()
    report, standing = outcome.report, outcome.standing
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
    fhir_base: Annotated[str | None, typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE).")] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.0, metavar="SECONDS", help="Seconds between rounds.")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Run one round and exit.")] = False,
) -> None:
    """Push the outbox (and pull, where available) continuously; several workers may share a PostgreSQL store."""
    import asyncio
    import signal

    from .config import get_settings
    from .jobs import require_fhir_base, run_sync_worker
    from .store import open_store

    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):
        require_fhir_base(settings)

    def show(report: Any) -> None:
        if report.cases:
            typer.echo(f"fhir-cm: worker pushed {report.line()}", err=True)

    async def run() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        with open_store(settings.database_url) as store:
            return await run_sync_worker(store, settings, interval=interval, once=once, stop=stop, on_round=show)

    with reported(ValueError):
        report = asyncio.run(run())
    if once and report.permanent_failures:
        raise typer.Exit(1)


@app.command("pull", short_help="Read what changed on a FHIR server into the store.")
def pull_command(
    fhir_base: Annotated[str | None, typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE).")] = None,
    since: Annotated[str | None, typer.Option("--since", metavar="INSTANT", help="Pull changes after this instant (e.g. 2024-05-01T00:00:00Z) instead of the stored watermarks.")] = None,
    patient: Annotated[str | None, typer.Option("--patient", metavar="ID", help="Pull everything of the case types for this Patient id (watermarks untouched).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
) -> None:
    """Read case resources changed on a server into the store, then record the transitions of the cases touched.

    Types the server's CapabilityStatement leaves out are still asked for (some servers serve Goal
    and CareTeam without declaring them); search parameters it does not declare are not sent, and
    results are filtered here. A resource that does not read as case data, or would make its case
    break a rule of what can be true (a contact in the future, overlapping inpatient stays), is
    quarantined with the reason, and the pull goes on.
    """
    import asyncio

    from .config import get_settings
    from .jobs import require_fhir_base, run_pull
    from .store import open_store

    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):
        require_fhir_base(settings)

    async def run() -> Any:
        with open_store(settings.database_url) as store:
            return await run_pull(store, settings, since=since, patient=patient)

    with reported(ValueError):
        report = asyncio.run(run())
    p, t = report.pull, report.transitions
    for rtype, why in p.skipped_types.items():
        typer.echo(f"fhir-cm: {rtype} not pulled: {why}", err=True)
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        typer.echo(
            f"fhir-cm: pulled {p.fetched} resources: {p.new_cases} new cases, {p.updated_cases} updated, "
            f"{p.unchanged} unchanged, {p.quarantined} quarantined, {p.conflicts} conflicts; "
            f"{t.new_transitions} new transitions ({t.readmissions} readmissions)",
            err=True,
        )


@app.command("transitions", short_help="List the moves between care settings.")
def transitions_command(
    case: Annotated[str | None, typer.Option("--case", metavar="ID", help="Only this case's transitions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: one object per transition.")] = False,
) -> None:
    """List the moves between care settings of the stored cases, oldest first per case.

    The moves are read off each case's stays (from import, the API or `fhir-cm pull`'s tracker);
    what the tracker recorded is attached. With --json, one JSON object per line: case_id,
    from_setting, to_setting, date, readmission (boolean), discharge_disposition, follow_up_due,
    from_stay, to_stay, source_encounter, receiving_provider, recorded_at (null until the tracker
    has seen it).
    """
    from .jobs import list_transitions

    with _open_configured_store() as store:
        recorded = list_transitions(store, case)
    if as_json:
        for t in recorded:
            typer.echo(t.model_dump_json())
        return
    typer.echo(f"{'case':<20} {'date':<10}  {'from':<24} {'to':<24} {'disposition':<11} {'follow-up':<10} readmission")
    for t in recorded:
        disposition = t.discharge_disposition.value if t.discharge_disposition else "-"
        due = t.follow_up_due.isoformat() if t.follow_up_due else "-"
        typer.echo(f"{t.case_id:<20} {t.date.isoformat():<10}  {t.from_setting.value:<24} {t.to_setting.value:<24} "
                   f"{disposition:<11} {due:<10} {'yes' if t.readmission else 'no'}")


conflicts_app = typer.Typer(help="List the open conflicts between local and server edits, and settle them.",
                            short_help="List and settle local/server conflicts.", invoke_without_command=True,
                            rich_markup_mode=None)
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
    from .store import list_conflicts

    with _open_configured_store() as store, store.session(read_only=True) as session:
        conflicts = list_conflicts(session, case_id=case)
    if as_json:
        for c in conflicts:
            typer.echo(c.model_dump_json(include={"id", "case_id", "resource_type", "resource_key", "fields",
                                                  "local", "server", "created_at"}))
        return
    typer.echo(f"{'id':>5}  {'case':<34} {'resource':<40} fields")
    for c in conflicts:
        typer.echo(f"{c.id:>5}  {c.case_id:<34} {c.resource_type + '/' + c.resource_key:<40} {', '.join(c.fields)}")


@conflicts_app.command("resolve", short_help="Keep the local or the server value.")
def conflicts_resolve_command(
    conflict_id: Annotated[int, typer.Argument(metavar="ID", help="The conflict's id (from `fhir-cm conflicts`).")],
    keep: Annotated[str, typer.Option("--keep", metavar="[local|server]", help="local: push the local value; server: accept the server's.")],
    resolved_by: Annotated[str | None, typer.Option("--by", metavar="NAME", help="Who decided (recorded with the conflict).")] = None,
) -> None:
    """Settle a conflict: keep the local value (queued for the next push) or the server's."""
    from .jobs import settle_conflict

    if keep not in ("local", "server"):
        raise fail(f"--keep must be local or server (got {keep!r})", code=2)
    with _open_configured_store() as store, reported():
        done = settle_conflict(store, conflict_id, "local" if keep == "local" else "server", resolved_by=resolved_by)
    later = "; the case is queued for the next push" if keep == "local" else ""
    typer.echo(f"fhir-cm: conflict {done.id} resolved, keeping the {keep} value{later}", err=True)


@app.command("import", short_help="Import FHIR resources, Bundles or cases.")
def import_command(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="FHIR JSON (resources, Bundles, arrays or JSON lines; R4 or R5) or case JSON lines from `fhir-cm generate`; '-' reads stdin.")],
    fhir_version: Annotated[
        str, typer.Option("--fhir-version", metavar="[auto|R4|R5]", help="auto decides per resource from the R4 and R5 models.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
) -> None:
    """Import FHIR resources or Bundles (and generated cases) into the store, grouped into cases.

    Every resource is kept exactly as it came, with its FHIR version, so `fhir-cm export` gives it
    back; what the case model understands is read into the case. A file that is not JSON, not FHIR
    R4/R5, nor cases stops the import before anything is written. Re-importing a file changes nothing.
    """
    from .config import get_settings
    from .interchange import import_files
    from .store import open_store

    if fhir_version.upper() not in ("AUTO", "R4", "R5"):
        raise fail(f"--fhir-version must be auto, R4 or R5 (got {fhir_version!r})", code=2)
    settings = get_settings()
    with reported(), open_store(settings.database_url) as store:
        report = import_files(store, files, settings, fhir_version=fhir_version.lower() if fhir_version.upper() == "AUTO" else fhir_version.upper())
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        typer.echo(f"fhir-cm: {report.line()}", err=True)


@app.command("export", short_help="Export cases as one FHIR collection Bundle.")
def export_command(
    case: Annotated[str | None, typer.Option("--case", metavar="ID", help="Only this case (default: every case in the store).")] = None,
    fhir_version: Annotated[
        str | None, typer.Option("--fhir-version", metavar="[R4|R5]", help="FHIR version (default: each resource in the version it came in).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Export cases as one FHIR collection Bundle: imported resources come back as they came, plus what changed."""
    import orjson

    from .config import get_settings
    from .interchange import export_cases
    from .store import open_store

    if fhir_version is not None and fhir_version.upper() not in ("R4", "R5"):
        raise fail(f"--fhir-version must be R4 or R5 (got {fhir_version!r})", code=2)
    settings = get_settings()
    with reported(), open_store(settings.database_url) as store:
        bundle = export_cases(store, settings, case_id=case, fhir_version=fhir_version)
    data = orjson.dumps(bundle) + b"\n"
    try:
        if out is not None:
            out.write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except OSError as exc:
        raise fail(f"cannot write {out or 'stdout'}: {exc.strerror or exc}") from None
    count = len(bundle.get("entry", ()))
    if out is not None:
        typer.echo(f"fhir-cm: exported {count} resources to {out}", err=True)


@app.command("demo", short_help="The main job: walk synthetic cases through the cycle.")
def demo_command(
    fhir_base: Annotated[str | None, typer.Option("--fhir-base", metavar="URL", help="Also sync to this FHIR server and read everything back (default: FHIR_CM_FHIR_BASE, else no server).")] = None,
    cases: Annotated[int, typer.Option("--cases", metavar="N", help="How many synthetic cases to walk (at least 1).")] = 5,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="The folder for the demo's files (the FHIR export).")] = Path("fhir-cm-demo"),
    today: Annotated[str | None, typer.Option("--today", metavar="YYYY-MM-DD", help="Date the journeys as if today were this day (default: today): the same day gives the same output.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout (the readable one goes to stderr).")] = False,
) -> None:
    """The main job in one command: walk a few synthetic cases through the whole case-management cycle.

    Identification, enrolment, assessment, plan and goals, referrals, care team, monitoring, the hospital → skilled nursing → home transition with its follow-up, evaluation and closure: each step is saved to the store (FHIR_CM_DATABASE_URL, default ./fhir-cm.db), which the API and the other commands read. The journeys are dated up to today, so the caseload shows recent contacts.

    It writes the cases' FHIR export into a folder of its own (./fhir-cm-demo, or --out), then prints on stdout what it did, the caseload, outcomes and transitions, where it wrote, and the commands that show the cases in the API; progress goes to stderr.

    With a FHIR server it pushes everything, pulls it back with the transitions tracker and checks the round trip. Safe to re-run: the same cases (fixed seed) are never walked or stored twice.
    """
    import datetime as dt

    from .config import get_settings
    from .demo import render_summary, run_demo

    if cases < 1:
        raise fail(f"--cases must be at least 1 (got {cases})", code=2)
    try:
        day = dt.date.fromisoformat(today) if today is not None else None
    except ValueError:
        raise fail(f"--today must be a date, YYYY-MM-DD (got {today!r})", code=2) from None
    with reported(ValueError):
        settings = get_settings(fhir_base=fhir_base)
        summary = run_demo(settings, cases=cases, today=day, out_dir=out,
                           progress=lambda line: typer.echo(line, err=True))
    if as_json:
        typer.echo(render_summary(summary), err=True)
        typer.echo(summary.model_dump_json())
    else:
        typer.echo(render_summary(summary))


@app.command("check", short_help="Report stored cases that break a domain rule.")
def check_command(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: one object per rule broken (case_id, rule, field, entity, message).")] = False,
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

    from .check import check_store
    from .config import get_settings

    settings = get_settings()
    with _open_configured_store() as store:
        report = check_store(store, settings.plausibility(dt.date.today()))
    for b in report.breaches:
        if as_json:
            typer.echo(b.model_dump_json())
        else:
            typer.echo(f"case {b.case_id}  {b.field}: {b.message}")
    typer.echo(f"fhir-cm: {report.line()}", err=True)
    if report.breaches:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("fhir-cm: interrupted", err=True)
        sys.exit(130)
