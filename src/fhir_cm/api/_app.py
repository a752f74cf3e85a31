"""The app factory: one FastAPI app per store and settings, so tests and the server build their own."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import threading
import anyio.to_thread
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from fhir_cm import __version__
from fhir_cm.config import Settings
from fhir_cm.domain import CaseStatus
from fhir_cm.outcomes import load_outcome_rules
from fhir_cm.worklist import load_worklist_rules
from fhir_cm.store import Store, open_store, warm_case_cache

from ._auth import Principal
from ._console import mount_console
from ._case_json import CaseJson
from ._deps import get_store, require_fhir_reader
from ._heap import settle
from .facade import DEFAULT_VERSION, FacadeIndex
from ._metrics import ApiMetrics
from ._body_limit import BodyLimitMiddleware
from ._gate import ApiAuthGate
from ._head import HeadMiddleware
from ._middleware import REQUEST_ID, RequestContextMiddleware
from ._models import OPEN_STATUSES
from ._problems import ProblemDocument, install_problem_handlers
from ._parts import CaseParts
from ._views import ViewCache
from ..cds import IssuerKeys, JtiLedger, catalogue, parse_issuers
from .routes import (
    audit,
    candidates,
    cds_hooks,
    caseload,
    cases,
    contacts,
    me,
    notifications,
    ops,
    outcomes,
    placement,
    plan,
    referrals,
    sync,
    sync_health,
    team,
    transitions,
    worklist,
)

__all__ = ["API_PREFIX", "app_from_environment", "create_app"]

API_PREFIX = "/api/v1"
log = logging.getLogger("fhir_cm.api")

_DESCRIPTION = """\
The case-management API of fhir-cm: cases, assessment and plan, referrals, care team, contacts,
stays and transitions, caseload, worklist and outcomes, and sync control; plus a read-only FHIR facade at
`/fhir` for services.

