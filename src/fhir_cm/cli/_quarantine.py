"""``fhir-cm quarantine``: the resources pulls could not take in, and dismissing those needing nothing more.

An integration engineer on the server reads here why a resource was set aside (``fhir-cm pull`` and
``check`` only count them); the raw resource, patient data as the server sent it, is printed only
with ``--json``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app, fail, open_configured_store

__all__ = ["quarantine_app"]

quarantine_app = typer.Typer(
    help="List the resources pulls set aside (why, which, when), and dismiss those needing nothing more.",
    short_help="List and dismiss resources pulls set aside.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.callback()
def quarantine_command(
    ctx: typer.Context,
    resource_type: Annotated[
        str | None, typer.Option("--type", metavar="TYPE", help="Only this resource type.")
    ] = None,
    source: Annotated[str | None, typer.Option("--source", metavar="URL", help="Only those from this server.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 100,
    dismissed: Annotated[bool, typer.Option("--dismissed", help="The dismissed entries instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one entry each, with the raw resource.")] = False,
) -> None:
    """List quarantined resources, newest first: id, when set aside, type/id, version and why.

    Dismiss one with `fhir-cm quarantine dismiss ID`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..store import list_quarantine

    with open_configured_store() as store, store.session(read_only=True) as session:
        found = list_quarantine(session, source=source, resource_type=resource_type, limit=limit, dismissed=dismissed)
    if as_json:
        for q in found:
            typer.echo(q.model_dump_json())
        return
    typer.echo(f"{'id':>5}  {'set aside':<20} {'resource':<50} {'version':<12} reason")
    for q in found:
        name = f"{q.resource_type or '?'}/{q.server_id or '-'}"  # '-': no id (known by its text)
        version = q.version if len(q.version) <= 12 else q.version[:11] + "…"
        when = q.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        typer.echo(f"{q.id:>5}  {when:<20} {name:<50} {version:<12} {q.reason}")


@quarantine_app.command("dismiss", short_help="Set an entry aside as dealt with.")
def quarantine_dismiss_command(
    entry_id: Annotated[int, typer.Argument(metavar="ID", help="The entry's id (from `fhir-cm quarantine`).")],
) -> None:
    """Dismiss an entry (the server deleted the resource, it is not ours): lists and counts leave it
    out until a new version of the resource, still bad, comes. Audited as the account that ran it."""
    from ..store import dismiss_quarantine, record_audit
    from ._audit import cli_principal

    by = cli_principal()
    with open_configured_store() as store, store.session() as session:
        entry = dismiss_quarantine(session, entry_id, by=by)
        if entry is None:
            raise fail(f"no quarantine entry {entry_id}")
        record_audit(session, principal=by, action="quarantine-dismiss", case_ids=[None], detail=f"entry:{entry_id}")
    typer.echo(f"fhir-cm: quarantine entry {entry_id} dismissed", err=True)
