"""Leases while pushing to the real server: renewed through a slow batch; live holders waited for or reported.

The takeover of a killed push's rows is in ``test_push_crash`` (it needs a real ``kill -9``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from fhir_cm.cli import EXIT_RETRY_LATER, app
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import (
    LeaseHolder,
    OutboxItem,
    OutboxStatus,
    Store,
    claim_outbox,
    list_outbox,
    open_store,
    release_claim,
    renew_leases,
    save_case,
)
from fhir_cm.store._tables import OutboxRow
from fhir_cm.store._types import utcnow
from fhir_cm.sync import push_asked, run_worker
from fhir_cm.sync._leases import LeaseKeeper
from fhir_cm.sync._push_session import PushSession
from fhir_cm.synthetic import generate_cases
from tests.sync.faulty_proxy import faulty_proxy
from tests.sync.server_state import expected, server_state

pytestmark = pytest.mark.server

#: A worker on another host: this one cannot tell whether it lives, so its rows are never taken over.
ELSEWHERE = LeaseHolder(host="other-host.example", pid=4242)


def split(base: str) -> tuple[str, str]:
    """``http://host:port`` and ``/path`` of a base URL (the proxy forwards paths as they come)."""
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}", parts.path


def save(store: Store, cases: list[Case]) -> None:
    with store.session() as s:
        for case in cases:
            save_case(s, case)


# --- renewal -------------------------------------------------------------------------------------

LEASE = 2.0  # seconds; renewed every 0.67 s
DELAY = 0.8  # seconds per request: one case at a time, the cases below take more than two leases to push
BATCH = 6


async def second_worker_against(
    store: Store, first: asyncio.Future[object], batch: int
) -> tuple[list[dt.datetime], list[OutboxItem]]:
    """A second worker (of another host) claiming all along, from when the worker ``first`` holds
    rows until it is done: when it tried, and the rows it took."""

    def second_worker() -> tuple[dt.datetime, list[OutboxItem]]:
        with store.session() as s:
            return utcnow(), claim_outbox(s, "second", limit=batch, lease_seconds=60, holder=ELSEWHERE)

    def claimed_by_first() -> bool:
        with store.session(read_only=True) as s:
            rows = list_outbox(s)
        return bool(rows) and all(r.claimed_by == "first" for r in rows)

    tries: list[dt.datetime] = []
    stolen: list[OutboxItem] = []
    while not first.done() and not await asyncio.to_thread(claimed_by_first):
        await asyncio.sleep(0.01)  # the second worker starts once the first has claimed every row
    while not first.done():
        when, taken = await asyncio.to_thread(second_worker)
        if not first.done():
            tries.append(when)
        stolen += taken
        await asyncio.sleep(0.05)
    return tries, stolen