**Authentication**: every data route needs an API key, sent as `Authorization: Bearer <key>` or
`X-API-Key: <key>`. Create one with `fhir-cm apikey create --name NAME --role ROLE`.
Errors are `application/problem+json` (RFC 9457) with an `errors` list naming each wrong field.
Changes accept `If-Match: "<revision>"` (the case's `ETag`; `W/"<revision>"` and lists too) and answer
412 when it is stale.
Every GET operation answers `HEAD` too (GET's status and headers, no body); this document lists the
GET operations only.
"""

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDocument, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 404, 409, 412, 413, 422)
}


def _fhir_router(settings: Settings, app: FastAPI) -> APIRouter | None:
    """The FHIR facade's router (mounted at ``/fhir``), when that module is part of this build."""
    try:
        module = importlib.import_module("fhir_cm.api.routes.fhir")
    except ModuleNotFoundError as exc:
        if exc.name != "fhir_cm.api.routes.fhir":
            raise
        return None

    def audit(principal: Principal, action: str, case_ids: list[str]) -> None:
        store: Store = app.state.store
        store.audit.record(
            principal=principal.id, action=f"fhir-{action}", case_ids=case_ids, request_id=REQUEST_ID.get()
        )

    # Its own bases besides the request's: its public URL, and the server its pulled copies come from.
    public = f"{settings.public_url.rstrip('/')}/fhir" if settings.public_url else None
    index = FacadeIndex(settings.identifier_system, bases=[b for b in (public, settings.fhir_base) if b])
    app.state.facade_index = index
    router: APIRouter = module.build_fhir_router(
        get_store, require_fhir_reader, identifier_system=settings.identifier_system, audit=audit, index=index
    )
    return router


#: Threads serving blocking routes at once, per process (anyio's default is 40).
REQUEST_THREADS = 8


def _warm(app: FastAPI, *, serving: bool, stop: threading.Event | None = None) -> None:
    """Before the first request asks: decode the cases into the read routes' cache (the open ones, then the
    others, newest first, as many as it keeps), map every stored case for the façade's default version (a
    thousand cases take seconds; those in the cache are not decoded again) and go through them for the
    day's worklist, caseload and outcomes of all time; then, in a server, settle the heap (``_heap``). ``/readyz`` answers 503 until this is
    done. A failure is logged, not fatal: the first requests then do the work as before.

    ``stop`` set (the app shutting down), it stops after the case under way: the shutdown waits for
    this thread, and on a large store waited minutes, past a service manager's grace period. (The day's
    views, once begun, are finished: a second or two each on 10,000 cases decoded already.)"""
    index: FacadeIndex | None = getattr(app.state, "facade_index", None)
    store: Store = app.state.store
    try:
        with store.session(read_only=True) as session:
            warm_case_cache(session, store.cases, OPEN_STATUSES, stop=stop)
            # Then the others while there is room: the caseload, the outcomes and the worklist of a day
            # go through every case, and the first of a new process decoded them all.
            warm_case_cache(session, store.cases, [s for s in CaseStatus if s not in OPEN_STATUSES], stop=stop)
        if index is not None:  # after the cache: it maps the cases decoded there, not decoding them again
            index.warm(store, DEFAULT_VERSION, stop=stop)
        if stop is None or not stop.is_set():
            # The day's worklist, caseload and outcomes of all time are one view each for every caller:
            # their parts computed now, the first caller of this process finds them kept (on 10,000
            # cases the worklist took 1.7 s, the caseload about 1 s).
            today = app.state.clock()
            worklist.day_worklist_parts(app.state.parts, store, today)
            days_ahead = app.state.settings.future_tolerance_days
            caseload.day_caseload_parts(app.state.parts, store, today, today, days_ahead)
            outcomes.period_outcome_parts(app.state.parts, store, None, None, today, today)
    except Exception as exc:  # noqa: BLE001 - readiness must not hang on a store error at start-up
        log.warning("start-up: warming the caches failed (%s); they fill on first use", type(exc).__name__)
    finally:
        if serving:
            settle()
        app.state.facade_ready.set()


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Callable[[], dt.date] | None = None,
    serving: bool = False,
) -> FastAPI:
    """The fhir-cm API on ``store`` (opened from ``settings.database_url`` when not given).

    A store the app opened is closed when the app shuts down; one handed in stays the caller's.
    ``clock`` gives today's date (tests pin it); the default is the local date. ``serving``: the app
    is a server's (``fhir-cm serve``), which settles its heap after start-up (``_heap``).
    """
    settings = settings or Settings()
    load_outcome_rules()  # a broken rules file is told now, not as a 500 to the first outcomes request
    load_worklist_rules()  # and so is the worklist's
    catalogue()  # and CDS Hooks' services, whose prefetch takes the eligibility rules' screening panels
    owned = store is None
    the_store = store if store is not None else open_store(settings.database_url, case_cache=settings.case_cache)

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[None]:
        # Blocking routes run in anyio's worker threads: a few are enough to keep two cores busy, and
        # every extra one only queues for the GIL (and holds a database connection meanwhile).
        anyio.to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
        #: Set once the app shuts down: what runs on in threads of its own stops early.
        running.state.stopping = stopping = threading.Event()
        warm = threading.Thread(
            target=_warm, args=(running,), kwargs={"serving": serving, "stop": stopping}, name="fhir-cm-warm"
        )
        warm.daemon = True
        warm.start()
        yield
        stopping.set()
        warm.join()  # its session must end before the store closes (an in-memory one shares one connection)
        if owned:
            the_store.close()

    app = FastAPI(
        title="fhir-cm",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    # Everything per app lives in app.state, where routes, middleware and hooks look it up.
    app.state.settings = settings
    app.state.store = the_store
    app.state.clock = clock or dt.date.today
    app.state.metrics = ApiMetrics()
    app.state.views = ViewCache()
    app.state.parts = CaseParts()
    app.state.case_json = CaseJson(settings.case_cache)
    app.state.cds_keys = IssuerKeys(parse_issuers(settings.cds_issuers), verify=settings.verify_tls)
    if serving and settings.cds_issuers and not settings.public_url:
        # Every hook call is refused without it (its tokens' audience): said once at start, not per call.
        log.warning("start-up: CDS Hooks issuers are set but FHIR_CM_PUBLIC_URL is not: every hook call is refused")
    app.state.cds_jtis = JtiLedger()
    app.state.facade_ready = threading.Event()
    install_problem_handlers(app)
    app.add_middleware(ApiAuthGate, prefix=API_PREFIX)  # innermost: it sees the answer the routes made
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(HeadMiddleware)  # HEAD wherever GET is served
    app.add_middleware(RequestContextMiddleware)  # added last: the outer one, so a 413 has its request id

    api = APIRouter(prefix=API_PREFIX, responses=_ERRORS)
    for module in (
        me,
        cases,
        plan,
        referrals,
        team,
        contacts,
        transitions,
        placement,
        caseload,
        worklist,
        outcomes,
        sync,
        sync_health,
        audit,
        candidates,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(ops.router)
    app.include_router(notifications.router)
    app.include_router(cds_hooks.router)
    if (fhir := _fhir_router(settings, app)) is not None:
        app.include_router(fhir)
    mount_console(app)
    return app


def app_from_environment() -> FastAPI:
    """The app on the settings of the environment (``FHIR_CM_*``): the factory each ``serve --workers N``
    process calls. Logging and the collector are set up here because a worker process starts with
    neither (see ``fhir_cm.process``)."""
    from ..process import tune_collector
    from ._logging import configure_logging

    configure_logging()
    tune_collector()
    return create_app(Settings(), serving=True)
