"""A CDS Hooks call whose data must be read from an EHR server that cannot answer: how long it takes.

    python benchmarks/bench_cds_unreachable.py [--give-up 120]

A ``patient-view`` call with nothing prefetched names a ``fhirServer`` that is (a) a closed port
(connection refused) and (b) a listening socket that accepts and never answers. The service has to
read the patient's data there; the EHR waits for its answer in the clinician's workflow. Printed per
case: the wall time, what the call answered (the cards, or the error the API turns into a status),
and how many connections the silent server accepted (each request sent, retries included). The
``FHIR_CM_CDS_DEADLINE`` in force is printed too. Figures are printed, never asserted; a call still
running after ``--give-up`` seconds is stopped and printed as such.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_cm import cds  # noqa: E402
from fhir_cm.config import Settings  # noqa: E402
from fhir_cm.store import open_store  # noqa: E402
from tests.cds.unreachable import closed_port, silent_server  # noqa: E402

SERVICE = "fhir-cm-patient-view"


def call(server: str) -> cds.HookRequest:
    return cds.HookRequest.model_validate(
        {
            "hook": "patient-view",
            "hookInstance": "bench-1",
            "context": {"patientId": "bench-patient", "userId": "Practitioner/1"},
            "fhirServer": server,
            "fhirAuthorization": {"access_token": "bench-token", "token_type": "Bearer"},
        }
    )


def run(settings: Settings, server: str, give_up: float) -> tuple[float, str]:
    """The call's wall time and what it answered."""
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{tmp}/bench.db") as store:

        async def go() -> str:
            try:
                async with asyncio.timeout(give_up):
                    out = await cds.answer(store, settings, SERVICE, call(server), dt.date.today(), "http://x")
                return f"200, {len(out.cards)} card(s)"
            except TimeoutError:
                return f"still running after {give_up:g} s: stopped"
            except (cds.CdsRequestError, cds.CdsDataUnavailable) as exc:
                return f"{type(exc).__name__}: {exc}"

        start = time.perf_counter()
        said = asyncio.run(go())
        return time.perf_counter() - start, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--give-up", type=float, default=120.0, help="stop a call still running after this (s)")
    args = parser.parse_args()
    settings = Settings(database_url="sqlite://", fhir_base=None)
    print(f"FHIR_CM_CDS_DEADLINE in force: {settings.cds_deadline:g} s")
    elapsed, said = run(settings, closed_port(), args.give_up)
    print(f"closed port:       {elapsed:6.2f} s  {said}")
    with silent_server() as server:
        elapsed, said = run(settings, server.base, args.give_up)
        print(f"silent server:     {elapsed:6.2f} s  {said}; {server.connections()} connection(s) accepted")


if __name__ == "__main__":
    main()
