"""`fhir-cm pull` stopped mid-run as operators stop it: SIGTERM (systemd, a pod's termination) or
Ctrl-C (SIGINT to the terminal's whole process group, the pull's check worker included).

A gate in front of a real server (sekmet, in this process) holds one search of the pull until the
signal is sent, so the signal lands mid-pull — after pages were taken in, spilled to the scratch
file and checked by the worker process — whatever the machine's pace."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case, list_watermarks, open_store
from fhir_cm.sync import _pull, _pull_merge, pull
from fhir_cm.sync._spill import Spill
from fhir_cm.synthetic import generate_cases
from tests.gate import Gate
from tests.servers import sekmet_server
from tests.sync.seeding import seed_case

pytestmark = [pytest.mark.server, pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")]

N = 8
#: How long the pull may take to reach the gate, or to stop once signalled (bounds, not expectations).
BOUND_SECONDS = 60.0
#: The pull with small pages and buffer and its checks in a worker process from the first page, so a
#: short pull has everything a long one has when it is stopped: a scratch file and a check worker.
#: How long a page's work waits for the pull to close its scratch file (it need not: see the test).
PAGE_HELD_SECONDS = 3.0
#: Its scratch database keeps the least of it in memory, so what it spills is written to its file.
PULL = (
    "import sys; from fhir_cm.sync import _checks, _pull, _spill; _pull.PAGE_SIZE = 5; _pull.FLUSH_SIZE = 3;"
    " _spill.CACHE_KIB = 1; _checks.OFFLOAD_AFTER = 1; from fhir_cm.cli import main; sys.argv[0] = 'fhir-cm'; main()"
)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[Gate, str]]:
    held = Gate("Goal")
    with sekmet_server(tmp_path / "sekmet", wrap=held.wrapping) as server:
        try:
            yield held, server.base_url
        finally:
            held.release.set()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _open_under(pid: int, folder: Path) -> list[str]:
    """The files under ``folder`` the process has open (those removed while open included)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if (target := os.readlink(fd)).startswith(f"{folder}/"):
                found.append(target)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@dataclass
class Stopped:
    """A pull stopped mid-run: how it ended, the helper processes that outlived it, where it ran."""

    returncode: int
    stderr: str
    orphans: list[int]
    scratch: Path
    env: dict[str, str]
    cases: list[Case]


