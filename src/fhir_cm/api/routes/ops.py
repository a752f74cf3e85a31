"""Operations: liveness, readiness and metrics. No credentials, and nothing in them names a person."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from fhir_cm.config import Settings
from fhir_cm.fhir import client_from_settings
from fhir_cm.store import Store, StoreError

from .._deps import get_settings, get_store

__all__ = ["router"]

router = APIRouter(tags=["operations"])

#: Readiness must answer quickly even when the FHIR server hangs.
FHIR_CHECK_SECONDS = 5.0


class Health(BaseModel):
    """The process answers."""

    status: str


class Readiness(BaseModel):
    """Whether each dependency answered: ``ok``, ``unreachable``, ``not-configured``, or (the façade
    index at start-up) ``warming``."""

    status: str
    checks: dict[str, str]


def _store_ok(store: Store) -> bool:
    try:
        with store.session(read_only=True) as session:
            session.execute(text("SELECT 1"))
    except StoreError:
        return False
    return True


async def _fhir_ok(settings: Settings) -> bool:
    try:
        async with client_from_settings(settings, timeout=FHIR_CHECK_SECONDS) as client:
            await asyncio.wait_for(client.capabilities(), FHIR_CHECK_SECONDS)
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the reason is not for this endpoint
        return False
    return True


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """200 while the process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, summary="Readiness")
async def readyz(
    request: Request, store: Annotated[Store, Depends(get_store)], settings: Annotated[Settings, Depends(get_settings)]
) -> Response:
    """200 when the store answers, the FHIR façade's index is built (at start-up) and, if
    ``FHIR_CM_FHIR_BASE`` is set, the FHIR server's ``/metadata`` answers."""
    checks = {"store": "ok" if await run_in_threadpool(_store_ok, store) else "unreachable"}
    warmed = getattr(request.app.state, "facade_ready", None)
    checks["facade"] = "ok" if warmed is None or warmed.is_set() else "warming"
    if settings.fhir_base:
        checks["fhir"] = "ok" if await _fhir_ok(settings) else "unreachable"
    else:
        checks["fhir"] = "not-configured"
    ready = all(v not in ("unreachable", "warming") for v in checks.values())
    body = Readiness(status="ready" if ready else "not-ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request, store: Annotated[Store, Depends(get_store)]) -> Response:
    """Requests by route and status, latency, sync outcomes and the outbox depth, in Prometheus text."""
    try:
        payload = request.app.state.metrics.render(store)
    except StoreError:
        payload = request.app.state.metrics.render_without_store()
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
