"""Placement after discharge: offer a case to several facilities, follow their answers, choose one."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from ._app import app, fail, open_configured_store, reported

placement_app = typer.Typer(
    help="Offer a post-discharge placement to several facilities (one ServiceRequest, "
    "one Task each), follow their answers, and settle it on the patient's choice.",
    short_help="Post-discharge placement to candidate facilities.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(placement_app, name="placement")


def _show(offer: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(offer.model_dump_json())
        return
    chosen = f"; chosen: {offer.chosen}" if offer.chosen else ""
    typer.echo(
        f"placement {offer.id} of case {offer.case_id} ({offer.setting}), ServiceRequest/"
        f"{offer.service_request_id}{chosen}"
    )
    for c in offer.candidates:
        extra = " ".join(
            x
            for x in (
                c.business_status or "",
                f"({c.reason})" if c.reason else "",
                f"asks: {'; '.join(c.questions)}" if c.questions else "",
            )
            if x
        )
        typer.echo(f"  {c.organization:<30} Task/{c.task_id:<12} {c.status} {extra}".rstrip())


def _settings(fhir_base: str | None) -> Any:
    from ..config import get_settings
    from ..jobs import require_fhir_base

    settings = get_settings(fhir_base=fhir_base)
    with reported(code=2):
        require_fhir_base(settings)
    return settings


FhirBase = Annotated[
    str | None, typer.Option("--fhir-base", metavar="URL", help="FHIR server base URL (default: FHIR_CM_FHIR_BASE).")
]
AsJson = Annotated[bool, typer.Option("--json", help="The offer as one JSON object.")]


@placement_app.command("offer", short_help="Offer the case to candidate facilities.")
def offer_command(
    case: Annotated[str, typer.Option("--case", metavar="ID", help="The case.")],
    setting: Annotated[
        str, typer.Option("--setting", metavar="SETTING", help="Care setting asked for, e.g. skilled-nursing.")
    ],
    candidate: Annotated[
        list[str], typer.Option("--candidate", metavar="ORG", help="Organization id of a candidate facility (repeat).")
    ],
    service: Annotated[
        str | None, typer.Option("--service", metavar="TEXT", help="What is asked for, in words.")
    ] = None,
    fhir_base: FhirBase = None,
    as_json: AsJson = False,
) -> None:
    """One ServiceRequest and one request-fulfillment Task per candidate on the server; prints the offer."""
    from ..domain import CareSetting
    from ..jobs import offer_to_facilities
    from ._audit import audited

    try:
        wanted = CareSetting(setting)
    except ValueError:
        raise fail(
            f"unknown care setting {setting!r}; one of: {', '.join(s.value for s in CareSetting)}", code=2
        ) from None
    settings = _settings(fhir_base)
    with open_configured_store() as store, reported():
        offer = asyncio.run(
            offer_to_facilities(
                store,
                settings,
                case,
                wanted,
                candidate,
                service=service,
                then=audited("placement-offer", lambda o: [o.case_id], lambda o: f"placement:{o.id}"),
            )
        )
    _show(offer, as_json)


@placement_app.command("status", short_help="Each candidate's answer, read back from the server.")
def status_command(
    placement: Annotated[str, typer.Argument(metavar="PLACEMENT_ID")],
    fhir_base: FhirBase = None,
    as_json: AsJson = False,
) -> None:
    """Rejected (with the reason), awaiting information (with the questions asked), accepted."""
    from ..jobs import follow_placement

    settings = _settings(fhir_base)
    with open_configured_store() as store, reported():
        offer = asyncio.run(follow_placement(store, settings, placement))
    _show(offer, as_json)


@placement_app.command("choose", short_help="Settle the offer on the patient's choice.")
def choose_command(
    placement: Annotated[str, typer.Argument(metavar="PLACEMENT_ID")],
    candidate: Annotated[
        str, typer.Option("--candidate", metavar="ORG", help="The facility the patient chose (it must have accepted).")
    ],
    fhir_base: FhirBase = None,
    as_json: AsJson = False,
) -> None:
    """The chosen Task "selected", the others cancelled ("not selected"); the facility joins the care team
    as the provider of the case's next stay (queued for the next push)."""
    from ..jobs import choose_facility
    from ._audit import audited

    settings = _settings(fhir_base)
    with open_configured_store() as store, reported():
        offer = asyncio.run(
            choose_facility(
                store,
                settings,
                placement,
                candidate,
                then=audited("placement-choose", lambda o: [o.case_id], lambda o: f"placement:{o.id}:{candidate}"),
            )
        )
    _show(offer, as_json)