def _stop_mid_pull(
    held: Gate,
    base: str,
    tmp_path: Path,
    stop: Callable[[subprocess.Popen[bytes]], None],
    command: str = "pull",
    *,
    background: bool = False,
) -> Stopped:
    """Seed the server, start ``fhir-cm pull`` (or ``command``: the worker's round pulls too), ``stop``
    it once it asks for the held search, wait for it and its helpers (the check worker,
    multiprocessing's resource tracker) to end."""
    system = "urn:fhir-cm:test:signals"
    cases = list(generate_cases(N, seed=4711))

    async def seed() -> None:
        async with AsyncFhirClient(base, enforce_capabilities=False) as raw:
            for case in cases:
                await seed_case(raw, case, system)

    asyncio.run(seed())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {
        **os.environ,
        "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "FHIR_CM_FHIR_BASE": base,
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        "TMPDIR": str(scratch),
    }
    # A session of its own: Ctrl-C reaches the terminal's foreground group, the check worker too.
    # Its stderr in a file: a helper left running would hold a pipe open after the pull's end.
    said = tmp_path / "stderr"
    with said.open("w") as err:
        victim = subprocess.Popen(
            [sys.executable, "-c", PULL, command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            # A script's background job (``fhir-cm pull &``, no job control) starts ignoring SIGINT.
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None,
        )
    helpers: set[int] = set()
    try:
        assert held.seen.wait(BOUND_SECONDS), "the pull never reached the gate"
        assert victim.poll() is None
        assert _open_under(victim.pid, scratch), "no scratch file: the pull was stopped before it spilled"
        helpers = _children(victim.pid)
        assert helpers, "no check worker: the pull was stopped before it started one"
        stop(victim)
        victim.wait(timeout=BOUND_SECONDS)  # not waiting for the held search
        # The helpers end with the pull (the resource tracker once no process holds its pipe).
        deadline = time.monotonic() + BOUND_SECONDS
        while [pid for pid in helpers if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.05)
        orphans = [pid for pid in helpers if _alive(pid)]
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        for pid in helpers:  # what this test started, if it outlived the pull
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        held.release.set()
    return Stopped(victim.returncode, said.read_text(), orphans, scratch, env, cases)


def _assert_resumed(stopped: Stopped, tmp_path: Path, *command: str) -> None:
    """Run again, the stopped command takes in what an uninterrupted pull does (into a store of its own)."""
    url = stopped.env["FHIR_CM_DATABASE_URL"]
    untouched = f"sqlite:///{tmp_path / 'untouched.db'}"
    for store_url, run in ((url, command), (untouched, ("pull",))):
        again = subprocess.run(
            [sys.executable, "-c", PULL, *run],
            env={**stopped.env, "FHIR_CM_DATABASE_URL": store_url},
            capture_output=True,
            text=True,
            timeout=BOUND_SECONDS * 2,
        )
        assert again.returncode == 0, again.stderr
    ids = [c.id for c in stopped.cases]
    with open_store(url) as store, store.session(read_only=True) as s:
        resumed = [get_case(s, i) for i in ids]
    with open_store(untouched) as store, store.session(read_only=True) as s:
        assert resumed == [get_case(s, i) for i in ids]
    assert None not in resumed


@pytest.mark.parametrize(
    ("signum", "background", "code", "said"),
    [
        (signal.SIGTERM, False, 143, "fhir-cm: terminated\n"),
        (signal.SIGTERM, True, 143, "fhir-cm: terminated\n"),
        (signal.SIGINT, False, 130, "fhir-cm: interrupted\n"),
    ],
    ids=["SIGTERM", "SIGTERM-background", "Ctrl-C"],
)
def test_a_pull_stopped_mid_run_exits_at_once_leaves_nothing_behind_and_the_next_pull_takes_everything_in(
    gate: tuple[Gate, str], tmp_path: Path, signum: signal.Signals, background: bool, code: int, said: str
) -> None:
    def stop(victim: subprocess.Popen[bytes]) -> None:
        if signum == signal.SIGINT:  # Ctrl-C: the terminal signals its foreground process group
            os.killpg(victim.pid, signum)
        else:  # systemd's stop, a pod's termination: the main process
            victim.send_signal(signum)

    stopped = _stop_mid_pull(*gate, tmp_path, stop, background=background)

    assert stopped.returncode == code, stopped.stderr
    assert stopped.stderr.endswith(said) and "Traceback" not in stopped.stderr, stopped.stderr
    assert list(stopped.scratch.iterdir()) == []  # the scratch file removed
    assert stopped.orphans == []  # no check worker (nor resource tracker) left running
    url = stopped.env["FHIR_CM_DATABASE_URL"]
    with open_store(url) as store, store.session(read_only=True) as s:
        assert list_watermarks(s) == []  # nothing was merged: no type is marked as pulled

    _assert_resumed(stopped, tmp_path, "pull")


def test_a_pull_killed_outright_leaves_neither_its_check_worker_nor_its_scratch_file(
    gate: tuple[Gate, str], tmp_path: Path
) -> None:
    """``kill -9`` (the out-of-memory killer, a container's grace period run out): the pull cannot end
    its helper, which ends itself, nor remove its scratch file, which a service restarted after each
    such kill would pile up in the temporary directory: the file has no name left to find."""
    stopped = _stop_mid_pull(*gate, tmp_path, lambda victim: victim.kill())

    assert stopped.returncode == -signal.SIGKILL
    assert stopped.orphans == []
    assert list(stopped.scratch.iterdir()) == []

    _assert_resumed(stopped, tmp_path, "pull")


def test_a_worker_told_to_stop_mid_pull_stops_the_pull_at_once(gate: tuple[Gate, str], tmp_path: Path) -> None:
    """The worker finished its round's pull (a whole server's, minutes) before it exited on SIGTERM;
    a container runtime's grace period cut it short with ``kill -9``. Its pull is stopped as the
    command's is: nothing merged, the scratch file removed, the check worker ended; exit 0, as ever."""
    stopped = _stop_mid_pull(*gate, tmp_path, lambda victim: victim.send_signal(signal.SIGTERM), command="worker")

    with open_store(stopped.env["FHIR_CM_DATABASE_URL"]) as store, store.session(read_only=True) as s:
        assert list_watermarks(s) == []  # the pull was stopped, not run to its end
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr and stopped.stderr.endswith("fhir-cm: worker stopped (SIGTERM)\n"), (
        stopped.stderr
    )
    assert list(stopped.scratch.iterdir()) == []
    assert stopped.orphans == []
    _assert_resumed(stopped, tmp_path, "worker", "--once")


async def test_a_pull_cancelled_while_a_page_is_worked_on_closes_its_scratch_file_only_after(
    store: Store, raw: AsyncFhirClient, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A page is taken in in a thread, which cancelling the pull (SIGTERM, Ctrl-C, a worker told to
    stop) does not stop. The pull closed and removed its scratch file meanwhile, and the page then
    wrote its episodes to a new one, left in the temporary directory for good."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where SQLite makes its temporary databases
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for case in generate_cases(2, seed=4712):
        await seed_case(raw, case, settings.identifier_system)
    working, worked, closed = threading.Event(), threading.Event(), threading.Event()
    open_at_close: list[bool] = []
    work_on, close = _pull._Puller.work_on, Spill.close

    def slow_work_on(self: Any, *args: Any, **kwargs: Any) -> None:
        working.set()
        # Until the pull closes its scratch file, if it does so without waiting for this page; a pull
        # that waits has it go on after this pause, which makes it no slower to the assertions.
        closed.wait(PAGE_HELD_SECONDS)
        try:
            work_on(self, *args, **kwargs)
        finally:
            working.clear()
            worked.set()

    def noted_close(self: Spill) -> None:
        open_at_close.append(working.is_set())
        closed.set()
        close(self)

    monkeypatch.setattr(_pull._Puller, "work_on", slow_work_on)
    monkeypatch.setattr(Spill, "close", noted_close)
    pulling = asyncio.ensure_future(pull(store, raw, settings))
    assert await asyncio.to_thread(working.wait, BOUND_SECONDS), "no page was worked on"
    pulling.cancel()
    await asyncio.gather(pulling, return_exceptions=True)

    assert pulling.cancelled()
    assert await asyncio.to_thread(worked.wait, BOUND_SECONDS)  # the page's thread is over, either way
    assert list(scratch.iterdir()) == []
    assert open_at_close == [False]  # closed once the page's work was over


async def test_a_pull_cancelled_while_it_merges_at_the_end_stops_after_the_transaction_under_way(
    store: Store, raw: AsyncFhirClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM or Ctrl-C once every page is in: the pull merges what it took in on the event loop's
    thread, where the cancellation reached it only at its next await, once every case was merged (a
    large pull's minute, past a container's grace period) — then it went on to track transitions.
    It stops after the transaction under way; its watermarks stay, so the next pull reads it again."""
    cases = list(generate_cases(4, seed=4714))
    for case in cases:
        await seed_case(raw, case, settings.identifier_system)
    monkeypatch.setattr(_pull_merge, "MERGE_TRANSACTION", 1)  # one case per transaction
    merged: list[list[str]] = []
    merge = _pull_merge.Merging._merge_cases

    def signalled(self: Any, session: Any, case_ids: list[str], *args: Any, **kwargs: Any) -> Any:
        merged.append(list(case_ids))
        if len(merged) == 1:
            pulling.cancel()  # what SIGTERM or Ctrl-C does to the command's task
        return merge(self, session, case_ids, *args, **kwargs)

    monkeypatch.setattr(_pull_merge.Merging, "_merge_cases", signalled)
    pulling = asyncio.ensure_future(pull(store, raw, settings))
    await asyncio.gather(pulling, return_exceptions=True)

    assert pulling.cancelled()
    assert len(merged) == 1  # the transaction under way, none after
    with store.session(read_only=True) as s:
        assert list_watermarks(s) == []
    monkeypatch.setattr(_pull_merge.Merging, "_merge_cases", merge)
    await pull(store, raw, settings)  # the next pull takes everything in
    with store.session(read_only=True) as s:
        assert None not in [get_case(s, c.id) for c in cases]