@pytest.mark.parametrize("renewal", [True, False], ids=["renewed", "control-not-renewed"])
async def test_a_worker_whose_lease_ends_mid_batch_keeps_its_rows_while_it_works(
    store: Store,
    settings: Settings,
    raw: AsyncFhirClient,
    fhir_server: str,
    system: str,
    renewal: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows claimed under a short lease (in growing batches, up to ``BATCH``), pushed one case at a
    time to a slow server: a second worker trying all along never gets a row while the first works
    on them. The control, with
    renewal switched off, shows the same second worker does take rows — the test can fail."""
    settings = settings.model_copy(
        update={"push_lease_seconds": LEASE, "push_batch_size": BATCH, "push_concurrency": 1}
    )
    cases = list(generate_cases(BATCH, seed=4040))
    save(store, cases)
    if not renewal:

        async def no_renewal(self: LeaseKeeper) -> None:
            return None

        monkeypatch.setattr(LeaseKeeper, "renew", no_renewal)

    origin, path = split(fhir_server)
    async with (
        faulty_proxy(origin, rate=0.0, delay=DELAY) as (proxy_root, _),
        AsyncFhirClient(proxy_root + path) as client,
    ):
        first = asyncio.ensure_future(run_worker(store, client, settings, once=True, worker_id="first"))
        tries, stolen = await second_worker_against(store, first, BATCH)
        report = await first

    with store.session(read_only=True) as s:
        rows = list_outbox(s)
    if not renewal:
        # (Once rows are stolen the first worker skips them and may finish within its lease.)
        assert stolen, "without renewal the second worker should have taken rows of the running batch"
        return
    # The second worker tried while a row of the first was past the lease of its claim and not yet
    # settled (else this proves nothing).
    lease = dt.timedelta(seconds=LEASE)
    assert any(
        r.claimed_at + lease < t < r.completed_at for t in tries for r in rows if r.claimed_at and r.completed_at
    )
    assert stolen == []
    assert report.cases == BATCH and report.ok
    assert [(r.status, r.claimed_by, r.attempts) for r in rows] == [(OutboxStatus.DONE, "first", 1)] * BATCH
    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)


async def test_a_first_batch_claimed_while_the_server_is_slow_to_answer_is_renewed_from_its_claim(
    store: Store, settings: Settings, client: AsyncFhirClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first claim is made while the push learns the server (its CapabilityStatement, the
    adapter's Device): a server that takes longer than a lease to answer those must not cost the
    batch its rows before it goes out."""
    lease = 1.0
    settings = settings.model_copy(
        update={"push_lease_seconds": lease, "push_batch_size": BATCH, "push_concurrency": 2}
    )
    cases = list(generate_cases(BATCH, seed=4242))
    save(store, cases)
    learnt = PushSession.start

    async def slow_start(self: PushSession) -> None:
        await asyncio.sleep(3 * lease)  # a server slow to answer its first requests
        await learnt(self)

    monkeypatch.setattr(PushSession, "start", slow_start)

    first = asyncio.ensure_future(run_worker(store, client, settings, once=True, worker_id="first"))
    tries, stolen = await second_worker_against(store, first, BATCH)
    report = await first

    with store.session(read_only=True) as s:
        rows = list_outbox(s)
    claimed_at = min(r.claimed_at for r in rows if r.claimed_at)
    assert tries and max(tries) > claimed_at + dt.timedelta(seconds=2 * lease)  # tried after it would have ended
    assert stolen == []
    assert report.cases == BATCH and report.ok
    assert [(r.status, r.claimed_by) for r in rows] == [(OutboxStatus.DONE, "first")] * BATCH


# --- rows held by live workers elsewhere -------------------------------------------------------


@pytest.fixture
def env(settings: Settings, fhir_server: str, system: str) -> dict[str, str]:
    return {
        "FHIR_CM_DATABASE_URL": settings.database_url,
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        "FHIR_CM_FHIR_BASE": fhir_server,
    }


@pytest.fixture
def cases_file(tmp_path: Path) -> tuple[Path, list[Case]]:
    cases = list(generate_cases(4, seed=4141))
    file = tmp_path / "cases.jsonl"
    file.write_text("".join(c.model_dump_json() + "\n" for c in cases))
    return file, cases


def held_elsewhere(
    store: Store, cases: list[Case], n: int, lease: float, holder: LeaseHolder = ELSEWHERE
) -> list[OutboxItem]:
    """Queue the cases and let another worker (of another host, by default) claim the first ``n``."""
    save(store, cases)
    with store.session() as s:
        return claim_outbox(s, "worker-b", limit=n, lease_seconds=lease, holder=holder)


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("where", ["other host", "live process of this host"])
def test_cases_a_live_worker_holds_are_reported_with_the_holder_and_time_and_the_exit_is_not_zero(
    store: Store,
    env: dict[str, str],
    cases_file: tuple[Path, list[Case]],
    where: str,
    live_process: subprocess.Popen[bytes],
) -> None:
    file, cases = cases_file
    holder = ELSEWHERE if where == "other host" else LeaseHolder.of(live_process.pid)
    held = held_elsewhere(store, cases, 2, lease=60, holder=holder)
    until = max(i.lease_expires_at for i in held if i.lease_expires_at)

    result = CliRunner().invoke(app, ["push", str(file), "--no-wait", "--json"], env=env)

    assert result.exit_code == EXIT_RETRY_LATER, result.output
    assert f"2 cases held by worker worker-b until {until.isoformat(timespec='seconds')}" in result.stderr
    assert "2 of 4 cases pushed, 2 not" in result.stderr
    summary = json.loads(result.stdout)
    assert (summary["asked"], summary["pushed"]) == (4, 2)
    assert sorted((n["case_id"], n["state"], n["holder"], n["until"]) for n in summary["not_pushed"]) == sorted(
        (i.case_id, "held", "worker-b", until.isoformat().replace("+00:00", "Z")) for i in held
    )
    with store.session(read_only=True) as s:
        rows = {r.case_id: r for r in list_outbox(s)}
    assert {c: (r.status, r.claimed_by) for c, r in rows.items() if c in {i.case_id for i in held}} == {
        i.case_id: (OutboxStatus.IN_FLIGHT, "worker-b") for i in held
    }


@pytest.mark.parametrize("holder_does", ["gives them back", "lets its lease run out"])
async def test_a_push_waits_for_a_holder_and_pushes_what_it_leaves(
    store: Store, settings: Settings, client: AsyncFhirClient, raw: AsyncFhirClient, system: str, holder_does: str
) -> None:
    """A worker elsewhere holds two of the asked cases: the push waits for it (until its lease end)
    rather than skipping them, and pushes them itself once the holder lets them go."""
    cases = list(generate_cases(4, seed=4343))
    held = held_elsewhere(store, cases, 2, lease=60)
    waits: list[tuple[list[str], dt.datetime]] = []

    def on_wait(rows: list[OutboxItem], until: dt.datetime) -> None:
        waits.append((sorted(r.case_id for r in rows), until))
        with store.session() as s:  # the holder, while the push waits
            if holder_does == "gives them back":
                for item in held:
                    release_claim(s, item)
            else:
                tokens = [i.claim_token for i in held]
                ended = utcnow() - dt.timedelta(seconds=1)
                s.execute(update(OutboxRow).where(OutboxRow.claim_token.in_(tokens)).values(lease_expires_at=ended))

    report, standing = await push_asked(store, client, settings, [c.id for c in cases], on_wait=on_wait, worker_id="me")

    assert waits == [(sorted(i.case_id for i in held), max(i.lease_expires_at for i in held if i.lease_expires_at))]
    assert (standing.asked, standing.pushed, standing.not_pushed) == (4, 4, [])
    assert report.cases == 4 and report.ok
    with store.session(read_only=True) as s:
        assert {(r.status, r.claimed_by) for r in list_outbox(s)} == {(OutboxStatus.DONE, "me")}
    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)


