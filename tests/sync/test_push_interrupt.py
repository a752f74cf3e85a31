"""Ctrl-C or SIGTERM halfway through `fhir-cm push`: the command stops with one line and exit 130
or 143 (no asyncio traceback of the cases still in flight, no request sent on a closed client),
leaving no claim leased, and the push run again sends every case once — nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.store import OutboxStatus, Store, held_leases, list_outbox, open_store
from fhir_cm.synthetic import generate_cases
from tests.sync.server_state import expected
from tests.sync.test_push_crash import DEADLINE, episodes_on_server, fhir_cm, inspect

pytestmark = [pytest.mark.server, pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")]

#: Cases pushed two at a time in batches of two: once the first is settled, about twenty rounds of the
#: server remain to signal within. Four at a time in batches of four (24 cases) left five, and twice in
#: some twenty CI runs the push had finished before the signal came (the test process waits for a core
#: too).
N = 40
AT_ONCE = "2"


def _as_at_a_terminal() -> None:
    """Ctrl-C's SIGINT as a foreground process gets it (a shell starts background jobs ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _settled(store: Store) -> bool:
    """Whether the push has marked a case of the outbox pushed yet."""
    with store.session(read_only=True) as s:
        return any(r.status is OutboxStatus.DONE for r in list_outbox(s))


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "fhir-cm: interrupted\n"), (signal.SIGTERM, 143, "fhir-cm: terminated\n")],
    ids=["Ctrl-C", "SIGTERM"],
)
def test_a_push_stopped_mid_way_says_so_in_one_line_gives_its_claims_back_and_the_rerun_completes(
    settings: Settings, fhir_server: str, system: str, tmp_path: Path, signum: signal.Signals, code: int, said: str
) -> None:
    """SIGTERM (systemctl stop, a pod's termination) ended the push on the spot, and Ctrl-C left its
    rows claimed: another host's worker (or a `push --all` there, waiting) could take them only once
    their leases ran out, a minute later. Stopped either way, the push gives back every claim it
    holds, the cases it had started too (pushed again, they find what this one wrote)."""
    cases = list(generate_cases(N, seed=929))
    file = tmp_path / "cases.jsonl"
    file.write_text("".join(c.model_dump_json() + "\n" for c in cases))
    env = {
        **os.environ,
        "FHIR_CM_DATABASE_URL": settings.database_url,
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        "FHIR_CM_PUSH_BATCH_SIZE": AT_ONCE,
        "FHIR_CM_PUSH_CONCURRENCY": AT_ONCE,
    }
    command = [*fhir_cm(), "push", str(file), "--fhir-base", fhir_server]

    victim = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_as_at_a_terminal
    )
    deadline = time.monotonic() + DEADLINE
    # The store is polled for the first case the push settled (a case lands on the server before it is
    # whole), and not the server first: on a HAPI filled by the whole suite one search took long enough
    # for the push to finish before the signal was sent.
    with open_store(settings.database_url) as store:
        while not _settled(store) and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    victim.send_signal(signum)
    _, stderr = victim.communicate(timeout=DEADLINE)

    assert victim.returncode == code, stderr
    assert episodes_on_server(fhir_server, system) < N, "the push finished before it could be stopped"
    assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr
    assert stderr.endswith(said), stderr
    with open_store(settings.database_url) as store, store.session(read_only=True) as s:
        assert held_leases(s) == []  # nothing left for others to wait out
        rows = list_outbox(s)
    assert {r.status for r in rows} == {OutboxStatus.DONE, OutboxStatus.PENDING}

    again = subprocess.run(
        [*command, "--no-wait"], check=False, env=env, capture_output=True, text=True, timeout=DEADLINE
    )

    assert again.returncode == 0, again.stderr
    assert f"{N} of {N} cases pushed" in again.stderr
    assert asyncio.run(inspect(fhir_server, system)).counts == expected(cases, system)
