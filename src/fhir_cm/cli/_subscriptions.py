"""Subscriptions: the server notifies fhir-cm of Encounter changes for the patients of open cases."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from ._app import app, open_configured_store, reported

FhirBase = Annotated[
    str | None, typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE).")
]


def _settings(fhir_base: str | None) -> Any:
    from ..config import get_settings
    from ..jobs import require_fhir_base

    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):
        require_fhir_base(settings)
    return settings


@app.command("subscribe", short_help="Make the server notify fhir-cm of Encounter changes of open cases.")
def subscribe_command(
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help="Where the server sends notifications: the fhir-cm API's /notifications (e.g. https://cm.example.org/notifications).",
        ),
    ],
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic",
            metavar="URL",
            help="The server's Encounter SubscriptionTopic (backport topic subscriptions) instead of R4 criteria.",
        ),
    ] = None,
    fhir_base: FhirBase = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
) -> None:
    """Subscriptions (R4 criteria rest-hook, or backport topic subscriptions with --topic) whose criteria
    name exactly the patients of the open cases, 50 per subscription, each with a secret of its own the
    server must send back (the API refuses notifications without it). Safe to run again: it creates,
    updates or removes ours to follow the open cases (the worker then keeps them in step)."""
    from ..jobs import subscribe

    settings = _settings(fhir_base)
    with open_configured_store() as store, reported():
        report = asyncio.run(subscribe(store, settings, endpoint, topic=topic))
    if as_json:
        typer.echo(report.model_dump_json())
        return
    typer.echo(
        f"fhir-cm: {report.patients} patients of open cases in {len(report.created) + len(report.updated) + len(report.kept)} "
        f"subscription(s): {len(report.created)} created, {len(report.updated)} updated, {len(report.kept)} kept, "
        f"{len(report.removed)} removed",
        err=True,
    )


@app.command("subscriptions", short_help="List fhir-cm's subscriptions with their status on the server.")
def subscriptions_command(
    fhir_base: FhirBase = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per subscription.")] = False,
) -> None:
    """Ours only, each with the status the server gives it now (requested, active, error, off, gone),
    how many patients it names, and the last notification received."""
    from ..jobs import list_subscriptions_on_server

    settings = _settings(fhir_base)
    with open_configured_store() as store, reported():
        states = asyncio.run(list_subscriptions_on_server(store, settings))
    for s in states:
        if as_json:
            typer.echo(s.model_dump_json())
        else:
            last = s.last_notified_at.isoformat(timespec="seconds") if s.last_notified_at else "never"
            error = f" ({s.error})" if s.error else ""
            typer.echo(
                f"{s.id:<26} Subscription/{s.server_id or '-':<10} {s.kind:<8} {s.status:<10} "
                f"{s.patients:>3} patients  last notified {last}{error}"
            )


@app.command("unsubscribe", short_help="Remove fhir-cm's subscriptions from the server.")
def unsubscribe_command(fhir_base: FhirBase = None) -> None:
    """Delete the subscriptions fhir-cm made on the server (never anyone else's)."""
    from ..jobs import unsubscribe

    settings = _settings(fhir_base)
    with open_configured_store() as store, reported():
        report = asyncio.run(unsubscribe(store, settings))
    typer.echo(f"fhir-cm: {len(report.removed)} subscription(s) removed", err=True)