@pytest.fixture
def renewing() -> Iterator[threading.Event]:
    """A live worker elsewhere that keeps renewing what it holds until the event is set."""
    stop = threading.Event()
    yield stop
    stop.set()


def test_a_push_does_not_wait_for_ever_for_a_holder_that_keeps_renewing(
    store: Store, env: dict[str, str], cases_file: tuple[Path, list[Case]], renewing: threading.Event
) -> None:
    file, cases = cases_file
    held = held_elsewhere(store, cases, 1, lease=2.0)

    def keep_renewing() -> None:  # every 0.1 s a lease of 2 s: the push never finds it over
        with open_store(env["FHIR_CM_DATABASE_URL"]) as mine:
            while not renewing.wait(0.1):
                with mine.session() as s:
                    renew_leases(s, held, 2.0)

    thread = threading.Thread(target=keep_renewing)
    thread.start()
    try:
        result = CliRunner().invoke(app, ["push", str(file)], env=env)
    finally:
        renewing.set()
        thread.join()

    assert result.exit_code == EXIT_RETRY_LATER, result.output
    assert "another worker is pushing (worker-b)" in result.stderr
    assert "1 case held by worker worker-b until" in result.stderr
    assert "3 of 4 cases pushed, 1 not" in result.stderr


# --- the worker takes over too -------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="judges processes by /proc")
async def test_a_worker_takes_over_at_once_the_rows_of_a_dead_process_of_this_host(
    store: Store,
    settings: Settings,
    client: AsyncFhirClient,
    raw: AsyncFhirClient,
    system: str,
    live_process: subprocess.Popen[bytes],
) -> None:
    cases = list(generate_cases(3, seed=4242))
    dead = LeaseHolder.of(live_process.pid)
    held = held_elsewhere(store, cases, 2, lease=3600, holder=dead)  # an hour: only a takeover gets them
    live_process.send_signal(signal.SIGKILL)
    live_process.wait()

    report = await run_worker(store, client, settings, once=True, worker_id="w")

    assert report.cases == 3 and report.ok
    with store.session(read_only=True) as s:
        rows = {r.case_id: r for r in list_outbox(s)}
    assert {(r.status, r.claimed_by) for r in rows.values()} == {(OutboxStatus.DONE, "w")}
    assert {rows[i.case_id].attempts for i in held} == {2}  # the dead one's attempt counts
    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)
