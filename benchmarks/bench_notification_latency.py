"""Hospital discharge → follow-up on the server, through a subscription notification, against real HAPI.

    python benchmarks/bench_notification_latency.py [--discharges 20]

Starts HAPI FHIR JPA R4 (``tests/hapi_server.py``) and ``fhir-cm serve`` (the notification endpoint)
on loopback, pushes one case per discharge, subscribes (R4 criteria rest-hook), then, one at a time,
writes a hospital discharge Encounter for a case's patient as the hospital would and runs what the
worker runs first in each round (``track_notified``: no pull) as soon as the notification is queued.
Printed, p50 and p99 over the discharges: notification received → follow-up on the server (what
fhir-cm adds), and Encounter written → follow-up on the server (end to end, HAPI's matching and
delivery included). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_cm.config import Settings  # noqa: E402
from fhir_cm.fhir import AsyncFhirClient  # noqa: E402
from fhir_cm.store import follow_up_latencies, open_store, pending_tracking  # noqa: E402
from fhir_cm.sync import changed_encounter_patients, settle_watch, sync_subscriptions, track_notified  # noqa: E402
from tests.hapi_server import hapi_server  # noqa: E402
from tests.sync.seeding import put_organisations  # noqa: E402
from tests.api_process import ApiProcess  # noqa: E402
from tests.sync.test_transitions_server import encounter, enrol  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _run(base: str, workdir: Path, n: int) -> tuple[list[float], list[float]]:
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'bench.db'}",
        fhir_base=base,
        identifier_system=f"urn:fhir-cm:bench:{uuid.uuid4().hex}",
        fhir_version="R4",
    )
    end_to_end: list[float] = []
    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(base, enforce_capabilities=False) as raw:
            hospital = f"hosp-{uuid.uuid4().hex[:8]}"
            await put_organisations(raw, hospital)
            tags = [uuid.uuid4().hex[:10] for _ in range(n)]
            for tag in tags:
                await enrol(store, raw, settings, tag)
            settle_watch(store, base, await changed_encounter_patients(store, raw), failed=[])
            api = ApiProcess(settings.database_url, env={"FHIR_CM_IDENTIFIER_SYSTEM": settings.identifier_system})
            api.start()
            try:
                await sync_subscriptions(store, raw, endpoint=api.notifications)
                sub = await raw.search("Subscription").where("status", "active").fetch_all()
                deadline = time.monotonic() + 120
                while not sub and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    sub = await raw.search("Subscription").where("status", "active").fetch_all()
                for tag in tags:
                    written = time.perf_counter()
                    await raw.create(
                        encounter(f"pat-{tag}", "IMP", "2024-06-01", "2024-06-03", hospital, disposition="home")
                    )
                    while True:
                        with store.session(read_only=True) as s:
                            if pending_tracking(s, base):
                                break
                        if time.perf_counter() - written > 120:
                            raise SystemExit("no notification within 120 s")
                        await asyncio.sleep(0.02)
                    report = await track_notified(store, raw, settings, push_with=raw)
                    if report.follow_ups is not None and report.follow_ups.on_server:
                        end_to_end.append(time.perf_counter() - written)
            finally:
                api.stop()
        with store.session(read_only=True) as s:
            fhir_cm_part = follow_up_latencies(s)
    return fhir_cm_part, end_to_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--discharges", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, hapi_server("R4") as server:
        ours, total = asyncio.run(_run(server.base_url, Path(tmp), args.discharges))
    print(f"discharge → follow-up on HAPI FHIR JPA R4 through a rest-hook notification, {len(total)} discharges")
    for label, values in (
        ("notification received → follow-up on server", ours),
        ("Encounter written → follow-up on server", total),
    ):
        if values:
            print(
                f"  {label:<46} p50 {statistics.median(values) * 1000:8.0f} ms   p99 {_pct(values, 0.99) * 1000:8.0f} ms"
            )


if __name__ == "__main__":
    main()
