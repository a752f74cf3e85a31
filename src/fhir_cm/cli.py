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
from typing import TYPE_CHECKING, Annotated

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


@app.command("capabilities")
def capabilities_command(
    fhir_base: str | None = typer.Option(None, "--fhir-base", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE)."),
    as_json: bool = typer.Option(False, "--json", help="Print the case-management view as one JSON object."),
) -> None:
    """Show what a FHIR server supports for case management (reads its /metadata)."""
    from .config import get_settings
    from .fhir import FhirError, sync_client_from_settings

    try:
        settings = get_settings(fhir_base=fhir_base)
        with sync_client_from_settings(settings) as client:
            view = client.capabilities().case_management_view()
    except (FhirError, ValueError, OSError) as exc:
        raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
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


@app.command("generate")
def generate_command(
    cases: Annotated[int | None, typer.Option("--cases", help="How many case journeys to write (at least 1).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed writes the same cases.")] = 1,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
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


@app.command("map")
def map_command(
    file: Annotated[str, typer.Argument(help="Case JSON: one object, an array, or JSON lines; '-' reads stdin.")],
    fhir_version: Annotated[
        str | None, typer.Option("--fhir-version", help="R4 or R5 (default: FHIR_CM_FHIR_VERSION, else R4).")
    ] = None,
) -> None:
    """Map cases to FHIR: one transaction Bundle per case on stdout, as JSON lines."""
    import orjson
    from pydantic import ValidationError

    from .config import get_settings
    from .domain import Case
    from .mapping import MappingError, case_to_bundle, check_version
    from .terminology import TerminologyError

    settings = get_settings()
    try:
        version = check_version(fhir_version or (settings.fhir_version if settings.fhir_version != "auto" else "R4"))
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except MappingError as exc:
        raise fail(str(exc), code=2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    cases: list[Case] = []
    for where, data in _case_documents(text):
        try:
            cases.append(Case.model_validate(data))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "case"
            raise fail(f"{where}: invalid case: {field}: {err['msg']}") from None
    try:
        with _late_progress(len(cases), "mapping cases") as advance:
            for case in cases:
                sys.stdout.buffer.write(orjson.dumps(case_to_bundle(case, version, settings.identifier_system)) + b"\n")
                advance()
        sys.stdout.flush()
    except (MappingError, TerminologyError) as exc:
        raise fail(str(exc)) from None
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


def _case_documents(text: str) -> Iterator[tuple[str, object]]:
    """``(where, data)`` for each case in ``text``: one JSON object, an array of them, or JSON lines."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    else:
        if isinstance(whole, list):
            yield from ((f"item {i}", d) for i, d in enumerate(whole, 1))
        else:
            yield "input", whole
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"line {number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise fail(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None


@contextmanager
def _late_progress(total: int, label: str, *, enabled: bool = True, after: float = 1.0) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr that appears only once the work has taken ``after`` seconds.

    Quick runs stay silent, and nothing is drawn when stderr is not a terminal (logs, pipes, tests).
    """
    console = Console(stderr=True)
    started, done = time.monotonic(), 0
    bar: Progress | None = None
    task: TaskID | None = None

    def advance() -> None:
        nonlocal bar, task, done
        done += 1
        if bar is None and enabled and console.is_terminal and time.monotonic() - started > after:
            bar = Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console, transient=True)
            bar.start()
            task = bar.add_task(label, total=total)
        if bar is not None and task is not None:
            bar.update(task, completed=done)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.stop()


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (default: FHIR_CM_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: FHIR_CM_PORT, 8000).", min=1, max=65535)] = None,
) -> None:
    """Run the API (case management, FHIR facade, caseload, outcomes, health, metrics) on the configured store."""
    import uvicorn

    from .api import configure_logging, create_app
    from .config import get_settings
    from .store import StoreError

    settings = get_settings(host=host, port=port)
    configure_logging()
    try:
        application = create_app(settings)
    except StoreError as exc:
        raise fail(str(exc)) from None
    # uvicorn's own access log prints query strings (patient ids): the app logs requests itself.
    uvicorn.run(application, host=settings.host, port=settings.port, access_log=False, log_config=None,
                server_header=False)


if TYPE_CHECKING:
    from .store import Store

apikey_app = typer.Typer(help="Create, list and revoke the API keys that callers of the API present.",
                         no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")


def _open_configured_store() -> Store:
    """The store ``FHIR_CM_DATABASE_URL`` names, or a one-line failure."""
    from .config import get_settings
    from .store import StoreError, open_store

    try:
        return open_store(get_settings().database_url)
    except StoreError as exc:
        raise fail(str(exc)) from None


@apikey_app.command("create")
def apikey_create_command(
    name: Annotated[str, typer.Option("--name", help="Who or what the key is for (shown in listings).")],
    role: Annotated[str, typer.Option("--role", help="case-manager, supervisor or service.")],
    practitioner: Annotated[
        str | None, typer.Option("--practitioner", help="Case manager's practitioner id (required for case-manager).")
    ] = None,
    programme: Annotated[
        str | None, typer.Option("--programme", help="Supervisor's programme (default: all programmes).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its details as one JSON object.")] = False,
) -> None:
    """Create an API key and print it once on stdout: it is stored hashed and cannot be shown again."""
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
        key, secret = create_api_key(session, name=name, role=roles[role], practitioner_id=practitioner,
                                     programme=programme)
    if as_json:
        typer.echo(json.dumps({**key.model_dump(mode="json"), "key": secret}))
    else:
        typer.echo(secret)
    typer.echo(f"fhir-cm: created {role} key {key.key_id} for {name!r}; store the key now, it is not shown again",
               err=True)


@apikey_app.command("list")
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


@apikey_app.command("revoke")
def apikey_revoke_command(
    key_id: Annotated[str, typer.Argument(help="The key id (the 16 hex characters after 'fcm_').")],
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


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("fhir-cm: interrupted", err=True)
        sys.exit(130)
