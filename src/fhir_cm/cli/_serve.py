"""Running the API, and the keys its callers present."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ._app import app, fail, open_configured_store, reported


@app.command("serve", short_help="Run the API: case management, FHIR facade, console, metrics.")
def serve_command(
    host: Annotated[
        str | None, typer.Option("--host", metavar="HOST", help="Address to bind (default: FHIR_CM_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", metavar="PORT", help="Port, 1 to 65535 (default: FHIR_CM_PORT, 8000).", min=1, max=65535
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            metavar="N",
            min=1,
            max=64,
            help="Processes serving the API, one core each (each keeps its own caches).",
        ),
    ] = 1,
) -> None:
    """Run the API (case management, FHIR facade, console, caseload, outcomes, health, metrics) on the
    configured store. With --workers N, N processes share the port (uvicorn's supervisor restarts a
    worker that dies); on the embedded SQLite store too, whose writers take turns across processes.
    Told to stop (SIGTERM, Ctrl-C), it lets the requests under way finish for FHIR_CM_SHUTDOWN_GRACE
    seconds, then cancels them (exit 143, 130 for Ctrl-C); told again, at once."""
    from . import _serving as serving
    from ..api import configure_logging, create_app
    from ..config import get_settings
    from ..fhir import check_fhir_settings

    settings = get_settings(host=host, port=port)
    _check_listenable(settings.host, settings.port)
    configure_logging()
    with reported():
        check_fhir_settings(settings)  # a key or token every sync would be refused with: told now
        application = create_app(
            settings, serving=True
        )  # also checks the store (and migrates it) once, before any worker
    # uvicorn's own access log prints query strings (patient ids): the app logs requests itself.
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "log_config": None,
        "server_header": False,
    }
    if workers == 1:
        code = serving.run(application, options, workers=1, grace=settings.shutdown_grace)
    else:
        application.state.store.close()
        code = serving.run(
            "fhir_cm.api:app_from_environment",
            {**options, "factory": True},
            workers=workers,
            grace=settings.shutdown_grace,
        )
    if code:
        raise typer.Exit(code)


def _check_listenable(host: str, port: int) -> None:
    """Stop with one line when the address cannot be bound, before the API is made.

    Left to uvicorn, a port in use (a serve still running, another service on 8000) printed
    "Application startup complete" then the bind error as JSON log lines and exited 3. The socket is
    bound as uvicorn binds it (``SO_REUSEADDR``, IPv6 for an address with a colon) and closed again.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        hint = (
            "; another process listens there: --port or FHIR_CM_PORT picks another"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise fail(f"cannot listen on {host}:{port}: {reason}{hint}") from None


apikey_app = typer.Typer(
    help="Create, list and revoke the API keys that callers of the API present.",
    short_help="Create, list and revoke API keys.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(apikey_app, name="apikey")


@apikey_app.command("create", short_help="Create an API key (printed once).")
def apikey_create_command(
    name: Annotated[
        str, typer.Option("--name", metavar="TEXT", help="Who or what the key is for (shown in listings).")
    ],
    role: Annotated[
        str, typer.Option("--role", metavar="[case-manager|supervisor|service]", help="What the key may do.")
    ],
    practitioner: Annotated[
        str | None,
        typer.Option(
            "--practitioner",
            metavar="ID",
            help="The case manager's practitioner id, in full (required with --role case-manager).",
        ),
    ] = None,
    programme: Annotated[
        str | None,
        typer.Option(
            "--programme",
            metavar="[health-care|social-work|rehabilitation|child-protection|behavioural-health]",
            help="A supervisor's programme (default: all programmes).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Create the key although no stored case names the practitioner or programme yet (data still to come).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its details as one JSON object.")] = False,
) -> None:
    """Create an API key and print it once on stdout: it is stored hashed and cannot be shown again.

    A key for a practitioner no stored case names (as case manager or on the care team), or for a
    programme no stored case belongs to, would see nothing: it is refused, unless --force says the
    data is still to come.
    """
    from ..domain import ProgrammeType
    from ..store import ApiRole, create_api_key

    roles = {r.value: r for r in ApiRole}
    if role not in roles:
        raise fail(f"--role must be one of {', '.join(roles)} (got {role!r})", code=2)
    if programme is not None and programme not in ProgrammeType._value2member_map_:
        raise fail(f"--programme must be one of {', '.join(p.value for p in ProgrammeType)}", code=2)
    if roles[role] is ApiRole.CASE_MANAGER and not practitioner:
        raise fail("a case-manager key needs --practitioner ID (the case manager's practitioner id)", code=2)
    if not name.strip() or len(name) > 200:
        raise fail("--name must be 1 to 200 characters", code=2)
    with open_configured_store() as store, store.session() as session:
        if not force:
            _check_key_scope(session, practitioner if roles[role] is ApiRole.CASE_MANAGER else None, programme)
        key, secret = create_api_key(
            session, name=name, role=roles[role], practitioner_id=practitioner, programme=programme
        )
    if as_json:
        typer.echo(json.dumps({**key.model_dump(mode="json"), "key": secret}))
    else:
        typer.echo(secret)
    typer.echo(
        f"fhir-cm: created {role} key {key.key_id} for {name!r}; store the key now, it is not shown again", err=True
    )


def _check_key_scope(session: Any, practitioner: str | None, programme: str | None) -> None:
    """Refuse (one line) a key for a practitioner or programme the stored cases do not name."""
    from ..store import practitioner_on_cases, practitioners_starting_with, programmes_in_use

    if practitioner is not None and not practitioner_on_cases(session, practitioner):
        like = practitioners_starting_with(session, practitioner)
        hint = f"did you mean {' or '.join(like)}? " if like else ""
        raise fail(
            f"no stored case has practitioner {practitioner} as case manager or on its care team, so the key "
            f"would see nothing; {hint}give the full id, or --force if the data is still to come"
        )
    if programme is not None and programme not in (known := programmes_in_use(session)):
        held = ", ".join(sorted(known)) or "none yet"
        raise fail(
            f"no stored case is in programme {programme} (the store holds: {held}), so the key would see "
            "nothing; --force if the data is still to come"
        )


@apikey_app.command("list", short_help="List API keys (never the secrets).")
def apikey_list_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of keys (never the secrets).")] = False,
    active: Annotated[bool, typer.Option("--active", help="Only keys not revoked.")] = False,
) -> None:
    """List API keys: id, name, role, scope, created and revoked times (keys themselves are not stored)."""
    from ..store import list_api_keys

    with open_configured_store() as store, store.session(read_only=True) as session:
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
    key_id: Annotated[
        str,
        typer.Argument(
            metavar="KEY_ID", help="The key id (the 16 hex characters after 'fcm_'), or the key itself (never shown)."
        ),
    ],
) -> None:
    """Revoke an API key at once: requests with it are refused (401) from now on."""
    from ..store import NotFound, key_id_of, revoke_api_key

    named = key_id_of(key_id)
    if named is None:  # not echoed: it may be a key mistyped, a secret all the same
        raise fail("not a key id: give the 16 hex characters after 'fcm_' (apikey list shows them)", code=2)
    with open_configured_store() as store:
        try:
            with store.session() as session:
                key = revoke_api_key(session, named)
        except NotFound:
            raise fail(f"no API key {named}") from None
    typer.echo(f"fhir-cm: key {key.key_id} ({key.name}) revoked", err=True)
